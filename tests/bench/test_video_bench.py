"""The video benchmark (bench/video.py) runs end to end on a tiny clip against a scripted server, and its section
replaces an older one in RESULTS.md without touching the rest (no timing assertions)."""
from __future__ import annotations

from bench import video
from tests.clients.fake_servers import predict_server, scripted


def test_quick_measure_fills_every_figure_and_renders_the_section():
    with predict_server(scripted([0.2])) as (target, _):
        figs = video.measure(target, video.ClipSpec.quick(), iterations=1, processes=1)
    assert figs.quick and figs.frames_checked > 0 and figs.clip_bytes > 0
    assert set(figs.stages) == set(video.STAGES) and figs.peak_rss_mb.median > 10
    text = video.render(figs)
    assert text.startswith(video.SECTION) and "QUICK MODE" in text
    assert "end to end, bytes to verdict" in text and "client peak memory" in text
    assert set(figs.no_face) == set(video.NO_FACE) and figs.no_face["passes"].median >= figs.no_face_frames > 0
    assert "same clip without faces: MTCNN passes" in text


def test_the_section_replaces_its_older_self_and_sits_before_the_readings():
    doc = "# Benchmark results\n\n## Figures\n\nx\n\n## Reading of a run\n\ny\n"
    once = video.replace_section(doc, f"{video.SECTION}\n\nfirst\n")
    assert once.index(video.SECTION) < once.index("## Reading") and "first" in once
    twice = video.replace_section(once, f"{video.SECTION}\n\nsecond\n")
    assert "first" not in twice and "second" in twice and twice.count(video.SECTION) == 1
    assert twice.replace(f"{video.SECTION}\n\nsecond\n\n", "") == doc
    assert video.SECTION in video.replace_section("# Benchmark results\n", f"{video.SECTION}\n\nz\n")
