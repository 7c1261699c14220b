"""deepfake-scan: check image and video files from the command line.

    deepfake-scan FILE_OR_DIR... [--json] [--pdf DIR] [--target HOST:PORT] [--timeout S] [--jobs N]

Prints a table (or one JSON object per line with --json) on stdout, in file order, and a progress bar on stderr.
--jobs files are checked at once (default 2): one file's decoding and face search overlaps another's request.
Folders are searched recursively and each file's first bytes decide whether it is an image or a clip (so .jfif and
files without an extension are checked too); files that are neither (JPEG, PNG, WebP; MP4, MOV, WebM, MKV, animated
GIF) are listed on stderr as skipped. A clip's row gives its verdict and face tracks, then one line per track; its
JSON is the ClipVerdict ("kind": "video") with a per-frame table ("frames": time, keyframe, each face's box, track
and score).
Exit codes (photos and clips alike): 0 every file scanned and none judged fake, 1 at least one fake, 2 at least one file could not be
checked, or nothing to check was found (errors win over fakes, because the scan is then incomplete).
'uncertain' does not count as fake, nor does an image or clip without a face: it gets no real/fake verdict
('no_face').
"""
from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from clients.core.config import ClientConfig
from clients.core.detector import Detector
from clients.core.errors import DetectorError, DetectorUnavailable
from clients.core.clip_verdict import ClipVerdict
from clients.core.verdict import Label, Verdict
from clients.core.video import VIDEO_TYPES, container_kind, gif_is_animated

IMAGE_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"))
"""Leading bytes of the accepted formats (WebP is RIFF....WEBP, checked in image_kind)."""
SNIFF_BYTES = 64
SHOWN_SKIPPED = 10
"""Skipped files named one by one on stderr; beyond this, only how many more."""
NAME_COLUMN_MAX = 60
"""Display columns of the file column at most (longer paths keep their end, after an ellipsis)."""
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
    ap = argparse.ArgumentParser(prog="deepfake-scan",
                                 description="Check images and video clips for manipulated or generated faces.")
    ap.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR",
                    help=f"image or video files, or folders searched recursively for JPEG, PNG and WebP images and "
                         f"{VIDEO_TYPES} clips (by content, whatever the file name)")
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


def image_kind(head: bytes) -> str | None:
    """'JPEG', 'PNG' or 'WEBP' from a file's first bytes, else None: the content decides, not the name."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((kind for magic, kind in IMAGE_MAGIC if head.startswith(magic)), None)


def _is_checkable_file(path: Path) -> bool:
    """Whether a file found in a folder starts like an accepted image or clip (an animated GIF, not a still one;
    unreadable files count as not)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
            if image_kind(head) is not None:
                return True
            kind = container_kind(head)
            if kind == "GIF":
                return gif_is_animated(head + fh.read())
            return kind is not None
    except OSError:
        return False


@dataclass
class Found:
    """What the command line names: files to check, paths that do not exist, folders' other files."""

    files: list[Path]
    missing: list[Outcome]
    skipped: list[Path]
    empty_dirs: list[Path]


def expand(paths: Iterable[Path]) -> Found:
    """Files to scan (folders searched recursively, sorted, kept by content), missing paths and what was skipped."""
    found = Found([], [], [], [])
    for p in paths:
        if p.is_dir():
            candidates = sorted(f for f in p.rglob("*") if f.is_file())
            images = [f for f in candidates if _is_checkable_file(f)]
            kept = set(images)
            found.files.extend(images)
            found.skipped.extend(f for f in candidates if f not in kept)
            if not images:
                found.empty_dirs.append(p)
        elif p.is_file():
            found.files.append(p)
        else:
            found.missing.append(Outcome(p, error_kind="NotFound", error="No such file or folder."))
    return found


def report_skipped(found: Found) -> None:
    """Say on stderr which folders held no image and which files were not checked, so nothing is dropped silently."""
    for folder in found.empty_dirs:
        print(f"warning: no JPEG, PNG or WebP image in {folder}, nor any {VIDEO_TYPES} clip", file=sys.stderr)
    if found.skipped:
        print(f"skipped {len(found.skipped)} file(s) that are neither JPEG, PNG or WebP images nor {VIDEO_TYPES} "
              "clips:", file=sys.stderr)
        for path in found.skipped[:SHOWN_SKIPPED]:
            print(f"  {path}", file=sys.stderr)
        if len(found.skipped) > SHOWN_SKIPPED:
            print(f"  ... and {len(found.skipped) - SHOWN_SKIPPED} more", file=sys.stderr)


def scan_one(path: Path, client: Detector, config: ClientConfig, pdf_dir: Path | None) -> Outcome:
    """Check one file, photo or clip by its content; every domain error becomes an Outcome, never an exception."""
    from clients.core.clip import analyze_any

    try:
        data = path.read_bytes()
    except OSError as exc:
        return Outcome(path, error_kind="ReadError", error=f"Cannot read the file: {exc.strerror or exc}.")
    try:
        analysis = analyze_any(data, path.name, client, config)
    except DetectorError as exc:
        return Outcome(path, error_kind=type(exc).__name__, error=exc.user_message)
    out = Outcome(path, verdict=verdict_dict(analysis.verdict))
    if pdf_dir is not None:
        out.pdf = write_pdf(analysis, path, pdf_dir)
    return out


def verdict_dict(verdict: Verdict | ClipVerdict) -> dict:
    """The verdict's JSON with the label a person is shown and the headline (no face: 'no_face', no real/fake);
    a clip's is its ClipVerdict ("kind": "video", per track and per frame)."""
    return dict(verdict.to_dict(), shown_label=verdict.shown_label, headline=verdict.headline)


