"""The benchmark suite: `python -m bench.run` (what `make bench` runs) measures and writes bench/RESULTS.md.

Run it on an otherwise idle machine: every figure shares the same 2 cores. By default it measures the shipped
model (saved_model/deepfake_detector) when it exists, else an untrained export of the same architecture;
--model-base picks another base path. --quick runs every code path once with tiny iterations (the test does).
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import depsize, e2e, environment, inputs, model, raw, report, served, video
from bench.server import Server, rss_parts_mb

log = logging.getLogger("bench")
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of every measurement; `quick()` shrinks them to one tiny iteration."""

    model_base: Path | None = None
    out: Path = REPO / "bench" / "RESULTS.md"
    rounds: int = 5
    calls_b1: int = 50
    calls_b32: int = 8
    cold_starts: int = 3
    latency_requests: int = 200
    load_clients: int = 16
    load_seconds: float = 8.0
    load_rounds: int = 3
    e2e_iterations: int = 20
    profile_iterations: int = 5
    video_iterations: int = 5
    video_processes: int = 2
    quick: bool = False
    lean_process: bool = False
    """Measure the server started with --lean_process (TensorFlow's private modules), not its default public API."""

    @classmethod
    def quick_config(cls, **kw) -> "BenchConfig":
        """Every code path once, as fast as possible (figures meaningless)."""
        return cls(rounds=1, calls_b1=1, calls_b32=1, cold_starts=2, latency_requests=2, load_clients=4,
                   load_seconds=0.5, load_rounds=1, e2e_iterations=1, profile_iterations=1, video_iterations=1,
                   video_processes=1, quick=True, **kw)


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    """BenchConfig from the command line."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--model-base", type=Path, default=None,
                   help="model base path (default: saved_model/deepfake_detector if it has a version, "
                        "else an untrained stand-in exported to a temp dir)")
    p.add_argument("--out", type=Path, default=BenchConfig.out, help="where to write the results (Markdown)")
    p.add_argument("--quick", action="store_true", help="one tiny iteration of everything (for tests)")
    p.add_argument("--lean-process", action="store_true",
                   help="measure the server's lean process (--lean_process) instead of its default public API")
    a = p.parse_args(argv)
    if a.quick:
        return BenchConfig.quick_config(model_base=a.model_base, out=a.out, lean_process=a.lean_process)
    return BenchConfig(model_base=a.model_base, out=a.out, lean_process=a.lean_process)


@dataclass
class Results:
    """Everything measured, for the report."""

    started: str = ""
    machine: dict = field(default_factory=dict)
    model: model.ModelUnderTest | None = None
    face_source: str = ""
    raw: raw.RawFigures | None = None
    raw_tf_threads: raw.RawFigures | None = None  # the same, with TensorFlow's own thread choice (one per core)
    cold_start_s: list[float] = field(default_factory=list)
    rss_rest_mb: float = 0.0
    rss_hwm_mb: float = 0.0
    rss_parts_mb: dict = field(default_factory=dict)
    load_lines: list[str] = field(default_factory=list)
    latency: dict = field(default_factory=dict)
    latency_unbatched: dict = field(default_factory=dict)
    load: served.LoadFigures | None = None
    e2e: e2e.E2EFigures | None = None
    e2e_profile: str = ""
    video: video.VideoFigures | None = None
    deps: depsize.DepSize | None = None
    busy_before: list[str] = field(default_factory=list)
    busy_after: list[str] = field(default_factory=list)
    load_before: tuple = ()
    load_after: tuple = ()
    duration_s: float = 0.0
    config: BenchConfig | None = None


def raw_in_child(threads: int | None, cfg: BenchConfig, res: Results, inp: inputs.Inputs) -> raw.RawFigures:
    """Raw figures from a child process that loads the version as the server does, measures, and exits.

    The suite's own process never maps TensorFlow: the kernel does not reclaim library pages that another
    process maps too, so a TensorFlow in here would keep the server's RSS at what two processes sharing it
    hold, not what a server alone on its machine holds (as deployed). A process per thread setting, too:
    TensorFlow fixes its thread pools when it starts."""
    log.info("raw in-process throughput (child process, intra-op threads: %s)",
             "the server's" if threads is raw.SERVER_THREADS else threads or "one per core")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(raw.measure_version, (res.model.base, res.model.version, inp.pixels, inp.crop_png,
                                                cfg.rounds, cfg.calls_b1, cfg.calls_b32, threads, cfg.lean_process))


def server_flags(cfg: BenchConfig) -> tuple[str, ...]:
    """The server's own flags for the path under test (none: its default, TensorFlow's public API)."""
    return ("--lean_process",) if cfg.lean_process else ()


def measure_served(cfg: BenchConfig, res: Results, inp: inputs.Inputs, workdir: Path) -> None:
    """Cold starts, RSS, latency, load and end to end against real server processes."""
    base = res.model.base
    flags = server_flags(cfg)
    # Cold start 1: the server every served figure uses (batching on, shipped parameters).
    with Server(base, workdir / "server-batching.log", flags).start() as srv:
        res.cold_start_s.append(srv.wait_available())
        res.load_lines += [ln.split("serving.local: ", 1)[-1] for ln in srv.log_tail(20000).splitlines()
                           if "AVAILABLE (load" in ln]
        log.info("cold start %.2fs; served latency", res.cold_start_s[-1])
        time.sleep(1.0)
        res.rss_rest_mb = srv.rss_mb()[0]
        res.rss_parts_mb = rss_parts_mb(srv.proc.pid)
        res.latency = served.latency(srv.target, inp.crop_png, inp.pixels, cfg.latency_requests)
        log.info("served throughput, %d clients", cfg.load_clients)
        res.load = served.load(srv.target, inp.crop_png, lambda: srv.rss_mb()[0], cfg.load_clients,
                               cfg.load_seconds, cfg.load_rounds)
        log.info("end to end, 12 MP photo")
        res.e2e = e2e.measure(inp.photo_jpeg, srv.target, cfg.e2e_iterations)
        res.e2e_profile = e2e.profile(inp.photo_jpeg, srv.target, cfg.profile_iterations)
        res.rss_hwm_mb = srv.rss_mb()[1]
        log.info("end to end, video clip")  # after the server's peak is read: its figures stay the photo path's
        res.video = video.measure(srv.target, video.ClipSpec.quick() if cfg.quick else video.ClipSpec(),
                                  cfg.video_iterations, cfg.video_processes)
    # Cold start 2: batching off, to see what the batching queue adds to a lone request.
    with Server(base, workdir / "server-nobatching.log", flags, batching=False).start() as srv:
        res.cold_start_s.append(srv.wait_available())
        res.latency_unbatched = served.latency(srv.target, inp.crop_png, inp.pixels, cfg.latency_requests)
    for i in range(cfg.cold_starts - 2):
        with Server(base, workdir / f"server-cold{i}.log", flags).start() as srv:
            res.cold_start_s.append(srv.wait_available())
    log.info("cold starts: %s", ", ".join(f"{s:.2f}s" for s in res.cold_start_s))


def run(cfg: BenchConfig) -> Results:
    """Measure everything in order and return the results."""
    t0 = time.perf_counter()
    res = Results(config=cfg, started=environment.now_utc())
    res.machine = {"cpu": environment.cpu_model(), "cores": environment.cores(), **environment.versions()}
    res.load_before = environment.load_average()
    res.busy_before = environment.busy_processes()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        log.info("inputs")
        inp = inputs.make_inputs()
        res.face_source = inp.face_source
        res.model = model.resolve(cfg.model_base, workdir)
        log.info("model: %s", res.model.description)
        res.raw = raw_in_child(raw.SERVER_THREADS, cfg, res, inp)
        res.raw_tf_threads = raw_in_child(raw.TENSORFLOW_THREADS, cfg, res, inp)
        measure_served(cfg, res, inp, workdir)
        res.deps = depsize.measure()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    res.load_after = environment.load_average()
    res.busy_after = environment.busy_processes()
    res.duration_s = time.perf_counter() - t0
    return res


def main(argv: list[str] | None = None) -> None:
    """Entry point: measure, write the Markdown results, print them."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = parse_args(argv)
    res = run(cfg)
    text = report.render(res)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(text)
    print(text)
    log.info("wrote %s in %.0fs", cfg.out, res.duration_s)


if __name__ == "__main__":
    main()
