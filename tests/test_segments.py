"""Fake segments (inference/segments.py) from synthetic P(fake) sequences: boundaries, the
minimum length and the smoothing.

    .venv/bin/pytest tests/test_segments.py
"""

import types

import pytest

from deepfake_detect.inference.results import FaceScore
from deepfake_detect.inference.segments import (describe_segment, find_segments, runs_above, sample_interval,
                                                series_segments, smooth_median)

CUT = 0.5


def test_runs_above_the_cut_are_found_with_inclusive_ends():
    assert runs_above([0.1, 0.9, 0.8, 0.2, 0.7], CUT) == [(1, 2), (4, 4)]
    assert runs_above([0.5, 0.5], CUT) == []  # at the cut is not above it


def test_the_median_removes_a_blip_and_keeps_a_step_where_it_is():
    step = [0.1] * 5 + [0.9] * 5
    assert list(smooth_median(step, 3)) == step
    assert list(smooth_median([0.1, 0.1, 0.9, 0.1, 0.1], 3)) == [0.1] * 5


def test_a_swap_from_4_s_on_gives_one_segment_bounded_midway_between_frames():
    # One frame per second from 0 s to 9 s; the frames from 4 s on read fake.
    times = [float(t) for t in range(10)]
    p_fake = [0.1] * 4 + [0.9] * 6
    segments = series_segments(times, p_fake, CUT, interval=1.0, smoothing_seconds=2.0, min_seconds=1.5)
    assert segments == [(3.5, 9.5, pytest.approx(0.9), 6)]


def test_segments_shorter_than_the_minimum_are_dropped():
    times = [float(t) for t in range(10)]
    p_fake = [0.1] * 4 + [0.9] * 2 + [0.1] * 4
    assert series_segments(times, p_fake, CUT, 1.0, smoothing_seconds=0, min_seconds=2.0) == [(3.5, 5.5, 0.9, 2)]
    assert series_segments(times, p_fake, CUT, 1.0, smoothing_seconds=0, min_seconds=2.5) == []


def test_smoothing_bridges_a_dip_and_hides_a_lone_fake_frame():
    times = [float(t) for t in range(12)]
    dip = [0.1] * 3 + [0.9, 0.9, 0.2, 0.9, 0.9] + [0.1] * 4  # one frame reads real mid-swap
    assert [s[:2] for s in series_segments(times, dip, CUT, 1.0, 0, 1.0)] == [(2.5, 4.5), (5.5, 7.5)]
    assert [s[:2] for s in series_segments(times, dip, CUT, 1.0, 2.0, 1.0)] == [(2.5, 7.5)]
    lone = [0.1] * 5 + [0.95] + [0.1] * 6
    assert series_segments(times, lone, CUT, 1.0, 2.0, 0.5) == []


def test_find_segments_per_person_with_frame_times_from_fps():
    # 15 fps, every 7th frame: person 1 real throughout, person 2 fake from frame 63 (4.2 s) on.
    cfg = types.SimpleNamespace(THRESHOLD=0.5, SEGMENT_SMOOTHING_SECONDS=2.0, MIN_FAKE_SECONDS=1.5)
    frames = list(range(0, 150, 7))
    faces = [FaceScore(f, 0, (0, 0, 50, 50), 1.0, 0.9, person=1) for f in frames]
    faces += [FaceScore(f, 1, (200, 0, 50, 50), 1.0, 0.05 if f >= 63 else 0.95, person=2) for f in frames]
    interval = sample_interval(frames, 15.0)
    assert interval == pytest.approx(7 / 15)
    [segment] = find_segments(faces, interval, 15.0, cfg)
    assert segment.person == 2 and segment.frames == 13
    assert segment.start == pytest.approx(4.2 - 7 / 30) and segment.end == pytest.approx(147 / 15 + 7 / 30)
    assert describe_segment(segment) == "person 2: fake from 0:04.0 to 0:10.0 (P(fake) 0.95)"
    assert find_segments(faces, None, None, cfg) == []  # an image: no time, no segment


def rules_cfg(**changes):
    return types.SimpleNamespace(**{**dict(THRESHOLD=0.5, UNCERTAIN_MARGIN=0.1, VIDEO_SCORE="mean", TRACK_MAX_GAP=2,
                                           TRACK_MIN_IOU=0.3, TRACK_MAX_DISTANCE=1.0, SEGMENT_SMOOTHING_SECONDS=2.0,
                                           MIN_FAKE_SECONDS=1.5), **changes})


def two_person_video(fake_from=None):
    """Faces of a 10-s video at 1 sampled frame per second (fps 10): person 1 (left) real, person 2
    (right) swapped throughout, or only from `fake_from` seconds on when given."""
    frames = list(range(0, 100, 10))
    faces = []
    for frame in frames:
        fake = fake_from is None or frame / 10 >= fake_from
        faces += [FaceScore(frame, 0, (20, 50, 60, 60), 1.0, 0.9, p_real_raw=0.9),
                  FaceScore(frame, 1, (300, 50, 60, 60), 1.0, 0.08 if fake else 0.9, p_real_raw=0.08 if fake else 0.9)]
    return frames, faces


@pytest.mark.parametrize("rule, p_real, verdict", [("mean", 0.49, "UNCERTAIN"), ("person_max", 0.08, "FAKE"),
                                                   ("segment", 0.08, "FAKE")])
def test_one_swapped_person_of_two_is_diluted_by_mean_and_seen_by_the_new_rules(rule, p_real, verdict):
    from deepfake_detect.inference.verdicts import judge_faces

    frames, faces = two_person_video()
    judged = judge_faces(faces, frames, 10.0, rules_cfg(), rule)
    assert (round(judged.p_real, 3), judged.verdict) == (p_real, verdict)
    assert [(p.person, p.verdict) for p in judged.persons] == [(1, "REAL"), (2, "FAKE")]
    assert [(s.person, s.start, s.end) for s in judged.segments] == [(2, 0.0, 9.5)]


def test_a_swap_from_6_s_is_fake_under_segment_whatever_the_margin():
    from deepfake_detect.inference.verdicts import judge_faces

    frames, faces = two_person_video(fake_from=6)
    judged = judge_faces(faces, frames, 10.0, rules_cfg(), "segment")
    [segment] = judged.segments
    assert (segment.person, segment.start, segment.end) == (2, 5.5, 9.5)
    assert judged.verdict == "FAKE" and judged.p_real == pytest.approx(0.08)
    assert judge_faces(faces, frames, 10.0, rules_cfg(), "person_max").verdict == "UNCERTAIN"  # 4 of 10 fake: 0.57
    real_only = [face for face in faces if face.number == 0]
    judged = judge_faces(real_only, frames, 10.0, rules_cfg(), "segment")
    assert judged.segments == [] and judged.verdict == "REAL"  # no segment: scored as person_max


def test_combine_face_scores_rules_and_an_unknown_one():
    from deepfake_detect.inference.verdicts import combine_face_scores

    assert combine_face_scores([0.9, 0.1, 0.9, 0.3], "person_max", [1, 2, 1, 2]) == pytest.approx(0.2)
    assert combine_face_scores([0.9, 0.1], "person_max") == pytest.approx(0.5)  # no persons: one person
    with pytest.raises(ValueError, match="person_max or segment"):
        combine_face_scores([0.3], "median")