def shown_label(verdict: dict) -> str:
    """The label a row shows and the exit code counts (older dicts without shown_label: their label)."""
    return verdict.get("shown_label", verdict["label"])


def scan_all(files: list[Path], client: Detector, config: ClientConfig, pdf_dir: Path | None,
             jobs: int) -> Iterator[Outcome]:
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
    """Write the PDF report (a photo's or a clip's) beside the others in pdf_dir; return its path."""
    from clients.core.clip import ClipAnalysis

    if isinstance(analysis, ClipAnalysis):
        from clients.core.clip_report import render_clip_pdf as render
    else:
        from clients.core.report import render_pdf as render

    pdf_dir.mkdir(parents=True, exist_ok=True)
    data = render(analysis)
    n = 1
    while True:  # exclusive create: two files of the same name scanned at once never share a report
        target = pdf_dir / (f"{path.stem}.pdf" if n == 1 else f"{path.stem}-{n}.pdf")
        try:
            with open(target, "xb") as fh:
                fh.write(data)
            return str(target)
        except FileExistsError:
            n += 1


def char_width(ch: str) -> int:
    """Terminal columns of one character: 2 for wide East Asian ones (CJK, most emoji), 0 for combining marks."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Terminal columns a string takes (len() counts a CJK character as one, a terminal shows two)."""
    return sum(char_width(ch) for ch in text)


def fit(text: str, width: int) -> str:
    """The text padded with spaces to exactly `width` columns; a longer one keeps its end after '…'."""
    if display_width(text) > width:
        kept, used = [], 1
        for ch in reversed(text):
            if used + char_width(ch) > width:
                break
            kept.append(ch)
            used += char_width(ch)
        text = "…" + "".join(reversed(kept))
    return text + " " * (width - display_width(text))


def name_width(paths: Iterable[Path]) -> int:
    """Display columns of the file column: the widest path, at least 4, at most NAME_COLUMN_MAX."""
    return min(max([display_width(str(p)) for p in paths] + [4]), NAME_COLUMN_MAX)


def table_header(width: int) -> str:
    """The table's first line."""
    return f"{fit('file', width)}  {'verdict':<9}  {'confidence':>10}  {'p_fake':>6}  {'faces':>5}  notes"


def table_row(o: Outcome, width: int) -> str:
    """One aligned line of the human-readable table (aligned in display columns, whatever the script)."""
    name = fit(str(o.path), width)
    if o.verdict is None:
        return f"{name}  {'ERROR':<9}  {'':>10}  {'':>6}  {'':>5}  {o.error}"
    v = o.verdict
    if v.get("kind") == "video":
        return clip_rows(v, name)
    faces = "none" if v["whole_image"] else str(len(v["faces"]))
    notes = "; ".join(w["code"] for w in v["warnings"])
    confidence = "" if v["whole_image"] else f"{v['confidence']:.1%}"  # no verdict, so no confidence in one
    return (f"{name}  {shown_label(v):<9}  {confidence:>10}  {v['fake_probability']:>6.3f}  "
            f"{faces:>5}  {notes}")


def clip_rows(v: dict, name: str) -> str:
    """A clip's table row (faces column: its face tracks) and one indented line per track, most suspicious first."""
    tracks = v["tracks"]
    notes = "; ".join([f"video {v['duration_s']:.0f} s, {len(v['frames'])} frames"] + [w["code"] for w in v["warnings"]])
    confidence = f"{v['confidence']:.1%}" if tracks else ""
    score = f"{v['fake_probability']:>6.3f}" if tracks else f"{'':>6}"
    lines = [f"{name}  {shown_label(v):<9}  {confidence:>10}  {score}  {len(tracks) or 'none':>5}  {notes}"]
    for t in sorted(tracks, key=lambda t: -t["fake_probability"]):
        times = {f["index"]: f["time_s"] for f in v["frames"]}
        top = ", ".join(f"{times.get(i, 0.0):.1f} s" for i in t["driving_frames"][:3])
        lines.append(f"    face track {t['track_id']}: {t['label']} (confidence {t['confidence']:.0%}), fake score "
                     f"{t['fake_probability']:.3f} over {len(t['frame_indices'])} frames; most suspicious at {top}")
    return "\n".join(lines)


def is_fake(o: Outcome) -> bool:
    """Whether a file was judged fake: an image or clip without a face never is (the model judged no face)."""
    return o.verdict is not None and shown_label(o.verdict) == Label.FAKE


def exit_code(outcomes: list[Outcome]) -> int:
    """2 if any file failed, else 1 if any was judged fake (no-face images never are), else 0."""
    if any(o.verdict is None for o in outcomes):
        return EXIT_ERROR
    if any(is_fake(o) for o in outcomes):
        return EXIT_FAKE
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Scan every file, print results as they come, return the exit code."""
    args = parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    config = ClientConfig.from_env(target=args.target, timeout_s=args.timeout)
    found = expand(args.paths)
    report_skipped(found)
    files, outcomes = found.files, found.missing
    if not files and not outcomes:
        print(f"Nothing to check: no JPEG, PNG or WebP image nor {VIDEO_TYPES} clip was found.", file=sys.stderr)
        return EXIT_ERROR
    width = name_width(files + [o.path for o in outcomes])
    if not args.json:
        print(table_header(width))
    for o in outcomes:
        print(o.to_json() if args.json else table_row(o, width), flush=True)

    from clients.core.detector import make_detector

    with closing(make_detector(config)) as client:
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
        n_fake = sum(is_fake(o) for o in outcomes)
        print(f"{len(outcomes)} file(s): {n_fake} fake, {n_err} error(s).", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
