"""The Streamlit page driven by Streamlit's AppTest against the real local model server on loopback.

AppTest (Streamlit 1.67) drives st.file_uploader itself (`set_value` / `upload`), so these tests go
through the page exactly as a browser session does, minus the browser (see test_browser.py for that).
Each model call is slow on a busy 2-core machine, so the tests share uploads where they can.
"""
from __future__ import annotations

import csv
import io

import pytest
from streamlit.testing.v1 import AppTest

from clients.core import errors
from clients.core.grpc_client import DetectorClient
from clients.core.verdict import Verdict, rule_text
from clients.web.page import (GENERIC_ERROR, SERVER_DOWN, HistoryEntry, WebConfig, explain_label, history_csv,
                         pdf_name, verdict_html)
from serving import contract
from tests.helpers import free_port
from tests.web.conftest import PAGE, synthetic_png

LABEL_WORDS = ("Likely fake", "Likely real", "Uncertain")
INVALID_MESSAGES = {cls.default_message for cls in
                    (errors.InvalidImage, errors.EmptyFile, errors.NotAnImage, errors.CorruptImage,
                     errors.FileTooLarge, errors.ImageTooLarge, errors.ImageTooSmall)}


def page(monkeypatch, target: str, **env: str) -> AppTest:
    """A fresh session of the page, pointed at `target`, after its first run."""
    monkeypatch.setenv("TF_SERVING_TARGET", target)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(str(PAGE), default_timeout=240)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at: AppTest, *files: tuple[str, bytes, str]) -> AppTest:
    """Replace the uploader's files and rerun, as a user dropping them would."""
    at.file_uploader(key="uploads").set_value(list(files)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """Everything the page wrote in markdown, captions and alerts (main area and sidebar)."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    return "\n".join(parts)


def outcomes(at: AppTest) -> list:
    """The page's per-file outcomes, in upload order."""
    return list(at.session_state["outcomes"].values())


def image_captions(at: AppTest) -> list[str]:
    """Captions of every picture on the page."""
    return [c for img in at.image for c in img.captions]


@pytest.mark.integration
@pytest.mark.timeout(900)  # may be the test whose setup starts the shared model server (minutes on a busy machine)
def test_upload_verdict_pdf_and_bad_files(monkeypatch, model_server, plain_png, face_jpeg, corrupt_jpeg, junk_jpg):
    at = page(monkeypatch, model_server)
    assert any("Online" in m.value for m in at.sidebar.markdown)
    assert any("deepfake_detector" in m.value and "version" in m.value for m in at.sidebar.markdown)
    with DetectorClient(model_server, timeout_s=30) as client:
        info = client.model_info()
    rule = f"Decision rule: {rule_text(info.threshold, info.uncertain_band)}."   # exact band edges, as everywhere
    assert rule in [c.value for c in at.sidebar.caption], [c.value for c in at.sidebar.caption]
    upload(at, ("cut-off.jpg", corrupt_jpeg, "image/jpeg"), ("plain.png", plain_png, "image/png"),
           ("junk.jpg", junk_jpg, "image/jpeg"), ("face.jpg", face_jpeg, "image/jpeg"))

    results = outcomes(at)
    assert [o.filename for o in results] == ["cut-off.jpg", "plain.png", "junk.jpg", "face.jpg"]
    assert [o.ok for o in results] == [False, True, False, True], [o.error for o in results]
    for o in (results[1], results[3]):
        v = o.verdict
        assert v.label == contract.label_for(v.fake_probability, v.threshold, v.uncertain_band)
        assert v.confidence == pytest.approx(contract.confidence_for(v.fake_probability, v.label))
        assert o.pdf.startswith(b"%PDF-"), "the report must be a PDF"
        assert o.annotated is not None and min(o.annotated.size) > 0
        assert o.elapsed_s > 0
    assert results[1].verdict.whole_image, "a gradient has no face: the whole image is judged"
    assert not results[3].verdict.whole_image, "the shared photo has a face"

    # What the user sees: a verdict per good file, a friendly message per bad one, no trace.
    shown = texts(at)
    assert sum(shown.count(f'class="df-label">{w}<') for w in LABEL_WORDS) == 1, shown   # the face's verdict
    assert shown.count('class="df-label">No face found<') == 1, "the plain picture gets no real/fake verdict"
    assert shown.count("Checked in") == 2
    assert "no face was found" in shown.lower(), "the no-face warning is shown"
    errors_shown = [e.value for e in at.error]
    assert len(errors_shown) == 2 and all(m in INVALID_MESSAGES for m in errors_shown), errors_shown
    assert not any("Traceback" in t for t in shown.splitlines())
    pdf_buttons = [b for b in at.get("download_button") if b.label == "Download PDF report"]
    assert len(pdf_buttons) == 2 and all(b.proto.url for b in pdf_buttons)
    assert len(at.table) == 2, "one per-face table per verdict"
    assert len(at.session_state["history"]) == 2, "only the good files are predictions"

    # The heatmap toggle swaps the face pictures without asking the server again.
    assert any("(heatmap)" in c for c in image_captions(at))
    at.toggle(key="show_heatmap").set_value(False).run()
    captions = image_captions(at)
    assert any("(crop)" in c for c in captions) and not any("(heatmap)" in c for c in captions)
    assert len(at.session_state["history"]) == 2, "a rerun does not check the files again"


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_history_lists_checks_downloads_csv_and_clears(monkeypatch, model_server, plain_png):
    at = page(monkeypatch, model_server)
    assert any("Nothing checked yet" in c.value for c in at.caption)
    upload(at, ("one.png", plain_png, "image/png"))
    at.file_uploader(key="uploads").upload("two.png", synthetic_png(5), "image/png").run()  # a second drop
    history = at.session_state["history"]
    assert [h.filename for h in history] == ["two.png", "one.png"], "newest first, one line per check"
    assert all(h.thumb_png.startswith(b"\x89PNG") for h in history)
    table = next(m.value for m in at.markdown if "df-history" in m.value)
    assert "one.png" in table and "two.png" in table and "data:image/png;base64," in table

    rows = list(csv.DictReader(io.StringIO(history_csv(history))))
    assert [r["file"] for r in rows] == ["two.png", "one.png"]
    assert {r["verdict"] for r in rows} <= {"fake", "real", "uncertain", "no_face"}
    assert any(b.label == "Download history (CSV)" for b in at.get("download_button"))

    at.sidebar.toggle(key="dark_theme").set_value(True).run()   # other interactions keep the history
    assert len(at.session_state["history"]) == 2
    at.button(key="clear_history").click().run()
    assert at.session_state["history"] == []
    assert any("Nothing checked yet" in c.value for c in at.caption)


@pytest.mark.integration
def test_server_down_is_a_friendly_message(monkeypatch, plain_png):
    closed = f"127.0.0.1:{free_port()}"   # nothing listens there
    at = page(monkeypatch, closed, DEEPFAKE_TIMEOUT_S="2", DEEPFAKE_RETRIES="1")
    assert any("Not reachable" in m.value for m in at.sidebar.markdown)
    assert SERVER_DOWN in [e.value for e in at.error]
    upload(at, ("plain.png", plain_png, "image/png"))

    assert errors.DetectorUnavailable.default_message in [e.value for e in at.error]
    assert outcomes(at) == [], "a failure that may pass is not kept: the next run tries again"
    assert not at.exception
    assert at.session_state["history"] == []


def test_theme_toggle_switches_css_and_survives_reruns(monkeypatch):
    at = page(monkeypatch, f"127.0.0.1:{free_port()}", DEEPFAKE_TIMEOUT_S="1", DEEPFAKE_RETRIES="1")
    light_css = " ".join(h.value for h in at.html)
    assert "color-scheme: light" in light_css and at.session_state["dark_theme"] is False

    at.sidebar.toggle(key="dark_theme").set_value(True).run()
    dark_css = " ".join(h.value for h in at.html)
    assert at.session_state["dark_theme"] is True
    assert "color-scheme: dark" in dark_css and "color-scheme: light" not in dark_css

    at.toggle(key="show_heatmap").set_value(False).run()   # any other interaction reruns the script
    assert at.session_state["dark_theme"] is True
    assert "color-scheme: dark" in " ".join(h.value for h in at.html)

    at.sidebar.toggle(key="dark_theme").set_value(False).run()
    assert "color-scheme: light" in " ".join(h.value for h in at.html)


def test_config_reads_target_limits_and_history_size():
    cfg = WebConfig.from_env({"TF_SERVING_TARGET": "127.0.0.1:9", "DEEPFAKE_MAX_BYTES": "1000",
                              "DEEPFAKE_WEB_HISTORY": "7"})
    assert cfg.client.target == "127.0.0.1:9" and cfg.client.max_bytes == 1000 and cfg.history_size == 7
    with pytest.raises(ValueError, match="DEEPFAKE_WEB_HISTORY"):
        WebConfig.from_env({"DEEPFAKE_WEB_HISTORY": "many"})


def test_pdf_name_is_safe():
    assert pdf_name("holiday photo (1).JPG") == "holiday_photo__1_-report.pdf"
    assert pdf_name("../../etc/passwd") == "passwd-report.pdf"
    assert pdf_name("") == "image-report.pdf"


def test_history_csv_has_header_and_rows():
    from datetime import datetime, timezone

    e = HistoryEntry(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), 'a,"b".png', "fake", 0.9, 0.9, 1, 0.5,
                     "deepfake_detector v3", "ab" * 32)
    rows = list(csv.DictReader(io.StringIO(history_csv([e]))))
    assert rows == [{"time_utc": "2026-01-02 03:04:05", "file": 'a,"b".png', "verdict": "fake",
                     "confidence": "0.9000", "fake_probability": "0.9000", "faces": "1", "seconds": "0.500",
                     "model": "deepfake_detector v3", "sha256": "ab" * 32}]


