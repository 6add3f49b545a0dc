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
    # A walks right, B walks left, 45 px a frame (three quarters of a face width), at one height:
    # between frames 4 and 5 they pass each other, and at frame 5 each face is nearer to where
    # the other one was at frame 4 (25 px against 45). Only the motion prediction keeps them.
    frames = list(range(11))
    walkers = {"a": walk(100, 45, 100, frames), "b": walk(530, -45, 100, frames)}
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


# ---------------------------------------------------------------- everywhere a result appears

def scored_two_person_video(tmp_path=None):
    """A Result as stage 04 makes it: 10 s at 10 fps, one sampled frame per second, person 1 (left)
    real, person 2 (right) swapped from 4 s on; judged by judge_faces (mean rule)."""
    import numpy as np

    from deepfake_detect.inference.results import VIDEO, FaceScore, Result
    from deepfake_detect.inference.verdicts import judge_faces
    from deepfake_detect.settings import load_config

    cfg = load_config()
    frames = list(range(0, 100, 10))
    crop = np.full((40, 40, 3), 128, np.uint8)
    faces = []
    for frame in frames:
        fake = frame >= 40
        faces += [FaceScore(frame, 0, (20, 50, 60, 60), 0.99, 0.9, crop, p_real_raw=0.9),
                  FaceScore(frame, 1, (300, 50, 60, 60), 0.99, 0.08 if fake else 0.9, crop,
                            p_real_raw=0.08 if fake else 0.9)]
    result = Result("two.mp4", VIDEO, frame_indices=frames, faces=faces, fps=10.0,
                    frames_bgr={frame: np.zeros((200, 400, 3), np.uint8) for frame in frames})
    judged = judge_faces(faces, frames, 10.0, cfg)
    result.p_real, result.p_real_raw, result.verdict = judged.p_real, judged.p_real_raw, judged.verdict
    result.persons, result.segments = judged.persons, judged.segments
    return result, cfg


def test_records_and_csv_carry_persons_segments_and_the_person_of_each_face(tmp_path):
    import csv

    from deepfake_detect.inference.records import face_records, input_record, write_results_csv

    result, cfg = scored_two_person_video()
    record = input_record(result)
    assert record["fps"] == 10.0
    assert [(p["person"], p["faces"], p["verdict"]) for p in record["persons"]] == [(1, 10, "REAL"), (2, 10, "UNCERTAIN")]
    assert record["segments"] == [{"person": 2, "start": 3.5, "end": 9.5, "p_fake": pytest.approx(0.92), "frames": 6}]
    assert {face["person"] for face in face_records(result, cfg)} == {1, 2}
    csv_path, faces_path = write_results_csv(tmp_path / "r.csv", [result], cfg, faces=True)
    def read_csv(path):
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    [row] = read_csv(csv_path)
    assert row["persons"] == "1:REAL:0.100;2:UNCERTAIN:0.592" and row["segments"] == "2:3.5-9.5:0.920"
    assert {r["person"] for r in read_csv(faces_path)} == {"1", "2"}


def test_table_lines_per_person_and_segment():
    from deepfake_detect.inference.table import result_lines

    result, _ = scored_two_person_video()
    lines = result_lines(result, 10)
    assert lines[1].startswith("    person 1: 10 faces, seen 0:00.0-0:09.0  P(real) 0.900")
    assert lines[2].strip().startswith("person 2: 10 faces") and lines[2].endswith("UNCERTAIN")
    assert lines[3] == "    person 2: fake from 0:03.5 to 0:09.5 (P(fake) 0.92)"


def test_timeline_draws_a_line_per_person_and_shades_the_segment():
    from deepfake_detect.inference.records import segment_record
    from deepfake_detect.inference.timeline import (frame_series, person_series, segment_spans, timeline_svg)

    result, cfg = scored_two_person_video()
    spans = segment_spans([segment_record(s) for s in result.segments], result.fps)
    assert spans == [(35.0, 95.0, 2)]
    svg = timeline_svg(frame_series(result), cfg.THRESHOLD, person_series(result), spans)
    assert svg.count('class="person"') == 2 and svg.count('class="segment"') == 1
    assert 'class="scores"' not in svg and "2 persons: 1 blue, 2 orange" in svg


def test_annotated_frames_name_the_person_on_each_box(monkeypatch):
    import cv2

    from deepfake_detect.inference import annotate

    labels = []
    real_put_text = cv2.putText
    monkeypatch.setattr(annotate.cv2, "putText", lambda image, text, *rest: labels.append(text) or real_put_text(
        image, text, *rest))
    result, cfg = scored_two_person_video()
    annotate.annotated_frames(result, cfg.THRESHOLD)
    assert labels[:2] == ["person 1: REAL P(fake) 0.10", "person 2: REAL P(fake) 0.10"]
    assert labels[-1] == "person 2: FAKE P(fake) 0.92"


def test_page_lists_persons_and_segments_and_groups_crops_by_person():
    import types

    from flask import render_template

    from deepfake_detect.inference import web
    from deepfake_detect.inference.web_workers import MAX_CROPS_SHOWN, result_payload

    result, cfg = scored_two_person_video()
    # Only the page's template is rendered: a runner that is never asked to score (it has `run`,
    # so create_app does not wrap it as a loaded Scorer, and the live view warms up no model).
    app = web.create_app(types.SimpleNamespace(can_explain=False, run=None), cfg)
    payload = result_payload(result, cfg, with_crops=True)
    assert [line["person"] for line in payload["person_timelines"]] == [1, 2]
    with app.test_request_context():
        html = render_template("index.html", cfg=cfg, max_mb=1, accepted="", meaning="", max_crops=MAX_CROPS_SHOWN,
                               max_seconds=cfg.WEB_MAX_VIDEO_SECONDS, result=payload)
    assert "person 2: fake from 0:03.5 to 0:09.5 (P(fake) 0.92)" in html
    assert html.count('<h3 class="person-crops">') == 2 and 'data-person="2"' in html
    assert html.count('class="segment"') == 1 and html.count('class="person"') == 2
