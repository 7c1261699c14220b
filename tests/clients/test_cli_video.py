"""deepfake-scan on video clips: found by content, the same exit codes and JSON conventions as photos, a per-frame
table in the JSON, one line per face track in the text, and bad clips reported in one line while the rest is checked."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from clients import cli
from tests.clients import clips
from tests.clients.fake_servers import predict_server, scripted
from tests.clients.images import encode, noise_photo, photo_with_faces
from tests.clients.test_cli import run_cli
from tests.helpers import free_port


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    """A clip of two faces (MP4 named .bin), an animated GIF without a suffix, a photo, and three bad clips."""
    root = tmp_path_factory.mktemp("clips")
    (root / "two faces.bin").write_bytes(clips.face_clip("mp4", faces=2, size=(320, 160), source="synthetic"))
    (root / "animation").write_bytes(clips.face_clip("gif", source="synthetic"))
    (root / "still.gif").write_bytes(encode(noise_photo((64, 64)), "GIF"))  # a still GIF: neither photo nor clip
    (root / "audio.m4a").write_bytes(clips.audio_only("mp4"))
    (root / "ten hours.mp4").write_bytes(clips.long_clip(10))
    (root / "cut.webm").write_bytes(clips.truncated(clips.face_clip("webm", source="synthetic"), 0.3))
    (root / "photo.png").write_bytes(encode(photo_with_faces([], (200, 160), seed=3), "PNG"))
    return root


def test_folders_find_clips_by_content_and_skip_still_gifs(clip_folder):
    found = cli.expand([clip_folder])
    assert [p.name for p in found.files] == ["animation", "audio.m4a", "cut.webm", "photo.png", "ten hours.mp4",
                                             "two faces.bin"]
    assert [p.name for p in found.skipped] == ["still.gif"]


@pytest.mark.integration
def test_a_batch_with_bad_clips_reports_each_in_one_line_and_checks_the_rest(clip_folder, capsys):
    with predict_server(scripted([0.2], threshold=0.5, band=0.05)) as (target, _):
        code = cli.main([str(clip_folder), "--json", "--jobs", "2", "--target", target])
    rows = {r["filename"]: r for r in _json_lines(capsys.readouterr().out)}
    assert code == 2  # bad files: the scan is incomplete, whatever the verdicts
    assert rows["audio.m4a"]["error"]["kind"] == "NoVideoStream"
    assert rows["ten hours.mp4"]["error"]["kind"] == "VideoTooLong"
    assert "10 h" in rows["ten hours.mp4"]["error"]["message"]
    assert rows["cut.webm"]["error"]["kind"] in ("CorruptVideo", "NotAVideo") or rows["cut.webm"].get("kind") == "video"
    for bad in ("audio.m4a", "ten hours.mp4"):
        assert "\n" not in rows[bad]["error"]["message"]
    clip = rows["two faces.bin"]
    assert clip["kind"] == "video" and clip["label"] == "real" and clip["shown_label"] == "real"
    assert len(clip["tracks"]) == 2 and clip["headline"].startswith("Likely real")
    frame = clip["frames"][0]  # the per-frame table
    assert set(frame) == {"index", "time_s", "keyframe", "faces"}
    assert set(frame["faces"][0]) == {"track_id", "box", "fake_probability"}
    assert rows["animation"]["kind"] == "video" and rows["animation"]["container"] == "GIF"
    assert "label" in rows["photo.png"] and rows["photo.png"].get("kind") != "video"


@pytest.mark.integration
@pytest.mark.parametrize("probability,code,label", [(0.1, 0, "real"), (0.9, 1, "fake"), (0.5, 0, "uncertain")])
def test_clip_exit_codes_follow_the_labels_like_photos(probability, code, label, capsys, tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(clips.face_clip("mp4", source="synthetic"))
    with predict_server(scripted([probability], threshold=0.5, band=0.05)) as (target, _):
        returncode = cli.main([str(path), "--target", target])
    lines = capsys.readouterr().out.splitlines()
    assert returncode == code
    assert lines[0].split()[:2] == ["file", "verdict"]
    row = next(line for line in lines if "clip.mp4" in line)
    assert row.split()[1] == label and "video 2 s" in row
    track_lines = [line for line in lines if line.startswith("    face track ")]
    assert len(track_lines) == 1 and f": {label} (confidence" in track_lines[0] and "most suspicious at" in track_lines[0]


@pytest.mark.integration
def test_a_clip_without_faces_never_exits_fake(tmp_path, capsys):
    path = tmp_path / "landscape.mov"
    path.write_bytes(clips.faceless_clip("mov"))
    with predict_server(scripted([0.95])) as (target, _):
        code = cli.main([str(path), "--json", "--target", target])
    row = _json_lines(capsys.readouterr().out)[0]
    assert code == 0 and row["shown_label"] == "no_face" and row["tracks"] == []
    assert row["headline"].startswith("No face found in the sampled frames")


@pytest.mark.integration
def test_pdf_of_a_clip(tmp_path, capsys):
    path = tmp_path / "clip.mkv"
    path.write_bytes(clips.face_clip("mkv", source="synthetic"))
    with predict_server(scripted([0.3])) as (target, _):
        code = cli.main([str(path), "--json", "--pdf", str(tmp_path / "pdf"), "--target", target])
    row = _json_lines(capsys.readouterr().out)[0]
    assert code == 0 and Path(row["pdf"]).read_bytes().startswith(b"%PDF")


@pytest.mark.integration
def test_cli_subprocess_on_a_clip_against_the_real_server(model_server, tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(clips.face_clip("mp4", faces=2, size=(320, 160)))
    r = run_cli(str(path), "--json", "--target", model_server)
    row = _json_lines(r.stdout)[0]
    assert row["kind"] == "video" and row["label"] in ("fake", "real", "uncertain") and len(row["tracks"]) == 2
    assert row["model_name"] == "deepfake_detector" and r.returncode == (1 if row["label"] == "fake" else 0)
    assert "Traceback" not in r.stderr


def test_a_clip_with_the_server_down_exits_2_with_a_plain_message(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(clips.face_clip("mp4", source="synthetic"))
    r = run_cli(str(path), "--target", f"127.0.0.1:{free_port()}", "--timeout", "2")
    assert r.returncode == 2 and "not reachable" in r.stdout and "Traceback" not in r.stdout + r.stderr