def test_unexpected_failure_is_a_generic_message_not_a_trace(monkeypatch, capfd):
    # A broken setting makes the page's own config raise: the guard must catch it and log it.
    at = page(monkeypatch, f"127.0.0.1:{free_port()}", DEEPFAKE_WEB_HISTORY="many")
    assert GENERIC_ERROR in [e.value for e in at.error]
    assert not at.exception
    assert "DEEPFAKE_WEB_HISTORY" in capfd.readouterr().err, "the detail goes to the log (stderr)"


def test_uncertain_verdict_is_shown_as_uncertain_with_its_band():
    v = Verdict(label="uncertain", fake_probability=0.55, confidence=0.55, threshold=0.5, uncertain_band=(0.385, 0.62),
                faces=[], whole_image=False, model_name="deepfake_detector", model_version=2)
    banner = verdict_html(v)
    assert 'class="df-verdict df-uncertain"' in banner and ">Uncertain<" in banner
    assert "confidence 55%" not in banner, "a bare percentage beside 'Uncertain' says nothing"
    assert "fake score is 0.550, inside the band 0.385–0.62 where it is not reliable" in banner
    text = explain_label(v)
    assert "0.385–0.62" in text and "cannot tell" in text


def test_no_face_banner_gives_no_real_or_fake_verdict():
    """A picture without a face: the banner says 'No face found', its score only as a labelled whole-image check."""
    v = Verdict(label="fake", fake_probability=0.81, confidence=0.81, threshold=0.42, uncertain_band=(0.385, 0.455),
                faces=[], whole_image=True, model_name="deepfake_detector", model_version=3)
    banner = verdict_html(v)
    assert ">No face found<" in banner and "Likely" not in banner and "81%" not in banner
    assert "whole-image check, not a verdict" in banner
    assert "Whole-image check, not a verdict" in explain_label(v)


