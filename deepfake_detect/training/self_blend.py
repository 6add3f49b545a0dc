"""Self-blended images (Shiohara and Yamasaki, CVPR 2022): a fake made from one real crop, by blending
a slightly altered copy of it into itself inside a deformed, blurred mask of the face (issue 25);
the faces' outlines for a split's crops (from stage 01's landmarks in faces.csv); and the NumPy
batch functions stage 03's tf.data pipeline calls (training/pipeline.py).

The recipe follows the paper's official code (SelfBlendedImages, src/utils/sbi.py and blend.py):
a copy of the crop gets a colour change (RGB shift with p=0.3, brightness and contrast) and then
either a down-and-up scale or a sharpening; it moves with the mask by a small affine (scale
0.95-1.05, shift up to 3% across and 1.5% down); the mask, the convex hull of the landmarks, is
deformed elastically, eroded by a blur-and-threshold, blurred again, and the copy is blended in at
a ratio drawn from (0.25, 0.5, 0.75, 1, 1, 1). Only the pixels under the blurred mask change.
Everything runs on the decoded uint8 crop, with OpenCV, from one numpy Generator, so the same seed
gives the same blend.
"""

import hashlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from deepfake_detect.faces.crops import INDEX_FILE, read_index
from deepfake_detect.faces.landmarks import (MAX_OUTLINE_POINTS, face_outline, fallback_outline, pad_outline,
                                             read_row_landmarks, scale_outline, unpad_outline)
from deepfake_detect.media.budget import image_size
from deepfake_detect.models.network import CLASS_NAMES

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
# SELF_BLEND_RECIPE: "paper" follows the paper; "strong" always blends fully (ratio 1) a copy
# colour-changed and then down-scaled by 2 or sharpened hard (alpha 0.5-1): cruder fakes that a
# network trained from random weights learns within a few hundred steps, where the paper's subtler
# ones keep it at chance (docs/03-train.md).
STRONG_RATIOS, STRONG_SOFTENING, STRONG_SHARPENING = (1.0,), 2, (0.5, 1.0)
# The paper works on 380-px crops: it blurs the mask at a working size drawn from 192-256 px with
# kernels of 5-25 px and a second sigma of 5-45 px. Here every one of those is scaled by
# (crop size / PAPER_SIZE), so the blend looks alike at any INPUT_SIZE and costs little at 64-128 px.
PAPER_SIZE = 380
MASK_WORK_SIZES = (192, 257)
BLUR_KERNELS = range(5, 26, 2)
SECOND_BLUR_SIGMAS = (5, 46)
SHIFT_ACROSS, SHIFT_DOWN, SCALE = 0.03, 0.015, (0.95, 1 / 0.95)
# Elastic deformation of the mask: albumentations' ElasticTransform(alpha=50, sigma=7) on 380 px
# (elastic_outline reproduces its wobble on the mask's edge).
ELASTIC_ALPHA, ELASTIC_SIGMA = 50.0, 7.0
MIN_ELASTIC_SPREAD = 0.5  # px: a smaller wobble of the mask's edge is lost in its blurs
# The affine moves a point by at most 3% (shift) + 2.6% (5% scale, half the crop away): the altered
# copy is cut this share of the crop wider than the mask's box on each side.
SOURCE_PAD = 0.1
RGB_SHIFT, RGB_SHIFT_ODDS, BRIGHTNESS, CONTRAST = 20, 0.3, 0.1, 0.1


# ------------------------------------------------------------------ the mask

