"""The built-in sample: DFDC layout, real face swaps, and faces that MTCNN finds.

Run: .venv/bin/pytest tests/test_sample.py
"""

import json

import cv2
import numpy as np

from deepfake_detect import settings
from deepfake_detect.frames import iter_kept_frames
from deepfake_detect.mtcnn_detector import MtcnnDetector
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
    detections = MtcnnDetector()(frames)
    with_face = sum(1 for faces in detections if faces)
    assert with_face >= 0.9 * len(frames), f"MTCNN found faces in only {with_face} of {len(frames)} frames"


def test_seed_option_makes_other_videos_of_the_same_layout(tmp_path):
    from deepfake_detect.sample import main

    assert main([str(tmp_path / "a"), "--videos-per-person", "1", "--seconds", "1"]) == 0
    assert main([str(tmp_path / "b"), "--videos-per-person", "1", "--seconds", "1", "--seed", "7"]) == 0
    default, other = (json.loads((tmp_path / name / "metadata.json").read_text()) for name in "ab")
    assert len(default) == len(other) == 4 and not set(default) & set(other)  # other names
    assert sorted(e["label"] for e in default.values()) == sorted(e["label"] for e in other.values())
    assert default == make_sample(tmp_path / "c", videos_per_person=1, seconds=1, seed=0)
