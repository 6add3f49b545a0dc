"""Person tracks (inference/tracks.py) on synthetic boxes: two people crossing, a missed
detection, a person leaving and another arriving.

    .venv/bin/pytest tests/test_persons.py
"""

import pytest

from deepfake_detect.inference.tracks import box_iou, track_persons


def walk(start_x, step_x, y, frames, size=60):
    """[(frame, box)] of a face walking horizontally, one box per frame."""
    return [(frame, (start_x + step_x * frame, y, size, size)) for frame in frames]


def persons_by_walker(walkers, frame_order, **settings):
    """{walker name: set of person numbers its boxes got}, the detections shuffled by frame."""
    detections = sorted(((frame, box, name) for name, boxes in walkers.items() for frame, box in boxes),
                        key=lambda item: (item[0], -item[1][0]))  # right to left within a frame
    persons = track_persons(frame_order, [(frame, box) for frame, box, _ in detections], **settings)
    found = {}
    for (_, _, name), person in zip(detections, persons):
        found.setdefault(name, set()).add(person)
    return found


def test_box_iou_of_identical_disjoint_and_half_overlapping_boxes():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_two_people_crossing_keep_their_numbers():
    # A walks right, B walks left, 40 px a frame (two thirds of a face width): they cross at frame
    # 5, where their boxes overlap. Without the velocity prediction the nearest box would win
    # there and the tracks would swap.
    frames = list(range(11))
    walkers = {"a": walk(100, 40, 100, frames), "b": walk(500, -40, 120, frames)}
    found = persons_by_walker(walkers, frames)
    assert found == {"a": {1}, "b": {2}}  # numbered left to right at their first frame


def test_a_missed_detection_keeps_the_person_within_the_gap_and_not_beyond():
    frames = list(range(10))
    kept = [f for f in frames if f not in (4, 5)]  # two frames without the face
    found = persons_by_walker({"a": walk(100, 10, 100, kept)}, frames, max_gap=2)
    assert found == {"a": {1}}
    found = persons_by_walker({"a": walk(100, 10, 100, kept)}, frames, max_gap=1)
    assert found == {"a": {1, 2}}  # the gap is longer than allowed: a new person afterwards


def test_a_person_leaving_and_another_arriving_elsewhere_get_two_numbers():
    frames = list(range(12))
    walkers = {"leaves": walk(100, 0, 100, range(0, 5)), "stays": walk(300, 0, 100, frames),
               "arrives": walk(100, 0, 100, range(9, 12))}  # where the first one stood, 4 frames later
    found = persons_by_walker(walkers, frames, max_gap=2)
    assert found == {"leaves": {1}, "stays": {2}, "arrives": {3}}


def test_a_far_jump_is_a_new_person_and_a_face_outside_the_frames_read_is_an_error():
    frames = [0, 15, 30]
    assert track_persons(frames, [(0, (10, 10, 50, 50)), (15, (400, 10, 50, 50))]) == [1, 2]
    with pytest.raises(ValueError, match="frame 7"):
        track_persons(frames, [(7, (10, 10, 50, 50))])