def elastic_outline(outline, crop_size, rng):
    """The outline's convex hull with an elastically deformed edge: ElasticTransform(alpha=50,
    sigma=7) moves the mask's pixels by a smooth random field whose spread is about 1.2 px per
    380 px with a correlation length of sigma, so the hull's edge is resampled to one point per
    sigma and each point moved by that spread: the same wobble, for ~1/10 of the cost of a remap.
    Below MIN_ELASTIC_SPREAD (crops under ~160 px, where the blurs wash out a sub-pixel wobble) the
    hull is returned as it is."""
    hull = cv2.convexHull(np.asarray(outline, np.float32)).reshape(-1, 2)
    scale = crop_size / PAPER_SIZE
    sigma = max(ELASTIC_SIGMA * scale, 1.0)
    spread = 0.577 / (2 * np.sqrt(np.pi) * ELASTIC_SIGMA) * ELASTIC_ALPHA * scale
    if spread < MIN_ELASTIC_SPREAD:
        return hull
    closed = np.vstack([hull, hull[:1]])
    along = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    steps = np.linspace(0, along[-1], max(8, int(along[-1] / sigma)), endpoint=False)
    edge = np.stack([np.interp(steps, along, closed[:, 0]), np.interp(steps, along, closed[:, 1])], axis=1)
    return (edge + rng.normal(0, spread, edge.shape)).astype(np.float32)


def fill_mask(shape, polygon):
    """float32 (H, W) mask: 1 inside the polygon, 0 outside."""
    mask = np.zeros(shape[:2], np.float32)
    if len(polygon) >= 3:
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1.0)
    return mask


def odd_kernel(size):
    """The nearest odd kernel size >= 1."""
    return max(1, int(round(size)) // 2 * 2 + 1)


def blend_mask(outline, height, width, rng):
    """The paper's mask, scaled to the crop: the outline's convex hull drawn at a random working size
    (its get_blend_mask's), deformed elastically, blurred with only the fully covered core kept (an
    erosion by a random amount), blurred again, and resized to the crop: float32 (H, W) in [0, 1]."""
    scale = max(height, width) / PAPER_SIZE
    work_size = tuple(max(8, int(rng.integers(*MASK_WORK_SIZES) * scale)) for _ in range(2))
    first = odd_kernel(BLUR_KERNELS[rng.integers(len(BLUR_KERNELS))] * scale)
    second = odd_kernel(BLUR_KERNELS[rng.integers(len(BLUR_KERNELS))] * scale)
    sigma = float(rng.integers(*SECOND_BLUR_SIGMAS)) * scale
    edge = elastic_outline(outline, max(height, width), rng)
    mask = fill_mask(work_size[::-1], edge * np.array([work_size[0] / width, work_size[1] / height], np.float32))
    blurred = cv2.GaussianBlur(mask, (first, first), 0)
    peak = float(blurred.max())
    if peak <= 0:
        return np.zeros((height, width), np.float32)
    _, core = cv2.threshold(blurred, peak * (1 - 1e-6), 1.0, cv2.THRESH_BINARY)   # fully covered pixels only
    blurred = cv2.GaussianBlur(core, (second, second), sigma)
    peak = float(blurred.max())
    return cv2.resize(blurred * (1 / peak) if peak > 0 else blurred, (width, height))


# ------------------------------------------------------------------ the altered copy

def change_colour(image, rng):
    """The paper's colour change in one lookup table per channel: an RGB shift (+-20 levels, p=0.3),
    brightness and contrast (+-10%). (Its hue/saturation/value shift of +-0.3 levels changes
    almost nothing on uint8 images, so it is left out.)"""
    shift = rng.uniform(-RGB_SHIFT, RGB_SHIFT, 3) if rng.random() < RGB_SHIFT_ODDS else np.zeros(3)
    contrast, brightness = 1 + rng.uniform(-CONTRAST, CONTRAST), rng.uniform(-BRIGHTNESS, BRIGHTNESS) * 255
    levels = np.arange(256, dtype=np.float32)[:, None]
    table = np.clip((levels + shift[None, :]) * contrast + brightness, 0, 255).astype(np.uint8)
    return cv2.LUT(image, table.reshape(256, 1, 3))


def soften(image, factor):
    """The image down-scaled by `factor` and back: a softer copy."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, width // factor), max(1, height // factor)), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def sharpen(image, alpha, lightness):
    """albumentations' Sharpen: the image blended at `alpha` with its 3x3 Laplacian sharpening."""
    kernel = np.array([[-1, -1, -1], [-1, 8 + lightness, -1], [-1, -1, -1]], np.float32)
    identity = np.zeros((3, 3), np.float32)
    identity[1, 1] = 1
    return cv2.filter2D(image, -1, (1 - alpha) * identity + alpha * kernel)  # saturates to 0-255


def change_sharpness(image, rng, recipe="paper"):
    """At even odds, soften (paper: by 2 or 4; strong: by 2) or sharpen (paper: alpha 0.2-0.5;
    strong: 0.5-1), so the face ends up softer or sharper than around it."""
    if rng.random() < 0.5:
        return soften(image, STRONG_SOFTENING if recipe == "strong" else 2 if rng.random() < 0.5 else 4)
    alpha = rng.uniform(*STRONG_SHARPENING) if recipe == "strong" else rng.uniform(0.2, 0.5)
    return sharpen(image, alpha, rng.uniform(0.5, 1.0))


def alter(image, rng, recipe="paper"):
    """The paper's source transform: a colour change, then a softening or a sharpening."""
    return change_sharpness(change_colour(image, rng), rng, recipe)


def shift_and_scale(height, width, rng):
    """The (2, 3) affine that moves the source and its mask together: scale 0.95-1.05 about the
    centre, a shift of up to 3% across and 1.5% down (the paper's randaffine)."""
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), 0, rng.uniform(*SCALE))
    matrix[:, 2] += (rng.uniform(-SHIFT_ACROSS, SHIFT_ACROSS) * width, rng.uniform(-SHIFT_DOWN, SHIFT_DOWN) * height)
    return matrix


