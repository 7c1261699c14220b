"""End-to-end client time for a 12 MP JPEG: decode, face detection, crops+quality, request, PDF."""
from __future__ import annotations

import cProfile
import io
import pstats
import time
from dataclasses import dataclass

from bench.stats import Summary, summarise

STAGES = ("decode", "faces", "crops", "quality", "request", "pdf", "total")


@dataclass(frozen=True)
class E2EFigures:
    """Per-stage summaries (ms), the face count found, and the photo's size."""

    stages: dict[str, Summary]
    faces_found: int
    photo_bytes: int


def one_check(photo: bytes, client, config) -> dict[str, float]:
    """One full check as a front end does it (analyze, then the PDF report): ms per stage."""
    from clients.core.analyze import analyze
    from clients.core.report import render_pdf

    t0 = time.perf_counter()
    analysis = analyze(photo, "photo-12mp.jpg", client, config)
    t1 = time.perf_counter()
    render_pdf(analysis)
    t2 = time.perf_counter()
    timings = analysis.verdict.timings_ms
    row = {k: float(timings.get(k, 0.0)) for k in ("decode", "faces", "crops", "quality", "request")}
    row["pdf"] = 1000.0 * (t2 - t1)
    row["total"] = 1000.0 * (t2 - t0)
    row["_faces"] = 0 if analysis.verdict.whole_image else len(analysis.verdict.faces)
    return row


def measure(photo: bytes, target: str, iterations: int) -> E2EFigures:
    """`iterations` checks after two warm-up ones (detector nets and fonts load on first use)."""
    from clients.core.config import ClientConfig
    from clients.core.grpc_client import DetectorClient

    config = ClientConfig.from_env(target=target, timeout_s=30.0)
    rows = []
    with DetectorClient(target, timeout_s=30) as client:
        for _ in range(2):
            one_check(photo, client, config)
        rows = [one_check(photo, client, config) for _ in range(iterations)]
    stages = {k: summarise([r[k] for r in rows]) for k in STAGES}
    return E2EFigures(stages, int(rows[-1]["_faces"]), len(photo))


def profile(photo: bytes, target: str, iterations: int, top: int = 15) -> str:
    """cProfile of `iterations` checks: the top functions by own time, as text for RESULTS.md."""
    from clients.core.config import ClientConfig
    from clients.core.grpc_client import DetectorClient

    config = ClientConfig.from_env(target=target, timeout_s=30.0)
    prof = cProfile.Profile()
    with DetectorClient(target, timeout_s=30) as client:
        one_check(photo, client, config)
        prof.enable()
        for _ in range(iterations):
            one_check(photo, client, config)
        prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(top)
    lines = buf.getvalue().strip().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return "\n".join(lines[start:])