def _card_with_faces(n_faces: int, show_heatmap: bool) -> None:
    """An AppTest script: one file's card with n faces (made up, no server), as render_outcome draws it."""
    from datetime import datetime, timezone

    from PIL import Image

    from clients.core.verdict import FaceResult, Verdict
    from clients.web.page import FaceView, FileOutcome, render_outcome

    faces = [FaceResult(box=(10 + 60 * i, 20, 50, 50), fake_probability=0.2 + 0.1 * i, label="real", confidence=0.8,
                        heatmap=[[0.5] * 7] * 7) for i in range(n_faces)]
    verdict = Verdict(label="real", fake_probability=0.2, confidence=0.8, threshold=0.42,
                      uncertain_band=(0.385, 0.455), faces=faces, whole_image=False,
                      model_name="deepfake_detector", model_version=3)
    views = [FaceView(crop=Image.new("RGB", (32, 32), "grey"), overlay=Image.new("RGB", (32, 32), "red"),
                      label=f.label, fake_probability=f.fake_probability, confidence=f.confidence, box=f.box)
             for f in faces]
    outcome = FileOutcome(key="k", filename="group.jpg", checked_at=datetime.now(timezone.utc), elapsed_s=0.1,
                          verdict=verdict, annotated=Image.new("RGB", (320, 200), "white"), faces=views, pdf=b"%PDF-")
    render_outcome(outcome, show_heatmap)


