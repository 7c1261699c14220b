"""Hostile files to the intake: thousands of generated inputs, zero crashes, zero hangs, clear refusals.

Every input is either decoded to an RGB working image or refused with an InvalidImage kind whose
user_message is a sentence for a person. Anything else (another exception, a hang) fails the run.
Each case runs in-process under a watchdog (SIGALRM raises after WATCHDOG_S; faulthandler kills the
process with all stacks if even that cannot interrupt a C loop), and the slowest case is reported.
"""
from __future__ import annotations

import collections
import faulthandler
import signal
import struct
import time
import warnings

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from clients.core.config import ClientConfig
from clients.core.errors import InvalidImage
from clients.core.intake import load_image
from tests.reliability.report import record
from tests.reliability.seeds import magic_prefixes, seed_files

WATCHDOG_S = 20.0
"""Far above any real decode here (~ms); only a hang reaches it."""
FAST_EXAMPLES = 1_000
FULL_EXAMPLES = 10_000
CONFIG = ClientConfig()
SEED_NAMES = sorted(seed_files())


class Hang(Exception):
    """The watchdog fired: load_image did not return in time."""


def _alarm(_signum, _frame):
    raise Hang(f"load_image still running after {WATCHDOG_S}s")


# Mutations ---------------------------------------------------------------------------------------

SPAN = 2**20


def _apply(data: bytearray, op: tuple) -> bytearray:
    """One mutation: truncate, flip bits, delete, insert, overwrite, repeat a span, or prefix a lying magic."""
    kind, a, b, payload = op
    n = len(data)
    at = a * n // SPAN  # a position spread over the whole file (hypothesis favours small integers)
    if kind == "truncate":
        return data[:at]
    if kind == "flip" and n:
        data[min(at, n - 1)] ^= 1 << (b % 8)
        return data
    if kind == "flip-header" and n:  # headers carry sizes, modes and chunk lengths: hit them harder
        data[a % min(n, 64)] ^= 1 << (b % 8)
        return data
    if kind == "delete" and n:
        i = a % n
        return data[:i] + data[i + 1 + b % 64:]
    if kind == "insert":
        i = a % (n + 1)
        return data[:i] + payload + data[i:]
    if kind == "overwrite" and n:
        i = a % n
        return data[:i] + payload + data[i + len(payload):]
    if kind == "magic":
        prefix = magic_prefixes()[a % len(magic_prefixes())]
        return bytearray(prefix) + data[len(prefix):] if b % 2 else bytearray(prefix) + data
    if kind == "repeat" and n:  # a duplicated span, e.g. two IDATs or a repeated EXIF segment
        i = a % n
        return data[:i] + data[i:i + 1 + b % 256] * 2 + data[i + 1 + b % 256:]
    return data


OPS = st.tuples(
    st.sampled_from(["truncate", "flip", "flip-header", "delete", "insert", "overwrite", "magic", "repeat"]),
    st.integers(0, SPAN), st.integers(0, 2**10), st.binary(min_size=1, max_size=16),
)


@st.composite
def hostile_files(draw) -> tuple[str, bytes]:
    """A seed file mutated by 0-4 operations, raw random bytes (~10%) or a zero-length file (~2%)."""
    pick = draw(st.integers(0, 99))
    if pick < 2:
        return "zero-length", b""
    if pick < 12:
        return "random-bytes", draw(st.binary(max_size=4096))
    name = draw(st.sampled_from(SEED_NAMES))
    data = bytearray(seed_files()[name])
    ops = draw(st.lists(OPS, max_size=4))
    for op in ops:
        data = _apply(data, op)
    label = name + ("" if not ops else "+" + ",".join(o[0] for o in ops))
    return label, bytes(data)


# The check ---------------------------------------------------------------------------------------

class Tally:
    """Outcomes of one run: counts by result kind, the slowest case, and the failures."""

    def __init__(self) -> None:
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.cases = 0
        self.slowest = (0.0, "")
        self.total_s = 0.0

    def figures(self) -> dict:
        return {"inputs": self.cases, "outcomes": dict(self.outcomes.most_common()),
                "max_seconds": round(self.slowest[0], 3), "slowest_case": self.slowest[1],
                "mean_ms": round(1000 * self.total_s / max(1, self.cases), 2),
                "crashes": 0, "hangs": 0, "watchdog_s": WATCHDOG_S}


