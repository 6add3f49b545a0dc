"""The built-in sample: DFDC layout, real face swaps, and faces that MTCNN finds.

Run: .venv/bin/pytest tests/test_sample.py
"""

import json

import cv2
import numpy as np

from deepfake_detect import demo, settings
from deepfake_detect.media.frames import iter_kept_frames
from deepfake_detect.faces.mtcnn import MtcnnFaceDetector
from deepfake_detect.sample import LANDMARKS, face_mask, make_sample, portrait_images, swap_face


def test_sample_has_dfdc_layout_with_fakes_pointing_at_their_originals(tmp_path):
    metadata = make_sample(tmp_path, videos_per_person=2, seconds=2)
    assert json.loads((tmp_path / "metadata.json").read_text()) == metadata
    labels = [entry["label"] for entry in metadata.values()]
    assert labels.count("REAL") == labels.count("FAKE") == 4
    for name, entry in metadata.items():
        assert (tmp_path / name).is_file()
        if entry["label"] == "FAKE":
            assert metadata[entry["original"]]["label"] == "REAL"
    assert make_sample(tmp_path / "again", videos_per_person=2, seconds=2) == metadata  # seeded


def test_swap_changes_the_face_and_nothing_far_from_it():
    portraits = portrait_images()
    swapped = swap_face(portraits["hopper"], LANDMARKS["hopper"], portraits["astronaut"], LANDMARKS["astronaut"])
    inside = face_mask(swapped.shape, LANDMARKS["hopper"]) > 0
    difference = np.abs(swapped.astype(int) - portraits["hopper"].astype(int)).mean(axis=2)
    assert difference[inside].mean() > 20       # a different person's face
    assert difference[:60, :60].mean() < 1       # the corner of the photo is untouched


def test_mtcnn_finds_a_face_in_most_sample_frames(tmp_path):
    make_sample(tmp_path, videos_per_person=2, seconds=3)
    rules = settings.load_config().RESIZE_RULES
    frames = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
              for video in sorted(tmp_path.glob("*.mp4")) for _, frame in iter_kept_frames(video, rules)]
    assert len(frames) == 8 * 3 and frames[0].shape == (300, 400, 3)
    detections = MtcnnFaceDetector()(frames)
    with_face = sum(1 for faces in detections if faces)
    assert with_face >= 0.9 * len(frames), f"MTCNN found faces in only {with_face} of {len(frames)} frames"


def test_sample_takes_vary_but_twins_differ_only_in_the_face(tmp_path):
    metadata = make_sample(tmp_path, videos_per_person=2, seconds=1)
    rules = settings.load_config().RESIZE_RULES
    first_frames = {name: next(iter_kept_frames(tmp_path / name, rules))[1].astype(int) for name in metadata}
    fakes = [name for name, entry in metadata.items() if entry["label"] == "FAKE"]
    for fake in fakes:
        real = first_frames[metadata[fake]["original"]]
        difference = np.abs(first_frames[fake] - real).mean(axis=2)
        assert difference[:30, :].mean() < 6     # the top of the frame: same take, same background
        assert difference.max() > 60             # somewhere a different face
    takes = [first_frames[metadata[fake]["original"]] for fake in fakes]
    assert all(np.abs(takes[0] - other).mean() > 10 for other in takes[1:])  # each take its own look


