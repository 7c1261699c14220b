"""Face tracks: link the face boxes found on a clip's sampled frames into one track per person, by box overlap.

Pure functions on boxes, so the linking is tested on synthetic boxes. Sampled frames can be a second apart, so a
face that moved further than its own width since it was last seen is linked by nearness of centre and likeness of
size when no box overlaps it; a face missing from a few sampled frames (turned away, blurred) keeps its track.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from clients.core.facecrop import Box

MIN_IOU = 0.3
"""Overlap (intersection over union) at which a box surely continues a track."""
MAX_CENTRE_SHIFT = 1.5
"""Without overlap, a box still continues a track when its centre is within this many face sizes of the track's
last box and the sizes differ by less than MAX_SIZE_RATIO."""
MAX_SIZE_RATIO = 1.6
MAX_GAP = 3
"""Sampled frames a track may miss (no box linked) and still continue."""


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when apart)."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def nearness(a: Box, b: Box) -> float:
    """How well b continues a (0..1; 0 = no link): IoU when they overlap enough, else a weaker score (below
    MIN_IOU) for a near centre and a like size."""
    overlap = iou(a, b)
    if overlap >= MIN_IOU:
        return overlap
    size_a, size_b = math.sqrt(a.w * a.h), math.sqrt(b.w * b.h)
    if min(size_a, size_b) <= 0 or max(size_a, size_b) / min(size_a, size_b) > MAX_SIZE_RATIO:
        return 0.0
    shift = math.hypot(a.x + a.w / 2 - b.x - b.w / 2, a.y + a.h / 2 - b.y - b.h / 2) / max(size_a, size_b)
    if shift > MAX_CENTRE_SHIFT:
        return 0.0
    return MIN_IOU * (1.0 - shift / MAX_CENTRE_SHIFT) * 0.99


@dataclass
class Track:
    """One person across sampled frames: (frame position, box position) pairs in time order."""

    track_id: int
    members: list[tuple[int, int]] = field(default_factory=list)
    last_box: Box | None = None
    last_frame: int = -1


def link_tracks(frames: Sequence[Sequence[Box]], max_gap: int = MAX_GAP) -> list[list[int]]:
    """A track id for every box of every frame (same nesting as `frames`), ids 0, 1, ... in order of first sight.

    Greedy matching, best pair first: each box continues at most one live track and each track takes at most one
    box per frame; a track unseen for more than max_gap sampled frames ends; an unmatched box starts a track."""
    ids: list[list[int]] = [[-1] * len(boxes) for boxes in frames]
    live: list[Track] = []
    count = 0
    for f, boxes in enumerate(frames):
        live = [t for t in live if f - t.last_frame <= max_gap + 1]
        pairs = sorted(((nearness(t.last_box, b), ti, bi) for ti, t in enumerate(live) for bi, b in enumerate(boxes)
                        if t.last_box is not None), reverse=True)
        used_t: set[int] = set()
        for score, ti, bi in pairs:
            if score <= 0.0 or ti in used_t or ids[f][bi] != -1:
                continue
            used_t.add(ti)
            _extend(live[ti], f, bi, boxes[bi])
            ids[f][bi] = live[ti].track_id
        for bi, b in enumerate(boxes):
            if ids[f][bi] == -1:
                track = Track(count)
                count += 1
                _extend(track, f, bi, b)
                live.append(track)
                ids[f][bi] = track.track_id
    return ids


def _extend(track: Track, frame: int, box_pos: int, box: Box) -> None:
    """Add a box to a track."""
    track.members.append((frame, box_pos))
    track.last_box = box
    track.last_frame = frame


def group_by_track(ids: Sequence[Sequence[int]]) -> dict[int, list[tuple[int, int]]]:
    """Track id -> its (frame position, box position) pairs in time order."""
    out: dict[int, list[tuple[int, int]]] = {}
    for f, row in enumerate(ids):
        for bi, tid in enumerate(row):
            out.setdefault(tid, []).append((f, bi))
    return out
