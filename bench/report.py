"""Render the results as Markdown (bench/RESULTS.md): one table of figures, targets, machine, versions, date."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.stats import Summary
from serving import contract

if TYPE_CHECKING:
    from bench.run import Results

ANALYSIS = Path(__file__).resolve().parent / "analysis.md"
"""Hand-written reading of the latest full run (what the time goes to, what was changed); appended verbatim."""

TARGETS = {
    "ratio": 0.85,
    "overhead_ms": 3.0,
    "e2e_p50_ms": 150.0,
    "cold_start_s": 5.0,
    "rss_mb": 600.0,
}


def _row(cells: list[str]) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(cells) + " |"


def _spread(s: Summary, digits: int = 1) -> str:
    """'min-max' of a summary."""
    return f"{s.low:.{digits}f}-{s.high:.{digits}f}"


def _verdict(ok: bool, miss: str) -> str:
    """'met' or 'MISSED (by ...)'."""
    return "met" if ok else f"**MISSED** ({miss})"


def targets(res: "Results") -> dict[str, tuple[float, bool, str]]:
    """Each target: the measured value, whether it is met, and by how much it is missed."""
    ratio = served_ratio(res)
    over = overhead_ms(res)
    e2e_p50 = res.e2e.stages["total"].median
    cold = res.cold_start_s and sorted(res.cold_start_s)[len(res.cold_start_s) // 2]
    rss = max(res.rss_rest_mb, res.load.rss_peak_mb)
    return {
        "served/raw throughput >= 0.85": (ratio, ratio >= TARGETS["ratio"],
                                          f"{ratio:.2f}, {TARGETS['ratio'] - ratio:.2f} short"),
        "server overhead <= 3 ms": (over, over <= TARGETS["overhead_ms"],
                                    f"{over:.1f} ms, {over - TARGETS['overhead_ms']:.1f} ms over"),
        "12 MP end to end p50 < 150 ms": (e2e_p50, e2e_p50 < TARGETS["e2e_p50_ms"],
                                          f"{e2e_p50:.0f} ms, {e2e_p50 - TARGETS['e2e_p50_ms']:.0f} ms over"),
        "cold start < 5 s": (cold, cold < TARGETS["cold_start_s"],
                             f"{cold:.1f} s, {cold - TARGETS['cold_start_s']:.1f} s over"),
        "server RSS < 600 MB": (rss, rss < TARGETS["rss_mb"], f"{rss:.0f} MB, {rss - TARGETS['rss_mb']:.0f} MB over"),
    }


def raw_b32_bytes(res: "Results") -> Summary:
    """Raw from_bytes batch-32 throughput, the faster of the server's thread setting and TensorFlow's own (one
    thread per core, which suits one big batch better): the model's best speed is what serving is held to."""
    key = f"{contract.SIGNATURE_BYTES} b32"
    return max((r.throughput[key] for r in (res.raw, res.raw_tf_threads) if r is not None), key=lambda s: s.median)


def served_ratio(res: "Results") -> float:
    """Served throughput (16 clients) over raw batch-32 throughput, same signature, same run."""
    return res.load.throughput.median / raw_b32_bytes(res).median


def overhead_ms(res: "Results", signature: str = contract.SIGNATURE_BYTES) -> float:
    """Served single-request p50 minus the raw batch-1 median latency of the same signature."""
    return res.latency[signature].median - res.raw.latency_b1_ms[signature].median


