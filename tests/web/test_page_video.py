"""Video clips on the Streamlit page (AppTest), made in memory by tests.clients.clips: a clip gets the clip verdict,
a score-over-time picture per face track, the driving frames, the track table and the PDF; a bad clip gets its
one-line reason and nothing else."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from clients.core import errors
from clients.web.page import ACCEPTED_TYPES, FileOutcome, explain_clip, history_entry
from tests.clients.clips import audio_only, face_clip, faceless_clip, long_clip, truncated
from tests.helpers import free_port
from tests.web.test_page import image_captions, outcomes, page, texts, upload

VIDEO_MESSAGES = {cls.default_message for cls in
                  (errors.InvalidVideo, errors.NotAVideo, errors.NoVideoStream, errors.CorruptVideo,
                   errors.VideoFileTooLarge, errors.VideoTooLong, errors.VideoTooLarge, errors.VideoTooManyFrames)}


def test_uploader_takes_every_video_kind():
    assert {"mp4", "mov", "webm", "mkv", "gif"} <= set(ACCEPTED_TYPES)


@pytest.mark.integration
@pytest.mark.timeout(900)  # may start the shared model server (minutes on a busy machine)
def test_clip_gets_verdict_track_plot_frames_and_pdf(monkeypatch, model_server):
    at = page(monkeypatch, model_server)
    upload(at, ("moving face.mp4", face_clip("mp4", source="synthetic"), "video/mp4"),
           ("animation.gif", face_clip("gif", source="synthetic"), "image/gif"),
           ("empty room.webm", faceless_clip("webm"), "video/webm"))

    results = outcomes(at)
    assert [o.ok for o in results] == [True, True, True], [o.error for o in results]
    empty = results.pop()
    assert empty.clip.no_face and empty.clip.shown_label == "no_face"
    assert empty.timelines == [] and empty.tracks == [] and empty.frames == []
    assert "No face found" in PdfReader(io.BytesIO(empty.pdf)).pages[0].extract_text()
    for o in results:
        v = o.clip
        assert v is not None and o.verdict is None, "a clip gets a clip verdict"
        assert v.tracks, "the drawn face is found and tracked"
        assert len(o.timelines) == len(v.tracks) and len(o.tracks) == len(v.tracks)
        assert o.frames and o.frames[0].frame is not None
        reader = PdfReader(io.BytesIO(o.pdf))
        text = "\n".join(p.extract_text() for p in reader.pages)
        assert "video clip" in text and v.headline.split(" (")[0] in text
        assert f"sha256:{v.sha256}" in reader.metadata["/Keywords"]

    shown = texts(at)
    assert shown.count("Score over time, per face track") == 2
    assert all(explain_clip(o.clip) in shown for o in results)
    assert shown.count("df-label") >= 3 and "Traceback" not in shown
    assert shown.count('class="df-label">No face found<') == 1 and explain_clip(empty.clip) in shown
    captions = image_captions(at)
    assert sum(c.startswith("Face 1: ") and "track score" in c for c in captions) == 2, captions   # the plots
    assert any("(heatmap)" in c for c in captions), "the driving face's heatmap is shown"
    assert len(at.table) == 2, "one track table per clip with faces"
    assert sum(b.label == "Download PDF report" for b in at.get("download_button")) == 3
    history = at.session_state["history"]
    assert [h.filename for h in history] == ["empty room.webm", "animation.gif", "moving face.mp4"]
    assert history[0].label == "no_face" and history[0].faces == 0
    assert history[2] == history_entry(results[0])
    assert history[2].faces == len(results[0].clip.tracks)


def test_bad_clips_each_get_their_one_line_reason(monkeypatch):
    """No model server is needed: each clip is refused before any face is sent."""
    at = page(monkeypatch, f"127.0.0.1:{free_port()}", DEEPFAKE_TIMEOUT_S="1", DEEPFAKE_RETRIES="1")
    upload(at, ("cut-off.mp4", truncated(face_clip("mp4", source="synthetic"), 0.4), "video/mp4"),
           ("voice memo.mp4", audio_only("mp4"), "video/mp4"),
           ("ten hours.mp4", long_clip(10.0), "video/mp4"))
    results: list[FileOutcome] = outcomes(at)
    assert [o.ok for o in results] == [False, False, False]
    reasons = [o.error for o in results]
    assert all(o.error_kind == "InvalidImage" for o in results), "kept: the same file is refused the same way"
    assert all("\n" not in r and r.endswith(".") for r in reasons), reasons          # one line each
    assert reasons[0] in VIDEO_MESSAGES and "damaged or incomplete" in reasons[0]
    assert reasons[1] == errors.NoVideoStream.default_message
    assert "too long" in reasons[2] and "10 h" in reasons[2], "the cap is read from the header, and said"
    shown = [e.value for e in at.error]
    assert all(o.error in shown for o in results)
    assert not at.exception and "Traceback" not in texts(at)
    assert at.session_state["history"] == []