def test_demo_table_marks_the_held_out_videos(tmp_path, capsys):
    detections = {"inputs": [
        {"input": "v/aaa.mp4", "status": "scored", "p_real": 0.9, "verdict": "REAL"},
        {"input": "v/bbb.mp4", "status": "scored", "p_real": 0.45, "verdict": "UNCERTAIN"},
        {"input": "v/ccc.mp4", "status": "scored", "p_real": 0.8, "verdict": "REAL"},
        {"input": "v/ddd.mp4", "status": "no face", "p_real": None, "verdict": None}]}
    (tmp_path / "detect.json").write_text(json.dumps(detections))
    labels = {"aaa.mp4": "REAL", "bbb.mp4": "FAKE", "ccc.mp4": "FAKE", "ddd.mp4": "FAKE"}
    (tmp_path / "metadata.json").write_text(json.dumps({k: {"label": v} for k, v in labels.items()}))
    (tmp_path / "split.csv").write_text("file,split,class,video,group\n"
                                        "test/real/aaa-000-00.png,test,real,aaa,aaa\n"
                                        "test/fake/bbb-000-00.png,test,fake,bbb,aaa\n"
                                        "train/fake/ccc-000-00.png,train,fake,ccc,ccc\n")
    assert demo.main(["table"] + [str(tmp_path / name) for name in ("detect.json", "metadata.json", "split.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[2:4]] == ["aaa.mp4", "bbb.mp4"]  # only held-out rows
    assert lines[2].split()[-1] == "yes" and lines[3].split()[-1] == "-"
    assert "test     2 videos: 1 right, 0 wrong, 1 uncertain or unscored   <- held out" in lines
    assert "train    1 videos: 0 right, 1 wrong, 0 uncertain or unscored   (trained on)" in lines


def test_seed_option_makes_other_videos_of_the_same_layout(tmp_path):
    from deepfake_detect.sample import main

    assert main([str(tmp_path / "a"), "--videos-per-person", "1", "--seconds", "1"]) == 0
    assert main([str(tmp_path / "b"), "--videos-per-person", "1", "--seconds", "1", "--seed", "7"]) == 0
    default, other = (json.loads((tmp_path / name / "metadata.json").read_text()) for name in "ab")
    assert len(default) == len(other) == 4 and not set(default) & set(other)  # other names
    assert sorted(e["label"] for e in default.values()) == sorted(e["label"] for e in other.values())
    assert default == make_sample(tmp_path / "c", videos_per_person=1, seconds=1, seed=0)


def test_demo_lists_the_held_out_videos_for_stage_04(tmp_path, capsys):
    (tmp_path / "split.csv").write_text("file,split,class,video,group\n"
                                        "test/real/aaa-000-00.png,test,real,aaa,aaa\n"
                                        "test/fake/bbb-000-00.png,test,fake,bbb,aaa\n"
                                        "train/fake/ccc-000-00.png,train,fake,ccc,ccc\n")
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("aaa.mp4", "bbb.mp4", "ccc.mp4", "metadata.json"):
        (videos / name).write_bytes(b"x")
    assert demo.main(["held-out", str(tmp_path / "split.csv"), str(videos)]) == 0
    assert capsys.readouterr().out.split() == [str(videos / "aaa.mp4"), str(videos / "bbb.mp4")]


def test_partial_sample_two_people_and_spliced_takes_with_their_fake_periods(tmp_path):
    from deepfake_detect.faces.crops import keep_faces
    from deepfake_detect.sample import FPS, PARTIAL_SECONDS, SPLICES, make_partial_sample

    metadata = make_partial_sample(tmp_path, seconds=2)
    assert json.loads((tmp_path / "metadata.json").read_text()) == metadata
    assert {name: entry["fake_periods"] for name, entry in metadata.items()} == {
        "two-people-1.mp4": [[0.0, 2.0, 2]], "two-people-2.mp4": [[0.0, 2.0, 1]], "two-people-3.mp4": [],
        "spliced-astronaut.mp4": [[SPLICES["astronaut"], 10.0]], "spliced-hopper.mp4": [[SPLICES["hopper"], 10.0]]}
    cfg = settings.load_config()
    _, frame = next(iter_kept_frames(tmp_path / "two-people-1.mp4", cfg.RESIZE_RULES))
    assert frame.shape == (300, 800, 3)
    [faces] = MtcnnFaceDetector()([cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)])
    kept = keep_faces(faces, cfg.MULTI_FACE_MIN_CONFIDENCE)
    assert sorted(face.x < 400 for face in kept) == [False, True]  # one face on each side, both kept
    # The spliced take is one take throughout: only at its cut does the face change as well.
    capture = cv2.VideoCapture(str(tmp_path / "spliced-hopper.mp4"))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1].astype(int))
    capture.release()
    cut = int(SPLICES["hopper"] * FPS)
    assert len(frames) == PARTIAL_SECONDS * FPS
    steps = [np.abs(after - before).mean() for before, after in zip(frames, frames[1:])]
    assert int(np.argmax(steps)) == cut - 1  # the biggest change between two frames is the swap's start


def test_demo_partial_table_names_the_swapped_person_and_span(tmp_path, capsys):
    segment = {"person": 2, "start": 0.0, "end": 5.2, "p_fake": 0.93, "frames": 11}
    detections = {"threshold": 0.5, "uncertain_margin": 0.1, "inputs": [
        {"input": "p/two-people-1.mp4", "status": "scored", "segments": [segment],
         "p_real_by_rule": {"mean": 0.52, "confident": 0.52, "person_max": 0.07, "segment": 0.07}},
        {"input": "p/spliced-hopper.mp4", "status": "scored", "segments": [],
         "p_real_by_rule": {"mean": 0.6, "confident": 0.6, "person_max": 0.6, "segment": 0.6}},
        {"input": "v/aaa.mp4", "status": "scored", "segments": [], "p_real_by_rule": {}}]}
    metadata = {"two-people-1.mp4": {"label": "FAKE", "fake_periods": [[0.0, 5.0, 2]]},
                "spliced-hopper.mp4": {"label": "FAKE", "fake_periods": [[4.0, 10.0]]}}
    (tmp_path / "detect.json").write_text(json.dumps(detections))
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    assert demo.main(["partial", str(tmp_path / "detect.json"), str(tmp_path / "metadata.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6  # three lines of title, the header, two videos: not the held-out aaa.mp4
    assert lines[4].split()[:9] == ["two-people-1.mp4", "person", "2", "fake", "0:00.0-0:05.0", "0.480", "UNCERTAIN",
                                    "0.930", "FAKE"]
    assert lines[4].split("  ")[-1] == "person 2: fake from 0:00.0 to 0:05.2 (P(fake) 0.93)"
    assert lines[4].split()[-10] == "yes" and lines[5].split()[-4:] == ["no", "no", "fake", "segment"]
    assert demo.span_found([[0.0, 5.0, 1]], [segment, {**segment, "person": 1}]) == "yes (+1 wrong)"
