"""Self-blended images (issue 25): the blend on synthetic and real crops, and the outlines it is drawn
from (faces.csv landmarks, else the fallback).

    .venv/bin/pytest tests/test_self_blend.py

The real crops are the built-in sample's portraits, cut around their known five landmarks
(sample.LANDMARKS). No TensorFlow: a few seconds.
"""

import csv

import cv2
import numpy as np
import pytest

from deepfake_detect.faces.crops import INDEX_COLUMNS, INDEX_FILE
from deepfake_detect.faces.landmarks import (face_outline, fallback_outline, format_points, pad_outline,
                                             scale_outline)
from deepfake_detect.files import write_png
from deepfake_detect.models.network import CLASS_NAMES
from deepfake_detect.sample import LANDMARKS, portrait_images
from deepfake_detect.training.split_files import video_of
from deepfake_detect.training.self_blend import (blend_each, crop_outlines, fill_mask, mix_batch, name_seed,
                                                 pair_batch, self_blend)

REAL, FAKE = CLASS_NAMES.index("real"), CLASS_NAMES.index("fake")
SEEDS = range(40)


def synthetic_crop(size=96, seed=0):
    """A textured background with a lighter textured 'face' ellipse whose eyes are at 30%/70% across
    and 40% down: (crop uint8, five points (eyes, nose, mouth corners), the face's box x1, y1, x2, y2)."""
    rng = np.random.default_rng(seed)
    crop = cv2.GaussianBlur(rng.integers(0, 120, (size, size, 3)).astype(np.uint8), (5, 5), 0)
    face = cv2.GaussianBlur(rng.integers(120, 255, (size, size, 3)).astype(np.uint8), (3, 3), 0)
    inside = np.zeros((size, size), np.uint8)
    cv2.ellipse(inside, (size // 2, int(size * 0.55)), (int(size * 0.3), int(size * 0.38)), 0, 0, 360, 1, -1)
    crop[inside == 1] = face[inside == 1]
    points = np.array([[0.35, 0.42], [0.65, 0.42], [0.5, 0.58], [0.4, 0.72], [0.6, 0.72]], np.float32) * size
    return crop, points, (int(size * 0.2), int(size * 0.17), int(size * 0.8), int(size * 0.93))


def portrait_crop(name, size=128):
    """A real crop: the portrait around its face with stage 01's 30% margin, resized to `size`,
    and its five landmarks in the crop's pixels."""
    rgb = portrait_images()[name]
    points = np.array(LANDMARKS[name], np.float32)
    eye_distance = np.linalg.norm(points[1] - points[0])
    centre = points.mean(axis=0)
    half = 1.9 * eye_distance   # about the width of stage 01a's crops: the face box and its 30% margin
    x1, y1 = (centre - half).astype(int)
    crop = rgb[y1:y1 + int(2 * half), x1:x1 + int(2 * half)]
    scale = size / crop.shape[1]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), (points - (x1, y1)) * scale


@pytest.mark.parametrize("seed", SEEDS)
def test_the_mask_lies_inside_the_face(seed):
    crop, points, (x1, y1, x2, y2) = synthetic_crop()
    fake, mask = self_blend(crop, face_outline("mtcnn5", points), np.random.default_rng(seed))
    ys, xs = np.nonzero(mask > 0.01)
    assert len(xs), "an empty mask"
    margin = 0.12 * crop.shape[0]   # the blurred edge, the paper's 5% scale and 3% shift reach a little out
    assert xs.min() >= x1 - margin and xs.max() <= x2 + margin and ys.min() >= y1 - margin and ys.max() <= y2 + margin
    # ...and it covers the middle of the face (eyes to mouth) unless the draw eroded it to a core.
    assert mask[int(points[2, 1]), int(points[2, 0])] > 0.2


@pytest.mark.parametrize("seed", SEEDS)
def test_the_blend_changes_pixels_only_under_the_mask(seed):
    crop, points, _ = synthetic_crop(seed=seed)
    fake, mask = self_blend(crop, face_outline("mtcnn5", points), np.random.default_rng(seed))
    assert fake.shape == crop.shape and fake.dtype == np.uint8
    np.testing.assert_array_equal(fake[mask == 0], crop[mask == 0])
    changed = np.abs(fake.astype(int) - crop.astype(int)).max(axis=2) > 0
    assert changed.any(), "the blend changed nothing"
    assert (mask[changed] > 0).all()


def test_the_same_seed_gives_the_same_blend():
    crop, points, _ = synthetic_crop()
    outline = face_outline("mtcnn5", points)
    first = self_blend(crop, outline, np.random.default_rng(7))
    again = self_blend(crop, outline, np.random.default_rng(7))
    other = self_blend(crop, outline, np.random.default_rng(8))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_real_crops_blend_inside_their_face(name):
    """On the real portraits, the blend's mask covers the eyes, nose and mouth and stays off the
    crop's border (hair, background), for every seed; the pixels outside it are untouched."""
    crop, points = portrait_crop(name)
    outline = face_outline("mtcnn5", points)
    for seed in SEEDS:
        fake, mask = self_blend(crop, outline, np.random.default_rng(seed))
        np.testing.assert_array_equal(fake[mask == 0], crop[mask == 0])
        border = np.ones(mask.shape, bool)
        border[4:-4, 4:-4] = False
        assert mask[border].max() < 0.05, f"seed {seed}: the mask reaches the crop's border"
        covered = [mask[int(y), int(x)] > 0 for x, y in points]
        assert sum(covered) >= 4, f"seed {seed}: the mask misses the face's landmarks"
    # the hull of the outline alone holds every landmark
    hull = fill_mask(crop.shape, cv2.convexHull(outline).reshape(-1, 2))
    assert all(hull[int(y), int(x)] for x, y in points)


def test_val_fakes_depend_on_the_crop_and_seed_not_the_batch():
    crops = np.stack([portrait_crop("astronaut", 64)[0], portrait_crop("hopper", 64)[0]])
    outlines = np.stack([pad_outline(face_outline("mtcnn5", portrait_crop(n, 64)[1])) for n in ("astronaut", "hopper")])
    seeds = np.array([name_seed("a-000-00.png", 0), name_seed("b-000-00.png", 0)])
    together = blend_each(crops, outlines, seeds)
    alone = blend_each(crops[1:], outlines[1:], seeds[1:])
    np.testing.assert_array_equal(together[1], alone[0])
    assert name_seed("a-000-00.png", 0) != name_seed("a-000-00.png", 1)


def test_a_training_batch_pairs_each_real_crop_with_its_fake():
    crop, points, _ = synthetic_crop(64)
    images = np.stack([crop, crop[::-1].copy()])
    outlines = np.stack([pad_outline(face_outline("mtcnn5", points))] * 2)
    x, y = pair_batch(images, outlines, 3)
    assert x.shape == (4, 64, 64, 3) and y.tolist() == [1, 1, 0, 0]
    np.testing.assert_array_equal(x[:2], images)
    assert not np.array_equal(x[2], images[0])


def test_both_replaces_the_stated_share_of_fakes():
    crop, points, _ = synthetic_crop(64)
    dataset_fake = np.zeros_like(crop)
    images = np.stack([crop] * 4 + [dataset_fake] * 4)
    labels = np.array([REAL] * 4 + [FAKE] * 4, np.float32)
    outlines = np.stack([pad_outline(face_outline("mtcnn5", points))] * 4 + [pad_outline(np.zeros((0, 2)))] * 4)
    for share, expected in ((0.0, 0), (0.5, 2), (1.0, 4)):
        mixed = mix_batch(images, labels, outlines, 11, share)
        np.testing.assert_array_equal(mixed[:4], images[:4])            # real crops untouched
        assert sum(not np.array_equal(m, dataset_fake) for m in mixed[4:]) == expected


def write_faces_csv(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    columns = [c for c in INDEX_COLUMNS if any(c in row for row in rows)]
    with open(folder / INDEX_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def test_outlines_come_from_faces_csv_else_the_fallback(tmp_path):
    """A crop with landmarks in faces.csv gets its own outline; one from an older faces.csv (no
    landmark columns) gets the fallback outline; both scaled to INPUT_SIZE."""
    crop, points = portrait_crop("astronaut", 160)
    split = tmp_path / "split" / "train" / "real"
    split.mkdir(parents=True)
    for video in ("new", "old"):
        write_png(split / f"{video}-000-00.png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    faces = tmp_path / "faces"
    write_faces_csv(faces / "new", [{"frame": "new-000.png", "face": 0, "file": "new-000-00.png", "x": 0, "y": 0,
                                     "width": 1, "height": 1, "confidence": "0.99", "landmark_model": "mtcnn5",
                                     "landmarks": format_points(points)}])
    write_faces_csv(faces / "old", [{"frame": "old-000.png", "face": 0, "file": "old-000-00.png", "x": 0, "y": 0,
                                     "width": 1, "height": 1, "confidence": "0.99"}])
    files = [(split / "new-000-00.png", REAL), (split / "old-000-00.png", REAL), (split / "new-000-00.png", FAKE)]
    outlines, sources = crop_outlines(files, faces, 0.30, 64, video_of)
    assert sources == {"mtcnn5": 1, "none: the fallback outline": 1}
    expected_new = scale_outline(face_outline("mtcnn5", points), (160, 160), (64, 64))
    expected_old = scale_outline(fallback_outline(160, 160, 0.30), (160, 160), (64, 64))
    np.testing.assert_allclose(outlines[0][:len(expected_new)], expected_new, atol=0.2)
    np.testing.assert_allclose(outlines[1][:len(expected_old)], expected_old, atol=1e-4)
    assert np.isnan(outlines[2]).all()          # fakes are never blended
    # the fallback still blends inside the crop's face
    small = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA)
    fake, mask = self_blend(small, expected_old, np.random.default_rng(0))
    assert mask[32, 32] > 0 and mask[:4].max() == 0