def check_one(label: str, data: bytes, tally: Tally) -> None:
    """load_image either returns an RGB image or raises an InvalidImage with a user message, within the watchdog."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, WATCHDOG_S)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's EXIF / bomb warnings are not the outcome
            loaded = load_image(data, CONFIG)
            loaded.image.tobytes()  # every pixel really decoded: no lazy failure left for later
        outcome = "accepted"
        assert loaded.image.mode == "RGB", f"{label}: mode {loaded.image.mode}"
        assert 0 < max(loaded.image.size) <= CONFIG.work_long_side, f"{label}: size {loaded.image.size}"
        assert loaded.format in ("JPEG", "PNG", "WEBP")
    except InvalidImage as err:
        outcome = type(err).__name__
        assert isinstance(err.user_message, str) and len(err.user_message.strip()) > 10, f"{label}: {err!r}"
        assert "Traceback" not in err.user_message and "\n" not in err.user_message.strip()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    elapsed = time.perf_counter() - t0
    tally.cases += 1
    tally.total_s += elapsed
    tally.outcomes[outcome] += 1
    if elapsed > tally.slowest[0]:
        tally.slowest = (elapsed, f"{label} ({len(data)} bytes)")


def _run(examples: int, name: str) -> None:
    """Run `examples` generated inputs through check_one and record the figures."""
    tally = Tally()
    faulthandler.dump_traceback_later(WATCHDOG_S * 3 + examples * 0.05, exit=True)

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(hostile_files())
    def fuzz(case):
        check_one(*case, tally)

    try:
        fuzz()
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert tally.cases >= examples
    record(name, {**tally.figures(), "seeds": len(SEED_NAMES)})
    # Both sides are really exercised: the mutations must leave some images decodable and refuse others.
    assert tally.outcomes["accepted"] > 0 and sum(tally.outcomes.values()) > tally.outcomes["accepted"]


def test_hostile_inputs_fast_slice():
    _run(FAST_EXAMPLES, "hostile_inputs_fast")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_hostile_inputs_full_run():
    _run(FULL_EXAMPLES, "hostile_inputs_full")


# Named cases the generator may not hit often: each seed untouched, with its expected outcome -----------

EXPECTED = {
    "png-header-100000x100000": "ImageTooLarge", "png-header-2^31": "ImageTooLarge",
    "png-header-8000x8000-empty-body": "ImageTooLarge", "png-bomb-20000x20000": "ImageTooLarge",
    "png-header-1x70000": "ImageTooSmall", "jpeg-tiny": "ImageTooSmall",
    "text": "NotAnImage", "pdf": "NotAnImage", "svg": "NotAnImage", "html": "NotAnImage", "zip": "NotAnImage",
    "bmp": "NotAnImage", "tiff-F": "NotAnImage", "tiff-I": "NotAnImage", "tiff-CMYK": "NotAnImage",
    "gif-P-transparency": "NotAnImage", "gif-animated": "NotAnImage", "exif-app1-length-lies": "CorruptImage",
}


@pytest.mark.parametrize("name", SEED_NAMES)
def test_each_seed_has_its_expected_outcome(name):
    tally = Tally()
    check_one(name, seed_files()[name], tally)
    assert tally.outcomes[EXPECTED.get(name, "accepted")] == 1, tally.outcomes


def test_seed_bombs_are_small_files_claiming_huge_images():
    bomb = seed_files()["png-bomb-20000x20000"]
    assert len(bomb) < 200_000
    assert struct.unpack(">II", bomb[16:24]) == (20_000, 20_000)  # the IHDR's width and height


def test_animated_seeds_warn_that_only_the_first_frame_is_checked():
    for name in ("webp-animated", "apng", "apng-RGBA"):
        loaded = load_image(seed_files()[name], CONFIG)
        assert [w.code for w in loaded.warnings] == ["animated"], name