@pytest.mark.parametrize("n_faces", [1, 2, 3, 7])
def test_the_faces_table_numbers_every_face_however_many(n_faces):
    """The "Face #" column is there with one face and with several (a 1..n index used to be hidden by Streamlit)."""
    at = AppTest.from_function(_card_with_faces, args=(n_faces, True), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    (table,) = at.table
    frame = table.value
    shown = list(frame.columns) + ([] if table.proto.hide_index else [frame.index.name])
    assert "Face #" in shown, f"columns on screen: {shown}"
    numbers = frame["Face #"] if "Face #" in frame.columns else frame.index
    assert [int(n) for n in numbers] == list(range(1, n_faces + 1))


def test_a_legend_explains_the_heatmap_colours():
    """Beside the heatmaps: the PDF's colour scale and its words; no legend when heatmaps are off."""
    from clients.core.report import HEATMAP_LEGEND

    at = AppTest.from_function(_card_with_faces, args=(2, True), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert HEATMAP_LEGEND in image_captions(at)
    legend = next(img for img in at.image if HEATMAP_LEGEND in img.captions)
    assert legend.proto.imgs[0].url, "the legend is an image (the colour scale), not only words"
    off = AppTest.from_function(_card_with_faces, args=(2, False), default_timeout=60).run()
    assert HEATMAP_LEGEND not in image_captions(off)


def test_the_legend_is_the_reports_colour_scale():
    from PIL import Image

    from clients.core import overlay
    from clients.web.page import heatmap_legend_png

    shown = Image.open(io.BytesIO(heatmap_legend_png())).convert("RGB")
    assert shown.tobytes() == overlay.legend(256, 12).convert("RGB").tobytes()


@pytest.mark.parametrize("max_bytes,expected_mb", [(None, 20), (5 * 1024 * 1024, 5), (5 * 1024 * 1024 + 1, 5),
                                                   (300 * 1024 * 1024, None)])
def test_the_uploaders_limit_is_the_one_the_core_applies(monkeypatch, max_bytes, expected_mb):
    """The widget states and enforces DEEPFAKE_MAX_BYTES (in whole MB, rounded down, at most the server's cap)."""
    from streamlit import config as st_config

    env = {} if max_bytes is None else {"DEEPFAKE_MAX_BYTES": str(max_bytes)}
    at = page(monkeypatch, f"127.0.0.1:{free_port()}", DEEPFAKE_TIMEOUT_S="1", DEEPFAKE_RETRIES="1", **env)
    limit = at.file_uploader(key="uploads").proto.max_upload_size_mb
    cap = int(st_config.get_option("server.maxUploadSize"))
    assert limit == (expected_mb if expected_mb is not None else cap)
    assert limit * 1024 * 1024 <= WebConfig.from_env().client.max_bytes or expected_mb is None
    assert limit <= cap

