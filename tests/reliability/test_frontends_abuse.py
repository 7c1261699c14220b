"""The page's per-file path under abuse: many users at once, large files, non-images, lying names; no disk writes.

tests/web covers single uploads (AppTest and a browser) and tests/bot the bot's flood limit, concurrent
chats, refusals and its own disk audit. What is added here: many uploads checked at the same time
through one shared client (as the page shares one per process), each outcome compared with the same
file checked alone, so an answer can never be another user's; and an audit of every file opened for
writing while all of that (analysis, overlays, PDF) runs.
"""
from __future__ import annotations

import hashlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from clients.core.config import ClientConfig
from clients.core.errors import FileTooLarge
from clients.core.grpc_client import DetectorClient
from clients.web.page import WebConfig, check_file
from tests.bot.conftest import DiskAudit
from tests.clients.fake_servers import ok_response, predict_server
from tests.clients.images import encode, noise_photo
from tests.reliability.report import record
from tests.reliability.seeds import seed_files

pytestmark = pytest.mark.integration


def content_keyed(call, request, context):
    """A loopback model server whose probability for a crop is a hash of the crop's bytes: answers show whose they are."""
    crops = list(request.inputs["image_bytes"].string_val)
    probs = [int.from_bytes(hashlib.sha256(c).digest()[:2], "big") / 65535 for c in crops]
    return ok_response(len(crops), probs)


def noisy_jpeg(side: tuple[int, int], seed: int, quality: int = 95) -> bytes:
    """A large, hard-to-compress JPEG (a big phone photo's worth of bytes)."""
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 255, (side[1], side[0], 3), dtype=np.uint8)), "JPEG",
                  quality=quality)


def uploads() -> list[tuple[str, bytes]]:
    """What many users send at once: photos, big photos, renamed files, non-images and broken files."""
    s = seed_files()
    files = [(f"user{i}-photo.jpg", encode(noise_photo((300 + 17 * i, 260), seed=i), "JPEG")) for i in range(8)]
    files += [(f"user{i}-scan.png", encode(noise_photo((400, 330 + i), seed=50 + i), "PNG")) for i in range(3)]
    files += [("big-1.jpg", noisy_jpeg((2400, 1800), 1)), ("big-2.jpg", noisy_jpeg((2000, 2000), 2))]
    files += [("over-limit.jpg", noisy_jpeg((600, 400), 3) + bytes(21 * 1024 * 1024))]
    files += [("really-a-png.jpg", s["png"]), ("really-a-webp.png", s["webp-RGBA"]), ("apng.gif", s["apng"])]
    files += [("contract.pdf", s["pdf"]), ("notes.jpg", s["text"]), ("page.png", s["html"]),
              ("archive.webp", s["zip"]), ("empty.jpg", b""), ("cut.jpg", s["jpeg"][: len(s["jpeg"]) // 2]),
              ("bomb.png", s["png-bomb-20000x20000"]), ("lying-exif.jpg", s["exif-orientation-65535"])]
    return files


def _summary(outcome) -> tuple:
    """What a user sees of an outcome, comparable between runs."""
    if outcome.verdict is None:
        return ("error", outcome.error_kind, outcome.error)
    v = outcome.verdict
    return ("ok", v.filename, v.sha256, round(v.fake_probability, 6), v.label, len(v.faces), v.image_size)


@pytest.mark.timeout(900)
def test_many_uploads_at_once_each_get_their_own_answer_and_nothing_is_written(tmp_path, monkeypatch):
    files = uploads()
    watched_tmp = tmp_path / "tmp"
    watched_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(watched_tmp))
    with predict_server(content_keyed) as (target, rec):
        config = WebConfig(client=replace(ClientConfig(), target=target, timeout_s=30.0))
        with DetectorClient(target, timeout_s=30.0) as client:
            alone = {name: _summary(check_file(data, name, client, config)) for name, data in files}
            with DiskAudit.watching() as writes:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    # Every file twice, interleaved, from 8 threads sharing one client.
                    jobs = [(name, pool.submit(check_file, data, name, client, config))
                            for _ in range(2) for name, data in files]
                    together = [(name, job.result(timeout=300)) for name, job in jobs]
    assert writes == [], writes[:10]
    assert list(watched_tmp.iterdir()) == []
    mixed = [(name, alone[name], _summary(o)) for name, o in together if _summary(o) != alone[name]]
    assert not mixed, mixed[:3]
    ok = {name for name, s in alone.items() if s[0] == "ok"}
    for name, data in files:
        if name in ok:
            assert alone[name][1] == name and alone[name][2] == hashlib.sha256(data).hexdigest()
        else:
            kind, message = alone[name][1], alone[name][2]
            assert kind == "InvalidImage" and message and "Traceback" not in message, (name, alone[name])
    assert {n for n in ok} >= {n for n, _ in files if n.startswith(("user", "big-", "really-", "apng", "lying"))}
    assert alone["over-limit.jpg"][2].startswith("The file is too large") or alone["over-limit.jpg"][2] == \
        FileTooLarge().user_message
    # answers really differ by content, so a swapped answer could not pass unnoticed
    assert len({alone[n][3] for n in ok}) >= len(ok) - 2
    record("frontend_abuse", {"files": len(files), "checks": len(files) * 3, "concurrent_threads": 8,
                              "accepted_files": len(ok), "refused_files": len(files) - len(ok),
                              "largest_file_mb": round(max(len(d) for _, d in files) / 2**20, 1),
                              "answers_differing_from_alone": 0, "files_written": 0,
                              "server_calls": rec.calls})


def test_a_crashing_converter_on_one_file_never_stops_the_others(monkeypatch):
    """Unexpected failures stay per file: the page shows a friendly line, no trace, and checks the rest."""
    import clients.core.report as report

    real = report.render_pdf

    def flaky(analysis):
        if analysis.verdict.filename == "poison.jpg":
            raise RuntimeError("boom: /secret/path")
        return real(analysis)

    monkeypatch.setattr(report, "render_pdf", flaky)
    with predict_server(content_keyed) as (target, _):
        config = WebConfig(client=replace(ClientConfig(), target=target))
        with DetectorClient(target, timeout_s=30.0) as client:
            bad = check_file(encode(noise_photo((200, 200), 1), "JPEG"), "poison.jpg", client, config)
            good = check_file(encode(noise_photo((200, 200), 2), "JPEG"), "fine.jpg", client, config)
    assert bad.verdict is None and bad.error and "boom" not in bad.error and "/secret" not in bad.error
    assert good.ok and good.pdf.startswith(b"%PDF")