def move_points(points, matrix):
    """Points (N, 2) through a (2, 3) affine."""
    return (np.asarray(points, np.float32) @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


# ------------------------------------------------------------------ the blend

def self_blend(image, outline, rng, recipe="paper"):
    """(fake uint8 (H, W, 3), blend mask float32 (H, W) in [0, 1]) made from one real crop.

    `outline`: the face's polygon in this crop's pixels (landmarks.face_outline). The altered copy
    is always the source, so the fake equals the crop wherever the mask is 0: only the face, inside
    the mask's blurred edge, changes. (The paper alters the target instead half the time, which
    changes the whole picture; the colour and sharpness changes here go both ways, so the face
    still ends up lighter or darker, softer or sharper than its surroundings.)
    """
    height, width = image.shape[:2]
    ratios = STRONG_RATIOS if recipe == "strong" else BLEND_RATIOS
    matrix = shift_and_scale(height, width, rng)
    mask = blend_mask(move_points(outline, matrix), height, width, rng) * ratios[rng.integers(len(ratios))]
    # Only the mask's bounding box is warped and blended (the rest of the fake is the crop itself),
    # and only the part of the crop that the small affine can bring there is altered.
    x, y, box_width, box_height = cv2.boundingRect((mask > 0).astype(np.uint8))
    fake = image.copy()
    if box_width and box_height:
        pad = int(SOURCE_PAD * max(height, width)) + 2
        left, top = max(0, x - pad), max(0, y - pad)
        altered = alter(image[top:min(height, y + box_height + pad), left:min(width, x + box_width + pad)], rng, recipe)
        matrix[:, 2] += matrix[:, :2] @ np.array([left, top], np.float64) - (x, y)
        source = cv2.warpAffine(altered, matrix, (box_width, box_height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
        box = (slice(y, y + box_height), slice(x, x + box_width))
        fake[box] = cv2.blendLinear(source, image[box], mask[box], 1 - mask[box])
    return fake, mask


def blend_batch(images, outlines, rng, recipe="paper"):
    """NumPy: a self-blended fake of every crop of a uint8 batch (B, H, W, 3), each from its padded
    outline (B, K, 2), all drawn from one numpy Generator."""
    fakes = np.empty_like(images)
    for index, (image, outline) in enumerate(zip(images, outlines)):
        fakes[index], _ = self_blend(image, unpad_outline(outline), rng, recipe)
    return fakes


def blend_each(images, outlines, seeds, recipe="paper"):
    """NumPy: blend_batch with a seed of its own per crop (name_seed), so each crop's fake is the
    same whatever batch or order it comes in (val)."""
    fakes = np.empty_like(images)
    for index, (image, outline, seed) in enumerate(zip(images, outlines, seeds)):
        fakes[index], _ = self_blend(image, unpad_outline(outline), np.random.default_rng(int(seed)), recipe)
    return fakes


def name_seed(name, seed):
    """A whole-number seed for one crop from its file name and TRAINING_SEED (None counts as 0):
    the same crop gets the same val fake on every run, resume and machine."""
    digest = hashlib.sha256(f"{seed or 0}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# ------------------------------------------------------------------ the faces' outlines for a split

def crop_size(path):
    """(width, height) of a crop from its file's header (no decoding); None if it cannot be read."""
    try:
        return image_size(path)
    except OSError:
        return None


def read_face_index(faces_dir, video):
    """{crop file name: faces.csv row} of one video's crops; {} when its faces.csv is missing."""
    path = Path(faces_dir) / video / INDEX_FILE
    return {row["file"]: row for row in read_index(path) if row.get("file")} if path.is_file() else {}


def crop_outlines(files, faces_dir, margin, input_size, video_of):
    """(outlines (N, MAX_OUTLINE_POINTS, 2) float32 in INPUT_SIZE pixels, {source: crops}) for the
    real crops among `files` [(path, label)] (fakes get NaN rows: they are never blended). Each
    comes from its faces.csv row in FACES_DIR (stage 01's landmarks), else, for faces.csv files
    written before landmarks were recorded, from fallback_outline."""
    outlines = np.full((len(files), MAX_OUTLINE_POINTS, 2), np.nan, np.float32)
    sources, indexes = Counter(), {}
    for position, (path, label) in enumerate(files):
        if CLASS_NAMES[int(label)] != "real":
            continue
        size = crop_size(path)
        if size is None:
            continue  # unreadable: the decoder names it and leaves it out
        video = video_of(Path(path).name)
        if video not in indexes:
            indexes[video] = read_face_index(faces_dir, video)
        model, points = read_row_landmarks(indexes[video].get(Path(path).name, {}))
        outline = face_outline(model, points) if model else fallback_outline(*size, margin)
        sources[model or "none: the fallback outline"] += 1
        outlines[position] = pad_outline(scale_outline(outline, size, (input_size, input_size)))
    return outlines, dict(sources)


def describe_sources(sources):
    """'198 crops: 198 dlib5' for the plan printed by stage 03."""
    return f"{sum(sources.values()):,} real crops' landmarks: " + ", ".join(
        f"{count:,} {source}" for source, count in sorted(sources.items()))


# ------------------------------------------------------------------ in the tf.data input pipeline

def pair_batch(images, outlines, seed, recipe="paper"):
    """NumPy: a batch of real crops -> (the crops then their self-blended fakes, labels 1 then 0)."""
    fakes = blend_batch(images, outlines, np.random.default_rng(int(seed)), recipe)
    labels = np.concatenate([np.ones(len(images)), np.zeros(len(images))]).astype(np.float32)
    return np.concatenate([images, fakes]), labels


def pair_each(images, outlines, seeds, recipe="paper"):
    """NumPy: pair_batch with one seed per crop (val), each crop followed by its own fake."""
    fakes = blend_each(images, outlines, seeds, recipe)
    paired = np.stack([images, fakes], axis=1).reshape((-1, *images.shape[1:]))
    return paired, np.tile(np.array([1, 0], np.float32), len(images))


def mix_batch(images, labels, outlines, seed, share, recipe="paper"):
    """NumPy ("both"): replace about `share` of the batch's dataset fakes (stochastic rounding) by
    self-blended fakes of the batch's real crops drawn at random; labels are unchanged."""
    rng = np.random.default_rng(int(seed))
    fakes = np.flatnonzero(labels == 0)
    reals = np.flatnonzero((labels == 1) & np.isfinite(outlines[:, 0, 0]))
    if not len(fakes) or not len(reals):
        return images
    count = min(len(fakes), int(share * len(fakes) + rng.random()))
    mixed = images.copy()
    for index in rng.choice(fakes, count, replace=False):
        real = int(rng.choice(reals))
        mixed[index], _ = self_blend(images[real], unpad_outline(outlines[real]), rng, recipe)
    return mixed
