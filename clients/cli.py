"""deepfake-scan: check image files from the command line.

    deepfake-scan FILE_OR_DIR... [--json] [--pdf DIR] [--target HOST:PORT] [--timeout S] [--jobs N]

Prints a table (or one JSON object per line with --json) on stdout, in file order, and a progress bar on stderr.
--jobs files are checked at once (default 2): one file's decoding and face search overlaps another's request.
Exit codes: 0 every file scanned and none judged fake, 1 at least one fake, 2 at least one file could not be
checked (errors win over fakes, because the scan is then incomplete). 'uncertain' does not count as fake.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from clients.config import ClientConfig
from clients.errors import DetectorError, DetectorUnavailable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp"}
EXIT_OK, EXIT_FAKE, EXIT_ERROR = 0, 1, 2
MAX_UNAVAILABLE = 3
"""Stop after this many files in a row failed because the detector was unreachable."""
DEFAULT_JOBS = 2
"""Files in flight: the client's CPU work on one overlaps the server's work on another."""


@dataclass
class Outcome:
    """One file's result: a verdict dict, or an error kind and message."""

    path: Path
    verdict: dict | None = None
    error_kind: str = ""
    error: str = ""
    pdf: str = ""

    def to_json(self) -> str:
        """One JSON line: the verdict (plus path) or the error."""
        if self.verdict is not None:
            d = dict(self.verdict, path=str(self.path))
            if self.pdf:
                d["pdf"] = self.pdf
        else:
            d = {"path": str(self.path), "filename": self.path.name,
                 "error": {"kind": self.error_kind, "message": self.error}}
        return json.dumps(d, ensure_ascii=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with the target defaulting to TF_SERVING_TARGET."""
    ap = argparse.ArgumentParser(prog="deepfake-scan", description="Check images for manipulated or generated faces.")
    ap.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR",
                    help="image files, or folders searched recursively for .jpg/.jpeg/.png/.webp")
    ap.add_argument("--json", action="store_true", help="print one JSON object per file instead of a table")
    ap.add_argument("--pdf", type=Path, metavar="DIR", help="also write a PDF report per file into DIR")
    ap.add_argument("--target", help="model server HOST:PORT (default: $TF_SERVING_TARGET or localhost:8500)")
    ap.add_argument("--timeout", type=float, help="deadline of each request in seconds")
    ap.add_argument("--jobs", type=_positive_int, default=DEFAULT_JOBS, metavar="N",
                    help=f"files checked at once (default {DEFAULT_JOBS}); results still print in file order")
    return ap.parse_args(argv)


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def expand(paths: Iterable[Path]) -> tuple[list[Path], list[Outcome]]:
    """Files to scan (folders searched recursively, sorted) and outcomes for paths that do not exist."""
    files: list[Path] = []
    missing: list[Outcome] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            files.append(p)
        else:
            missing.append(Outcome(p, error_kind="NotFound", error="No such file or folder."))
    return files, missing


def scan_one(path: Path, client, config: ClientConfig, pdf_dir: Path | None) -> Outcome:
    """Check one file; every domain error becomes an Outcome, never an exception."""
    from clients.analyze import analyze

    try:
        data = path.read_bytes()
    except OSError as exc:
        return Outcome(path, error_kind="ReadError", error=f"Cannot read the file: {exc.strerror or exc}.")
    try:
        analysis = analyze(data, path.name, client, config)
    except DetectorError as exc:
        return Outcome(path, error_kind=type(exc).__name__, error=exc.user_message)
    out = Outcome(path, verdict=analysis.verdict.to_dict())
    if pdf_dir is not None:
        out.pdf = write_pdf(analysis, path, pdf_dir)
    return out


def scan_all(files: list[Path], client, config: ClientConfig, pdf_dir: Path | None, jobs: int) -> Iterator[Outcome]:
    """Outcomes in file order with `jobs` files in flight; once MAX_UNAVAILABLE in a row found no detector,
    the files not yet started are skipped instead of each waiting out its own timeout."""
    pending: deque[Future] = deque()
    todo = iter(files)
    unavailable = 0
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="scan") as pool:
        while True:
            while unavailable < MAX_UNAVAILABLE and len(pending) < jobs:
                path = next(todo, None)
                if path is None:
                    break
                pending.append(pool.submit(scan_one, path, client, config, pdf_dir))
            if not pending:
                break
            outcome = pending.popleft().result()
            unavailable = unavailable + 1 if outcome.error_kind == DetectorUnavailable.__name__ else 0
            yield outcome
    for path in todo:
        yield Outcome(path, error_kind="Skipped", error="Not checked: the detector is unreachable.")


def write_pdf(analysis, path: Path, pdf_dir: Path) -> str:
    """Write the PDF report beside the others in pdf_dir; return its path."""
    from clients.report import render_pdf

    pdf_dir.mkdir(parents=True, exist_ok=True)
    data = render_pdf(analysis)
    n = 1
    while True:  # exclusive create: two files of the same name scanned at once never share a report
        target = pdf_dir / (f"{path.stem}.pdf" if n == 1 else f"{path.stem}-{n}.pdf")
        try:
            with open(target, "xb") as fh:
                fh.write(data)
            return str(target)
        except FileExistsError:
            n += 1


def table_row(o: Outcome, width: int) -> str:
    """One aligned line of the human-readable table."""
    name = str(o.path)
    name = name if len(name) <= width else "…" + name[-(width - 1):]
    if o.verdict is None:
        return f"{name:<{width}}  {'ERROR':<9}  {'':>10}  {'':>6}  {'':>5}  {o.error}"
    v = o.verdict
    faces = "none" if v["whole_image"] else str(len(v["faces"]))
    notes = "; ".join(w["code"] for w in v["warnings"])
    return (f"{name:<{width}}  {v['label']:<9}  {v['confidence']:>10.1%}  {v['fake_probability']:>6.3f}  "
            f"{faces:>5}  {notes}")


def exit_code(outcomes: list[Outcome]) -> int:
    """2 if any file failed, else 1 if any was judged fake, else 0."""
    if any(o.verdict is None for o in outcomes):
        return EXIT_ERROR
    if any(o.verdict["label"] == "fake" for o in outcomes):
        return EXIT_FAKE
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Scan every file, print results as they come, return the exit code."""
    args = parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    config = ClientConfig.from_env(target=args.target, timeout_s=args.timeout)
    files, outcomes = expand(args.paths)
    width = max([len(str(p)) for p in files + [o.path for o in outcomes]] + [4])
    width = min(width, 60)
    if not args.json:
        print(f"{'file':<{width}}  {'verdict':<9}  {'confidence':>10}  {'p_fake':>6}  {'faces':>5}  notes")
    for o in outcomes:
        print(o.to_json() if args.json else table_row(o, width), flush=True)

    from clients.grpc_client import DetectorClient

    with DetectorClient.from_config(config) as client:
        bar = tqdm(scan_all(files, client, config, args.pdf, args.jobs), total=len(files), desc="scanning",
                   unit="file", file=sys.stderr, disable=None if len(files) > 1 else True)
        for o in bar:
            outcomes.append(o)
            line = o.to_json() if args.json else table_row(o, width)
            if bar.disable:
                print(line, flush=True)
            else:
                bar.write(line, file=sys.stdout)
    code = exit_code(outcomes)
    if not args.json:
        n_err = sum(o.verdict is None for o in outcomes)
        n_fake = sum(o.verdict is not None and o.verdict["label"] == "fake" for o in outcomes)
        print(f"{len(outcomes)} file(s): {n_fake} fake, {n_err} error(s).", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