def figures_table(res: "Results") -> list[str]:
    """The main table: every figure with median, spread, sample size, target and status."""
    tg = targets(res)
    rows = [_row(["#", "Figure", "Median", "Spread (min-max)", "n", "Target"]),
            _row(["---"] * 6)]
    for figures, label in ((res.raw, ""), (res.raw_tf_threads, ", TensorFlow's threads (one per core)")):
        for key, s in (figures.throughput.items() if figures is not None else ()):
            sig, batch = key.split(" ")
            rows.append(_row(["1", f"raw {sig} batch {batch[1:]}{label} (img/s)", f"{s.median:.1f}", _spread(s),
                              str(s.n), ""]))
    for key, s in res.raw.gradcam_share_pct.items():
        sig, batch = key.split(" ")
        ms = 1000.0 / res.raw.throughput[key].median * s.median / 100.0
        rows.append(_row(["1", f"heatmap (Grad-CAM) extra cost, {sig} batch {batch[1:]}: % of op time "
                               "(~ms per image)", f"{s.median:.2f}% (~{ms:.2f} ms)", _spread(s, 2), str(s.n), ""]))
    for key, s in res.raw.latency_b1_ms.items():
        rows.append(_row(["1", f"raw batch-1 latency, {key} (ms)", f"{s.median:.1f}", _spread(s), str(s.n), ""]))
    for sig, s in res.latency.items():
        rows.append(_row(["2", f"served latency {sig}, batching on: p50 / p99 (ms)",
                          f"{s.median:.1f} / {s.p99:.1f}", _spread(s), str(s.n), ""]))
    for sig, s in res.latency_unbatched.items():
        rows.append(_row(["2", f"served latency {sig}, batching off: p50 / p99 (ms)",
                          f"{s.median:.1f} / {s.p99:.1f}", _spread(s), str(s.n), ""]))
    over = tg["server overhead <= 3 ms"]
    rows.append(_row(["2", "server overhead = served p50 - raw b1 median, from_bytes (ms)", f"{over[0]:.1f}", "", "",
                      f"<= 3 ms: {_verdict(over[1], over[2])}"]))
    rows.append(_row(["2", "server overhead, serving_default (ms)",
                      f"{overhead_ms(res, contract.SIGNATURE_PIXELS):.1f}", "", "", "(info)"]))
    ld = res.load
    rows.append(_row(["3", f"served throughput, {res.config.load_clients} concurrent single-image clients, "
                           "batching on (img/s)", f"{ld.throughput.median:.1f}", _spread(ld.throughput),
                      str(ld.throughput.n), ""]))
    rows.append(_row(["3", "latency under that load: p50 / p99 (ms)", f"{ld.latency_p50_ms:.0f} / "
                      f"{ld.latency_p99_ms:.0f}", "", "", ""]))
    ratio = tg["served/raw throughput >= 0.85"]
    rows.append(_row(["3", "served / raw from_bytes batch-32 throughput (the faster thread setting's)",
                      f"{ratio[0]:.2f}", "", "",
                      f">= 0.85: {_verdict(ratio[1], ratio[2])}"]))
    for stage in ("decode", "faces", "crops", "quality", "request", "pdf", "total"):
        s = res.e2e.stages[stage]
        target = ""
        if stage == "total":
            e = tg["12 MP end to end p50 < 150 ms"]
            target = f"p50 < 150 ms: {_verdict(e[1], e[2])}"
        rows.append(_row(["4", f"12 MP end to end: {stage} p50 / p99 (ms)", f"{s.median:.1f} / {s.p99:.1f}",
                          _spread(s), str(s.n), target]))
    cold = tg["cold start < 5 s"]
    cs = sorted(res.cold_start_s)
    rows.append(_row(["5", "cold start: process start to AVAILABLE (s)", f"{cold[0]:.2f}",
                      f"{cs[0]:.2f}-{cs[-1]:.2f}", str(len(cs)), f"< 5 s: {_verdict(cold[1], cold[2])}"]))
    rss = tg["server RSS < 600 MB"]
    parts = res.rss_parts_mb
    rows.append(_row(["6", "server RSS at rest, after warm-up (MiB)", f"{res.rss_rest_mb:.0f}", "", "1",
                      f"of which RssAnon (private heap) {parts.get('RssAnon', 0):.0f}, RssFile (mapped libraries, "
                      f"shareable) {parts.get('RssFile', 0):.0f}"]))
    rows.append(_row(["6", "server RSS peak under load, sampled every 50 ms (MiB)", f"{ld.rss_peak_mb:.0f}", "", "",
                      f"< 600 MB: {_verdict(rss[1], rss[2])}"]))
    rows.append(_row(["6", "server RSS high-water mark over its life, VmHWM (MiB)", f"{res.rss_hwm_mb:.0f}", "", "1",
                      ""]))
    top = ", ".join(f"{k} {v:.0f}" for k, v in list(res.deps.packages.items())[:5])
    rows.append(_row(["7", "installed size of the client's base dependencies (MiB)", f"{res.deps.total_mb:.0f}",
                      "", "", f"largest: {top}"]))
    return rows


