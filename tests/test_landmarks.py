"""Facial landmarks recorded by stage 01a (issue 25): dlib's predictors, MTCNN's keypoints as the
fallback, in faces.csv in crop pixels; and the face outlines self-blending draws from them.

    .venv/bin/pytest tests/test_landmarks.py
    DFDC_SAMPLE_DIR=/work/shared/dfdc_sample .venv/bin/pytest tests/test_landmarks.py   # + real DFDC clips

Frames are the two portraits of deepfake_detect.sample, whose five landmarks (eyes, nose, mouth
corners) are known in portrait pixels (sample.LANDMARKS); stage 01a runs for real (MTCNN and
dlib's models ship inside their packages). About 30 s on a 2-core CPU.
"""

import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import write_config, write_video_frames
from deepfake_detect.faces.crops import INDEX_FILE, expand_box, read_index
from deepfake_detect.faces.detector import Face
from deepfake_detect.faces.landmarks import (ellipse_outline, face_outline, fallback_outline, format_points,
                                             parse_points, read_row_landmarks)
from deepfake_detect.sample import LANDMARKS, portrait_images

stage01a = importlib.import_module("01a-crop_faces_with_mtcnn")
FRAME_WIDTH = 256


@pytest.fixture(scope="module")
def portraits():
    """{name: (BGR frame FRAME_WIDTH px wide, its five landmarks (5, 2) in frame pixels)}."""
    frames = {}
    for name, rgb in portrait_images().items():
        scale = FRAME_WIDTH / rgb.shape[1]
        small = cv2.resize(rgb, (FRAME_WIDTH, round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        frames[name] = cv2.cvtColor(small, cv2.COLOR_RGB2BGR), np.array(LANDMARKS[name], np.float32) * scale
    return frames


def crop_faces(tmp_path, portraits, **settings):
    """Run stage 01a on the two portraits; return {name: (faces.csv row, crop origin (x1, y1))}."""
    frames_root, faces_root = tmp_path / "frames", tmp_path / "faces"
    names = sorted(portraits)
    write_video_frames(frames_root, "portraits", [portraits[name][0] for name in names])
    config = write_config(tmp_path / "config.py", FRAMES_DIR=frames_root, FACES_DIR=faces_root,
                          OUTPUT_DIR=tmp_path / "out", **settings)
    assert stage01a.main(["--config", str(config), "--workers", "1"]) == 0
    rows = read_index(faces_root / "portraits" / INDEX_FILE)
    found = {}
    for name, row in zip(names, rows):
        frame = portraits[name][0]
        face = Face(int(row["x"]), int(row["y"]), int(row["width"]), int(row["height"]))
        found[name] = row, np.array(expand_box(face, 0.30, frame.shape[1], frame.shape[0])[:2], np.float32)
    return found


def eye_centres_of(model, points):
    """The two eye centres (left of the image first) of a recorded landmark set."""
    if model == "dlib68":
        eyes = [points[36:42].mean(axis=0), points[42:48].mean(axis=0)]
    elif model == "dlib5":
        eyes = [points[0:2].mean(axis=0), points[2:4].mean(axis=0)]
    else:
        eyes = [points[0], points[1]]
    return np.array(sorted(eyes, key=lambda p: p[0]))


@pytest.mark.parametrize("model, count", [("dlib5", 5), ("dlib68", 68), (None, 5)])
def test_stage_01a_records_each_faces_landmarks_in_crop_pixels(tmp_path, portraits, model, count):
    """Each kept face's landmarks land on its eyes (the portraits' known ones, within 12% of the eye
    distance), in the crop's pixels; without a dlib model, MTCNN's five keypoints are recorded."""
    for name, (row, origin) in crop_faces(tmp_path, portraits, LANDMARK_MODEL=model).items():
        recorded, points = read_row_landmarks(row)
        assert recorded == (model or "mtcnn5")
        assert points.shape == (count, 2)
        crop = cv2.imread(str(tmp_path / "faces" / "portraits" / row["file"]))
        assert (points >= -1).all() and (points[:, 0] <= crop.shape[1]).all() and (points[:, 1] <= crop.shape[0]).all()
        truth = portraits[name][1] - origin          # the portrait's known landmarks, in crop pixels
        eye_distance = np.linalg.norm(truth[1] - truth[0])
        error = np.linalg.norm(eye_centres_of(recorded, points) - np.sort(truth[:2], axis=0), axis=1)
        assert error.max() < 0.12 * eye_distance, f"{name}: eyes off by {error.max():.1f} px"


def test_points_round_trip_through_faces_csv_text():
    points = np.array([[10.25, 20.5], [30, 40], [50.04, 60]], np.float32)
    np.testing.assert_allclose(parse_points(format_points(points)), points, atol=0.051)
    assert parse_points("") is None and parse_points("1 2 3") is None and parse_points("a b c d") is None
    assert read_row_landmarks({"frame": "x.png", "file": "x-00.png"}) == (None, None)   # an older faces.csv


def test_five_point_outline_spans_forehead_to_chin():
    outline = ellipse_outline((40, 50), (60, 50))      # eyes 20 px apart
    assert outline[:, 1].min() < 50 - 0.4 * 20 and outline[:, 1].max() > 50 + 1.4 * 20
    assert outline[:, 0].min() < 40 and outline[:, 0].max() > 60
    tilted = face_outline("mtcnn5", np.array([[60, 50], [40, 50], [50, 60], [42, 70], [58, 70]], np.float32))
    np.testing.assert_allclose(np.sort(tilted, axis=0), np.sort(outline, axis=0), atol=1e-3)


def test_fallback_outline_sits_in_the_face_box():
    """A crop of a 100 x 100 box with the 30% margin is 160 x 160, the box at 30-130."""
    outline = fallback_outline(160, 160, 0.30)
    assert outline[:, 0].min() >= 30 - 1 and outline[:, 0].max() <= 130 + 1
    assert outline[:, 1].min() >= 30 - 5 and outline[:, 1].max() <= 130 + 15   # forehead and chin may reach past the box


def test_dfdc_frames_get_landmarks(tmp_path, dfdc_sample_dir):
    """On the real DFDC clips, every kept face gets dlib's five points inside its crop."""
    stage00 = importlib.import_module("00-convert_video_to_image")
    config = write_config(tmp_path / "dfdc.py", VIDEOS_DIR=dfdc_sample_dir / "videos", OUTPUT_DIR=tmp_path)
    assert stage00.main(["--config", str(config), "--workers", "1"]) == 0
    assert stage01a.main(["--config", str(config), "--workers", "1"]) == 0
    rows = [row for index in (tmp_path / "faces").glob(f"*/{INDEX_FILE}") for row in read_index(index) if row["file"]]
    assert len(rows) >= 10
    for row in rows:
        model, points = read_row_landmarks(row)
        assert model == "dlib5" and points.shape == (5, 2)
        height, width = cv2.imread(str(tmp_path / "faces" / Path(row["file"]).name.rsplit("-", 2)[0] / row["file"])).shape[:2]
        assert (points[:, 0] > 0).all() and (points[:, 0] < width).all() and (points[:, 1] > 0).all() \
            and (points[:, 1] < height).all(), f"{row['file']}: {points.tolist()} outside {width}x{height}"


def test_landmark_model_setting_is_checked(tmp_path, capsys):
    config = write_config(tmp_path / "bad.py", LANDMARK_MODEL="dlib99")
    assert stage01a.main(["--config", str(config)]) == 2
    assert "LANDMARK_MODEL = 'dlib99'" in capsys.readouterr().err
