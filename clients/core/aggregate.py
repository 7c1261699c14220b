"""How a face track's frame scores become one score: the rule a clip verdict rests on, named so it can be measured,
stated in the model card and reported in every clip verdict."""
from __future__ import annotations

import math
from collections.abc import Sequence

RULES = ("mean", "max", "median", "topk_mean")
DEFAULT_RULE = "median"
"""Measured (training/clips.py, model card "Video clips"): with the photo threshold and band, the median keeps a
clip's false alarms at the single-frame rate, while topk_mean and max rank clips slightly better (+0.01 AUC) but
call 8-10 more points of real clips fake. Its cost: a face manipulated in under half the frames scores as real."""
DEFAULT_TOP_FRACTION = 0.25
"""topk_mean averages the top quarter of a track's frame scores (at least one frame)."""


def top_k(n: int, fraction: float = DEFAULT_TOP_FRACTION) -> int:
    """How many of n frame scores the top-k rule averages (at least 1)."""
    return max(1, math.ceil(n * fraction))


def track_score(scores: Sequence[float], rule: str = DEFAULT_RULE, fraction: float = DEFAULT_TOP_FRACTION) -> float:
    """One fake score for a track from its frames' scores, by the named rule."""
    if not scores:
        raise ValueError("a track needs at least one frame score")
    ordered = sorted((float(s) for s in scores), reverse=True)
    if rule == "mean":
        return sum(ordered) / len(ordered)
    if rule == "max":
        return ordered[0]
    if rule == "median":
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    if rule == "topk_mean":
        k = top_k(len(ordered), fraction)
        return sum(ordered[:k]) / k
    raise ValueError(f"unknown aggregation rule {rule!r}; known: {', '.join(RULES)}")


def driving_frames(scores: Sequence[float], rule: str = DEFAULT_RULE, fraction: float = DEFAULT_TOP_FRACTION) -> list[int]:
    """Positions (into scores) of the frames that drove the track's score, most suspicious first."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    if rule == "max":
        return order[:1]
    if rule == "topk_mean":
        return order[:top_k(len(scores), fraction)]
    return order[:min(3, len(order))]


def rule_description(rule: str = DEFAULT_RULE, fraction: float = DEFAULT_TOP_FRACTION) -> str:
    """The rule in words, for verdicts, reports and the model card."""
    if rule == "topk_mean":
        return f"mean of the top {fraction:.0%} of a face's frame scores; the most suspicious face decides the clip"
    return f"{rule} of a face's frame scores; the most suspicious face decides the clip"
