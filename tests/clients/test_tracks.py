"""Face tracks (clients/core/tracks.py) on synthetic boxes, and the aggregation rules a track's score rests on
(clients/core/aggregate.py)."""
from __future__ import annotations

import pytest

from clients.core import aggregate
from clients.core.facecrop import Box
from clients.core.tracks import group_by_track, iou, link_tracks, nearness


def test_iou_of_equal_apart_and_half_overlapping_boxes():
    a = Box(0, 0, 10, 10)
    assert iou(a, a) == 1.0 and iou(a, Box(20, 20, 10, 10)) == 0.0
    assert iou(a, Box(5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_two_people_walking_past_each_other_keep_their_tracks():
    """Two faces drifting toward each other in 6 sampled frames, listed in a different order on each frame."""
    frames = []
    for t in range(6):
        left, right = Box(10 + 8 * t, 50, 40, 40), Box(200 - 8 * t, 52, 44, 44)
        frames.append([left, right] if t % 2 else [right, left])
    ids = link_tracks(frames)
    for t, row in enumerate(ids):
        left_id = row[1] if t % 2 == 0 else row[0]
        assert left_id == ids[0][1]  # frame 0 lists the right face first: the left face is id 1 throughout
    assert sorted(group_by_track(ids)) == [0, 1]


def test_a_face_missing_from_a_few_frames_keeps_its_track_and_a_long_gap_starts_a_new_one():
    face = Box(100, 100, 60, 60)
    frames = [[face], [], [], [face], [], [], [], [], [face]]
    ids = link_tracks(frames, max_gap=3)
    assert ids[0] == ids[3] == [0]
    assert ids[8] == [1]  # 4 empty frames > max_gap: a new track


def test_a_fast_face_without_overlap_links_by_nearness_but_a_far_one_does_not():
    a = Box(100, 100, 50, 50)
    moved = Box(130, 105, 52, 48)  # overlaps a little
    jump = Box(195, 100, 50, 50)  # no overlap with moved: linked by nearness (1.3 face sizes)
    assert iou(moved, jump) == 0.0 and 0 < nearness(moved, jump) < 0.3
    assert nearness(a, Box(400, 100, 50, 50)) == 0.0
    assert nearness(a, Box(100, 100, 200, 200)) == 0.0  # a different size: someone else
    assert link_tracks([[a], [moved], [jump]]) == [[0], [0], [0]]
    assert link_tracks([[a], [Box(500, 300, 50, 50)]]) == [[0], [1]]


def test_each_track_takes_one_box_per_frame_and_new_faces_get_new_ids():
    frames = [[Box(0, 0, 50, 50)], [Box(2, 0, 50, 50), Box(4, 2, 50, 50)], [Box(300, 0, 40, 40)]]
    ids = link_tracks(frames)
    assert ids[1][0] != ids[1][1] and 0 in ids[1]
    assert ids[2] == [2]
    assert link_tracks([]) == [] and link_tracks([[], []]) == [[], []]


# Aggregation rules -----------------------------------------------------------------------------------------------

def test_rules_give_the_expected_scores():
    scores = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6]
    assert aggregate.track_score(scores, "mean") == pytest.approx(0.5)
    assert aggregate.track_score(scores, "max") == pytest.approx(0.9)
    assert aggregate.track_score(scores, "median") == pytest.approx(0.5)
    assert aggregate.track_score(scores, "topk_mean") == pytest.approx((0.9 + 0.8) / 2)  # top 25% of 8 = 2
    assert aggregate.track_score([0.4], "topk_mean") == pytest.approx(0.4)
    assert aggregate.top_k(1) == 1 and aggregate.top_k(5) == 2 and aggregate.top_k(32) == 8


def test_one_odd_frame_does_not_decide_a_track_under_top_k_but_a_manipulated_stretch_does():
    calm = [0.1] * 31 + [0.95]
    assert aggregate.track_score(calm, "topk_mean") < 0.35
    stretch = [0.1] * 24 + [0.9] * 8
    assert aggregate.track_score(stretch, "topk_mean") == pytest.approx(0.9)


def test_the_default_rule_median_ignores_one_odd_frame_and_a_stretch_under_half_the_track():
    """The measured default (model card, 'Video clips'): a clip score means what a photo score means."""
    assert aggregate.DEFAULT_RULE == "median"
    assert aggregate.track_score([0.1] * 31 + [0.95]) == pytest.approx(0.1)
    assert aggregate.track_score([0.1] * 24 + [0.9] * 8) == pytest.approx(0.1)
    assert aggregate.track_score([0.1] * 12 + [0.9] * 20) == pytest.approx(0.9)


def test_driving_frames_are_the_ones_the_rule_used_most_suspicious_first():
    scores = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6]
    assert aggregate.driving_frames(scores, "topk_mean") == [1, 3]
    assert aggregate.driving_frames(scores, "max") == [1]
    assert aggregate.driving_frames(scores, "mean") == [1, 3, 5]


def test_an_unknown_rule_or_no_scores_is_an_error_and_rules_have_words():
    with pytest.raises(ValueError):
        aggregate.track_score([], "mean")
    with pytest.raises(ValueError):
        aggregate.track_score([0.5], "vote")
    assert "top 25%" in aggregate.rule_description("topk_mean")
    assert "most suspicious face decides" in aggregate.rule_description()
    assert aggregate.DEFAULT_RULE in aggregate.RULES