def render(res: "Results") -> str:
    """The whole RESULTS.md."""
    cfg = res.config
    m = res.machine
    idle_before = "none" if not res.busy_before else "; ".join(res.busy_before)
    idle_after = "none" if not res.busy_after else "; ".join(res.busy_after)
    idle = not res.busy_before and not res.busy_after
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench.run`" + (" --quick" if cfg.quick else "") + "); do not edit by hand "
        "(the hand-written reading is bench/analysis.md, appended at the end).",
        "",
        f"- Date: {res.started}; the run took {res.duration_s:.0f} s"
        + (" — **QUICK MODE: one tiny iteration, the figures mean nothing**" if cfg.quick else ""),
        f"- Machine: {m['cpu']}, {m['cores']} cores",
        f"- Versions: python {m['python']}, tensorflow {m['tensorflow']}, grpcio {m['grpcio']}, pillow {m['pillow']}, "
        f"protobuf {m['protobuf']}, numpy {m['numpy']}, opencv {m['opencv-python-headless']}, fpdf2 {m['fpdf2']}",
        f"- Model: {res.model.description}",
        "- Server process: " + ("lean (`--lean_process`: TensorFlow's private modules without its public API or "
                                "Keras, load-only library pages dropped)" if cfg.lean_process else
                                "default (TensorFlow's public API; `--lean_process` off)"),
        f"- Otherwise idle? {'yes' if idle else '**no**'}: other processes using >= 20% of a core at the start: "
        f"{idle_before}; at the end: {idle_after}. Load average (1/5/15 min) before "
        f"{'/'.join(f'{x:.2f}' for x in res.load_before)}, after {'/'.join(f'{x:.2f}' for x in res.load_after)} "
        "(the suite's own server and clients make the load after).",
        f"- Face image: {res.face_source}; 12 MP photo: 4000x3000 JPEG q90, {res.e2e.photo_bytes / 1e6:.1f} MB, "
        f"that face pasted at 1200x1200 on a synthetic background; faces found: {res.e2e.faces_found}.",
        "",
        "## Figures",
        "",
        "Median and spread (min-max) of repeated measurements; n = number of measurements. Throughput: "
        f"{cfg.rounds} rounds of {cfg.calls_b1} calls (batch 1) or {cfg.calls_b32} calls (batch 32). Latency: "
        f"{cfg.latency_requests} sequential requests. Load: {cfg.load_rounds} rounds of {cfg.load_seconds:g} s. "
        f"End to end: {cfg.e2e_iterations} checks after 2 warm-up ones.",
        "",
        *figures_table(res),
        "",
        "## Targets",
        "",
    ]
    for name, (_, ok, miss) in targets(res).items():
        lines.append(f"- {name}: {_verdict(ok, miss)}")
    lines += [
        "",
        "## How each figure is measured",
        "",
        "1. Raw: the version is loaded exactly as the local server loads it "
        "(`serving.local.versions.Servable`: a TF1 session on the MetaGraph, the server's thread settings and "
        "runtime) and "
        "`session.run` is timed on the signature's tensors, no gRPC, no protos, in a child process (so that the "
        "suite's own process never maps TensorFlow's library beside the server's). Throughput is measured a "
        "second time with TensorFlow's own thread choice (intra-op: one thread per core); the served/raw ratio "
        "takes the faster of the two batch-32 figures. " + res.raw.heatmap_note,
        "2. Served: `python -m serving.local` started by the suite on a free loopback port, batching on with "
        "serving/batching_parameters.txt; sequential single-image requests through the client library "
        "(`DetectorClient.predict`, from_bytes with the PNG crop the client sends) and through a raw stub "
        "(serving_default, float32 pixels as tensor_content). Overhead = served p50 - raw batch-1 median, same "
        "signature. A second server with batching off shows what the batching queue adds to a lone request.",
        f"3. Load: {cfg.load_clients} `AsyncDetectorClient`s (one channel each) in one asyncio loop, each sending "
        "one crop at a time back to back; the client process runs on the same 2 cores as the server.",
        "4. End to end: `clients.core.analyze.analyze` on the 12 MP JPEG bytes with a `DetectorClient` (decode with "
        "Pillow's JPEG draft mode, MTCNN face detection on a 1/8-scale decode while the working image decodes on "
        "a second thread, crops, one request with the quality checks running beside it), then "
        "`clients.core.report.render_pdf`. Stage times are the client's own `timings_ms`; since quality overlaps the "
        "request, the stages add up to more than the total.",
        "5. Cold start: wall time from `Popen` of the server to GetModelStatus reporting AVAILABLE (which comes "
        "after the warm-up records are replayed), polled every 50 ms; one sample per server launched.",
        "6. RSS: /proc/PID/status VmRSS of the server at rest (1 s after AVAILABLE), its maximum sampled every "
        "50 ms during the load rounds, and VmHWM (peak over its life, including load and warm-up).",
        f"7. Dependency size: {depsize_method()}. Sizes in MiB.",
        "",
        "The server's own account of its first cold start (load = session + restore, then warm-up replay; "
        "the rest of the cold start is Python and TensorFlow imports): "
        + ("; ".join(f"`{ln}`" for ln in res.load_lines) or "not found in its log") + ".",
        "",
        "## Profile of the end-to-end check (cProfile, top functions by own time)",
        "",
        "```",
        res.e2e_profile,
        "```",
        "",
    ]
    if getattr(res, "video", None) is not None:
        from bench import video

        lines += [video.render(res.video), ""]
    if ANALYSIS.is_file():
        lines += [ANALYSIS.read_text().rstrip(), ""]
    return "\n".join(lines)


def depsize_method() -> str:
    """The dependency-size method, in words."""
    from bench.depsize import METHOD

    return METHOD
