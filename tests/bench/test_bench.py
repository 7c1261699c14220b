"""The benchmark suite runs end to end on one tiny iteration, so `make bench` cannot rot (no timing assertions)."""
from __future__ import annotations

import re

import pytest

from bench import depsize, run, stats


def test_percentiles_and_summary_follow_the_data():
    """Median, spread and p99 come from the measurements, in order, whatever order they arrive in."""
    s = stats.summarise([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.median, s.low, s.high, s.n) == (3.0, 1.0, 5.0, 5)
    assert stats.percentile(list(range(101)), 99) == pytest.approx(99.0)
    assert s.low <= s.median <= s.p99 <= s.high
    with pytest.raises(ValueError):
        stats.summarise([])


def test_client_dependency_closure_excludes_server_and_extras():
    """The client's size counts its base deps only: grpcio and Pillow are in, TensorFlow and Streamlit are not."""
    names = {depsize._norm(d.metadata["Name"]) for d in depsize.closure()}
    assert {"grpcio", "pillow", "numpy", "fpdf2"} <= names
    assert not names & {"tensorflow", "streamlit", "python-telegram-bot", "pytest"}
    assert depsize.measure().total_mb > 1


@pytest.mark.integration
def test_quick_run_measures_every_figure_and_writes_the_table(exported_model, tmp_path):
    """`python -m bench.run --quick` on the test model: every section of RESULTS.md is filled with numbers."""
    out = tmp_path / "RESULTS.md"
    run.main(["--quick", "--model-base", str(exported_model), "--out", str(out)])
    text = out.read_text()
    for needle in ("QUICK MODE", "raw serving_default batch 1", "raw from_bytes batch 32",
                   "raw from_bytes batch 32, TensorFlow's threads (one per core)",
                   "heatmap (Grad-CAM) extra cost", "served latency from_bytes, batching on", "server overhead",
                   "concurrent single-image clients", "served / raw", "12 MP end to end: decode",
                   "12 MP end to end: faces", "12 MP end to end: request", "12 MP end to end: pdf",
                   "cold start", "server RSS at rest", "client's base dependencies", "Machine:", "tensorflow",
                   "grpcio", "pillow", "## Targets", "Profile", "Server process: default (TensorFlow's public API"):
        assert needle in text, needle
    figures = text.split("## Figures", 1)[1].split("\n## ", 1)[0]  # the generated table, not analysis.md's own
    rows = [ln for ln in figures.splitlines() if ln.startswith("| ") and not ln.startswith("| #")]
    assert len(rows) > 20
    # every figure row carries a number in its median column (no NaN, no empty cell)
    for row in rows[1:]:
        median = row.split("|")[3]
        assert re.search(r"\d", median) and "nan" not in median.lower(), row
    assert text.count("met") + text.count("MISSED") >= 5
