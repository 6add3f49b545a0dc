"""Stage 03's input and training: the split folders' file lists, the tf.data input pipeline with
the original's augmentation, the decoded-crop cache (in memory or on disk), and the training loop
itself: one distributed step (strategy.run) for one device, several GPUs or several machines.

Labels are the original's flow_from_directory ones: folder `fake` = 0, `real` = 1 (CLASS_NAMES),
so the network outputs P(pristine). Crops are decoded and resized once, by the same
`resize_face` that `prepare_faces` uses at detection time, and kept in memory as uint8; every
epoch then only shuffles, batches, scales to [0, 1] and (training only) warps each image once.
"""

import hashlib
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from deepfake_detect import settings
from deepfake_detect.training.epoch_end import EpochLog, backup_epoch, restore_backup
from deepfake_detect.training.distribute import cluster_size, worker_position, worker_share
from deepfake_detect.files import read_image
from deepfake_detect.jobs.console import warn
from deepfake_detect.models.network import BACKBONES, CLASS_NAMES, build_model, resize_face
from deepfake_detect.training import self_blend

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
AUGMENTATION_KEYS = ("rotation_range", "width_shift_range", "height_shift_range", "shear_range",
                     "zoom_range", "horizontal_flip", "fill_mode")
FILL_MODES = ("nearest", "constant", "reflect", "wrap")
# Elements decoded per step while filling the cache; only affects the progress bar's granularity.
DECODE_CHUNK = 256


class SplitFolderError(ValueError):
    """Stage 02's split folders (SPLIT_DIR) cannot be trained on; the message says which folder
    and what to do."""


# ------------------------------------------------------------------ the split's files

def video_of(file_name):
    """'abc-007-01.png' -> 'abc': a crop's video is its name minus frame and face numbers."""
    stem = Path(file_name).stem
    parts = stem.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else stem


def list_split(split_dir, split):
    """[(path, label)] of SPLIT_DIR/<split>/{fake,real}/*, sorted, label = index in CLASS_NAMES."""
    files = []
    for label, class_name in enumerate(CLASS_NAMES):
        folder = Path(split_dir) / split / class_name
        if folder.is_dir():
            files += [(path, label) for path in sorted(folder.iterdir())
                      if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")]
    return files


def list_splits(split_dir, train_fakes="dataset"):
    """{"train": [(path, label)], "val": ..., "test": ...}; raises SplitFolderError when unusable.

    Train must hold both classes (nothing to learn otherwise), or with TRAIN_FAKES = "self_blended"
    real crops (the fakes are made from them); val and test must not be empty.
    A val or test split with one class is allowed: its AUC is reported as null.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise SplitFolderError(f"no split dataset in {split_dir}: run 02-prepare_fake_real_dataset.py first")
    files = {split: list_split(split_dir, split) for split in SPLITS}
    for split, items in files.items():
        if not items:
            raise SplitFolderError(f"{split_dir / split} has no face crops in fake/ or real/: "
                               f"rerun 02-prepare_fake_real_dataset.py with more videos or other SPLIT_RATIOS")
    missing = [name for index, name in enumerate(CLASS_NAMES) if all(label != index for _, label in files["train"])]
    if train_fakes == "self_blended":
        missing = [name for name in missing if name == "real"]
    if missing:
        raise SplitFolderError(f"{split_dir / 'train'} has no {missing[0]} crops: a detector needs both "
                           f"classes; add {missing[0]} videos and rerun stages 00-02")
    return files


def count_files(files_by_split):
    """{split: {class: {"crops": n, "videos": n}}} for the model card and the summary."""
    counts = {}
    for split, items in files_by_split.items():
        counts[split] = {}
        for index, name in enumerate(CLASS_NAMES):
            paths = [path for path, label in items if label == index]
            counts[split][name] = {"crops": len(paths), "videos": len({video_of(p.name) for p in paths})}
    return counts


def classes_present(labels):
    """Names of the classes among `labels`, e.g. ['fake', 'real']."""
    return [CLASS_NAMES[index] for index in sorted(set(int(label) for label in labels))]


# ------------------------------------------------------------------ input pipeline

def read_face_rgb(path, input_size):
    """One crop file -> (input_size, input_size, 3) uint8 RGB resized as prepare_faces does; None if unreadable."""
    image_bgr = read_image(path)
    if image_bgr is None:
        return None
    import cv2

    return resize_face(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), input_size)


def check_augmentation(augmentation):
    """Raise ValueError for an AUGMENTATION dict this pipeline cannot apply."""
    unknown = sorted(set(augmentation) - set(AUGMENTATION_KEYS))
    if unknown:
        raise ValueError(f"AUGMENTATION: {unknown[0]!r} is not supported; use {', '.join(AUGMENTATION_KEYS)}")
    if augmentation.get("fill_mode", "nearest") not in FILL_MODES:
        raise ValueError(f"AUGMENTATION fill_mode must be one of {', '.join(FILL_MODES)}")


def affine_matrices(angle, shift_x, shift_y, shear, zoom_x, zoom_y, flip, height, width):
    """Per-image warp parameters -> (B, 2, 3) float32 affine matrices, one per image.

    Every argument but height/width is a float tensor of shape (B,): angles in radians, shifts
    in pixels, zooms as factors, flip 1.0 to mirror left-right. A matrix maps output pixel
    (x, y, 1) to the input point it samples, composed as Keras' ImageDataGenerator does:
    about the image centre, rotation . shift . shear . zoom, then the horizontal flip.
    """
    import tensorflow as tf

    mirror = 1.0 - 2.0 * flip                      # -1 flips x about the centre
    cos, sin = tf.cos(angle), tf.sin(angle)
    # [[zx*m, -sin(shear)*zy], [0, cos(shear)*zy]] = shear . zoom . flip
    m00, m01, m11 = zoom_x * mirror, -tf.sin(shear) * zoom_y, tf.cos(shear) * zoom_y
    a00, a01 = cos * m00, cos * m01 - sin * m11
    a10, a11 = sin * m00, sin * m01 + cos * m11
    center_x, center_y = (width - 1) / 2.0, (height - 1) / 2.0
    # input = centre + R . shift + A . (output - centre)
    b0 = center_x + cos * shift_x - sin * shift_y - (a00 * center_x + a01 * center_y)
    b1 = center_y + sin * shift_x + cos * shift_y - (a10 * center_x + a11 * center_y)
    return tf.reshape(tf.stack([a00, a01, b0, a10, a11, b1], axis=1), (-1, 2, 3))


def random_affine_matrices(batch_size, height, width, augmentation):
    """(B, 2, 3) random matrices drawn as ImageDataGenerator draws them from its arguments."""
    import tensorflow as tf

    def uniform(limit):
        return tf.random.uniform((batch_size,), -limit, limit)

    degrees = math.pi / 180.0
    zoom = augmentation.get("zoom_range", 0.0)
    flip = (tf.cast(tf.random.uniform((batch_size,)) < 0.5, tf.float32)
            if augmentation.get("horizontal_flip") else tf.zeros((batch_size,)))
    return affine_matrices(
        angle=uniform(augmentation.get("rotation_range", 0.0) * degrees),
        shift_x=uniform(augmentation.get("width_shift_range", 0.0)) * float(width),
        shift_y=uniform(augmentation.get("height_shift_range", 0.0)) * float(height),
        shear=uniform(augmentation.get("shear_range", 0.0) * degrees),
        zoom_x=tf.random.uniform((batch_size,), 1.0 - zoom, 1.0 + zoom),
        zoom_y=tf.random.uniform((batch_size,), 1.0 - zoom, 1.0 + zoom),
        flip=flip, height=height, width=width)


def warp_batch(images, matrices, fill_mode="nearest"):
    """NumPy: warp each image of a uint8 or float32 batch (B, H, W, C) by its (2, 3)
    output->input matrix, bilinear, filling outside points per `fill_mode`.

    One cv2.warpAffine per image. On uint8 128-px crops it warps ~10,000 images/s per core of
    the benchmark machine, 5x tf.raw_ops.ImageProjectiveTransformV3 on float32 (~1,800/s).
    """
    import cv2

    border = {"nearest": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT,
              "reflect": cv2.BORDER_REFLECT, "wrap": cv2.BORDER_WRAP}[fill_mode]
    height, width = images.shape[1:3]
    warped = np.empty_like(images)
    for index, (image, matrix) in enumerate(zip(images, matrices)):
        warped[index] = cv2.warpAffine(image, matrix.astype(np.float64), (width, height),
                                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                       borderMode=border, borderValue=0).reshape(image.shape)
    return warped


def warp_images(images, matrices, fill_mode="nearest"):
    """TensorFlow: warp_batch on a batch (B, H, W, C) with (B, 2, 3) matrices; same dtype."""
    import tensorflow as tf

    warped = tf.numpy_function(lambda x, m: warp_batch(x, m, fill_mode), [images, matrices], images.dtype,
                               stateful=False)
    return tf.ensure_shape(warped, images.shape)


def augment_batch(images, augmentation):
    """A batch (B, H, W, C), randomly warped per image: same shape, dtype and range.

    Training warps the uint8 crops before scaling them: rounding the warped pixels to whole
    levels changes nothing a network could learn from and warps 1.7x faster than float32.
    """
    import tensorflow as tf

    matrices = random_affine_matrices(tf.shape(images)[0], images.shape[1], images.shape[2], augmentation)
    return warp_images(images, matrices, augmentation.get("fill_mode", "nearest"))


def scale_batch(images_uint8):
    """uint8 batch -> float32 in [0, 1]; the same float32 division as model.scale_pixels."""
    import tensorflow as tf

    return tf.cast(images_uint8, tf.float32) / 255.0


def decode_dataset(files, input_size, cache_file=None):
    """tf.data of (image uint8, label, readable) per file, in order, decoded once and cached:
    in memory, or with `cache_file` in tf.data's file cache under that prefix (see disk_cache).

    Unreadable files stay in the cache as a blank image with readable = False, so the caller
    can name them; `batch_dataset` leaves them out.
    """
    import tensorflow as tf

    paths = [str(path) for path, _ in files]
    labels = np.array([label for _, label in files], np.float32)
    blank = np.zeros((input_size, input_size, 3), np.uint8)

    def decode(path):
        image = read_face_rgb(path.decode("utf-8"), input_size)
        return (blank, False) if image is None else (image, True)

    def decode_element(path, label):
        image, readable = tf.numpy_function(decode, [path], (tf.uint8, tf.bool), stateful=False)
        return tf.ensure_shape(image, (input_size, input_size, 3)), label, tf.ensure_shape(readable, ())

    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    # cv2 releases the GIL while decoding and resizing, so parallel calls use every core.
    return dataset.map(decode_element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache(
        str(cache_file) if cache_file else "")


def fill_cache(decoded, count, desc):
    """Read a decode_dataset once (filling its cache) with a progress bar; return unreadable indices."""
    from tqdm import tqdm

    unreadable = []
    with tqdm(total=count, desc=desc, unit="crop", dynamic_ncols=True) as bar:
        start = 0
        for _, _, readable in decoded.batch(DECODE_CHUNK):
            flags = readable.numpy()
            unreadable += [start + int(i) for i in np.flatnonzero(~flags)]
            start += len(flags)
            bar.update(len(flags))
    return unreadable


def batch_dataset(decoded, count, batch_size, training, augmentation=None, seed=None, shuffle_buffer=None):
    """(x float32 [0, 1], y float32) batches from a cached decode_dataset holding `count` readable crops.

    Training batches are reshuffled every epoch (over the whole split, or over `shuffle_buffer`
    crops: a disk cache would otherwise be read back into memory whole) and, with
    `augmentation`, warped per image. Validation/test batches keep the file order and are never
    augmented.
    """
    import tensorflow as tf

    dataset = decoded.filter(lambda image, label, readable: readable)
    dataset = dataset.map(lambda image, label, readable: (image, label))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
    if training:
        # The cache hands out references, so a buffer of the whole split costs no copy.
        dataset = dataset.shuffle(min(count, shuffle_buffer or count), seed=seed, reshuffle_each_iteration=True)
    return finish_batches(dataset.batch(batch_size), training, augmentation)


def finish_batches(dataset, training, augmentation=None):
    """Batches of uint8 crops -> scaled to [0, 1] (training: warped first, with `augmentation`),
    not sharded again by tf.distribute, prefetched."""
    import tensorflow as tf

    if training and augmentation:
        dataset = dataset.map(lambda x, y: (scale_batch(augment_batch(x, augmentation)), y),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    else:
        dataset = dataset.map(lambda x, y: (scale_batch(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Each machine of a multi-worker run already holds only its own files (worker_share), so
    # tf.distribute must not shard again (DATA would decode every crop on every machine).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


# ------------------------------------------------------------------ self-blended fakes (TRAIN_FAKES)

TRAIN_FAKES_MODES = ("dataset", "self_blended", "both")


def blends(cfg, split):
    """Whether this split's fakes are (partly) self-blended: train and val with "self_blended",
    train with "both" (its val keeps the dataset's fakes, so the best epoch is chosen on real ones)."""
    return (cfg.TRAIN_FAKES == "self_blended" and split in ("train", "val")) or \
        (cfg.TRAIN_FAKES == "both" and split == "train")


def with_outlines(decoded, outlines, extra=None):
    """A decode_dataset zipped with each crop's padded outline (and `extra` per crop), readable crops
    only: (image, label, outline[, extra])."""
    import tensorflow as tf

    parts = [decoded, tf.data.Dataset.from_tensor_slices(outlines)]
    if extra is not None:
        parts.append(tf.data.Dataset.from_tensor_slices(extra))
    dataset = tf.data.Dataset.zip(tuple(parts)).filter(lambda element, *rest: element[2])
    return dataset.map(lambda element, *rest: (element[0], element[1], *rest))


def blended_train_batches(decoded, outlines, count, cfg, shuffle_buffer=None):
    """Training batches with self-blended fakes made afresh every epoch. "self_blended": each batch
    holds BATCH_SIZE // 2 real crops and their fakes; "both": the split's batches of real and
    dataset fakes, SELF_BLENDED_SHARE of the fakes replaced by blends of the batch's real crops.
    The blends' seeds come from tf.data's random dataset seeded by TRAINING_SEED, drawn anew each
    epoch; then the original's augmentation (AUGMENT), as for any training batch."""
    import tensorflow as tf

    image_shape = (None, cfg.INPUT_SIZE, cfg.INPUT_SIZE, 3)
    dataset = with_outlines(decoded, outlines).apply(tf.data.experimental.assert_cardinality(count))
    dataset = dataset.shuffle(min(count, shuffle_buffer or count), reshuffle_each_iteration=True)
    if cfg.TRAIN_FAKES == "self_blended":
        dataset = dataset.batch(max(1, cfg.BATCH_SIZE // 2))

        def blend(images, labels, outlines_, seed):
            x, y = tf.numpy_function(lambda *a: self_blend.pair_batch(*a, cfg.SELF_BLEND_RECIPE),
                                     [images, outlines_, seed], (tf.uint8, tf.float32), stateful=False)
            return tf.ensure_shape(x, image_shape), tf.ensure_shape(y, (None,))
    else:
        dataset = dataset.batch(cfg.BATCH_SIZE)

        def blend(images, labels, outlines_, seed):
            x = tf.numpy_function(lambda *a: self_blend.mix_batch(*a, cfg.SELF_BLENDED_SHARE, cfg.SELF_BLEND_RECIPE),
                                  [images, labels, outlines_, seed], tf.uint8, stateful=False)
            return tf.ensure_shape(x, image_shape), labels
    seeds = tf.data.Dataset.random(seed=cfg.TRAINING_SEED, rerandomize_each_iteration=True)
    dataset = tf.data.Dataset.zip((dataset, seeds)).map(lambda batch, seed: blend(*batch, seed),
                                                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return finish_batches(dataset, True, cfg.AUGMENTATION if cfg.AUGMENT else None)


def blended_val_batches(decoded, files, outlines, cfg, in_memory=True):
    """Val batches: each real crop followed by its self-blended fake, made once from a seed of its
    file name and TRAINING_SEED (self_blend.name_seed), so the val loss compares across epochs,
    resumes and machines. Kept in memory after the first pass when the crops are."""
    import tensorflow as tf

    seeds = np.array([self_blend.name_seed(path.name, cfg.TRAINING_SEED) for path, _ in files], np.int64)
    dataset = with_outlines(decoded, outlines, seeds).batch(max(1, cfg.BATCH_SIZE // 2))

    def blend(images, labels, outlines_, seeds_):
        x, y = tf.numpy_function(lambda *a: self_blend.pair_each(*a, cfg.SELF_BLEND_RECIPE),
                                 [images, outlines_, seeds_], (tf.uint8, tf.float32), stateful=False)
        return tf.ensure_shape(x, (None, cfg.INPUT_SIZE, cfg.INPUT_SIZE, 3)), tf.ensure_shape(y, (None,))

    dataset = dataset.map(blend, num_parallel_calls=tf.data.AUTOTUNE)
    return finish_batches(dataset.cache() if in_memory else dataset, False)


def load_blended_split(decoded, files, readable, cfg, split, cache_dir, shuffle_buffer):
    """(batches, labelled files) of a split whose fakes are self-blended (blends(cfg, split)).
    The files returned list, in the batches' order for val, each real crop then its fake."""
    outlines, sources = self_blend.crop_outlines(files, cfg.FACES_DIR, cfg.FACE_MARGIN, cfg.INPUT_SIZE, video_of)
    print(f"{split}: {self_blend.describe_sources(sources)}")
    if split == "train":
        return blended_train_batches(decoded, outlines, len(readable), cfg, shuffle_buffer), readable
    paired = [(path, label) for path, _ in readable for label in (1, 0)]
    return blended_val_batches(decoded, files, outlines, cfg, in_memory=cache_dir is None), paired


def real_only(files, split, cfg):
    """With TRAIN_FAKES = "self_blended", train and val use real crops only: a split made for
    "dataset" (with fakes in train/ and val/) is used without its fakes, saying so."""
    if not (cfg.TRAIN_FAKES == "self_blended" and split in ("train", "val")):
        return files
    reals = [(path, label) for path, label in files if CLASS_NAMES[int(label)] == "real"]
    if len(reals) < len(files):
        warn(f"TRAIN_FAKES = 'self_blended': the {len(files) - len(reals):,} dataset fakes of the {split} "
             "split are left out (rerun stage 02 with this setting to keep them for the test split)")
    return reals


# ------------------------------------------------------------------ cache in memory or on disk

# CACHE = "auto" keeps the decoded crops in memory while they fit in this share of the memory
# available when stage 03 starts; above it, on disk.
CACHE_MEMORY_SHARE = 0.5
# Disk cache: training shuffles within this many crops (100 MB at 128 px) over a cache written
# in a shuffled file order, instead of over the whole split.
DISK_SHUFFLE_BUFFER = 2048
CACHE_MODES = ("auto", "memory", "disk")


def cache_bytes(crop_count, input_size):
    """Bytes of decoded uint8 crops: crop_count x input_size^2 x 3."""
    return crop_count * input_size * input_size * 3


def available_memory_bytes():
    """Memory available to a new process (Linux MemAvailable, else sysconf); None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def choose_cache(mode, crop_count, input_size, available_bytes, share=CACHE_MEMORY_SHARE):
    """("memory" | "disk", a sentence saying why) for CACHE = mode and this many crops in memory at once."""
    need = cache_bytes(crop_count, input_size)
    if mode != "auto":
        return mode, f"CACHE = {mode!r}: {crop_count:,} decoded crops, {need / 1e9:,.1f} GB"
    if available_bytes is None:
        return "memory", f"CACHE = 'auto': available memory unknown, so {need / 1e9:,.1f} GB of crops in memory"
    limit = available_bytes * share
    where = "disk" if need > limit else "memory"
    return where, (f"CACHE = 'auto': {crop_count:,} decoded crops need {need / 1e9:,.1f} GB, "
                   f"{'more' if where == 'disk' else 'no more'} than {share:.0%} of the "
                   f"{available_bytes / 1e9:,.1f} GB available, so they are cached {'on disk' if where == 'disk' else 'in memory'}")


def cache_key(files, input_size):
    """A short hash of the crops (path, size, modification time) and INPUT_SIZE: a cache is
    reused only for exactly these files, unchanged."""
    digest = hashlib.sha256(str(input_size).encode())
    for path, label in files:
        stat = os.stat(path)
        digest.update(f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def disk_cache(cache_dir, name, files, input_size):
    """(prefix of a finished file cache or None, prefix to write a new one under) in cache_dir.

    tf.data writes a file cache as <prefix>.data-* plus <prefix>.index when a pass ends, and
    leaves a lockfile and temporary files when killed. A new cache is therefore written under a
    private partial prefix and published by publish_disk_cache (index renamed last), so a
    cache named <name>-<key> is always complete; partial caches of killed runs are deleted here.
    """
    import socket

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / f"{name}-{cache_key(files, input_size)}"
    for stale in cache_dir.glob(f".{name}-*.partial-*"):
        stale.unlink(missing_ok=True)
    for outdated in cache_dir.glob(f"{name}-*"):  # caches of other files or another INPUT_SIZE
        if not outdated.name.startswith(final.name + "."):
            outdated.unlink(missing_ok=True)
    if final.with_name(final.name + ".index").is_file():
        return final, None
    return None, cache_dir / f".{final.name}.partial-{socket.gethostname()}-{os.getpid()}"


def publish_disk_cache(partial):
    """Rename a fully written partial file cache to its final prefix (data first, index last)."""
    final_name = partial.name[1:].split(".partial-")[0]
    files = sorted(partial.parent.glob(f"{partial.name}.*"), key=lambda path: path.suffix == ".index")
    for path in files:
        os.replace(path, path.with_name(final_name + path.name[len(partial.name):]))
    return partial.with_name(final_name)


def choose_cache_dir(cfg, files_by_split, run_dir):
    """Where load_split keeps the decoded crops, per CACHE: None (memory) or run_dir/cache (disk).
    "auto" weighs train + val, which are held at once, against the memory available; prints why."""
    machines = cluster_size(os.environ.get("TF_CONFIG"))  # each decodes its share only
    in_use = (len(files_by_split["train"]) + len(files_by_split["val"])) // machines
    where, why = choose_cache(cfg.CACHE, in_use, cfg.INPUT_SIZE, available_memory_bytes())
    print(why)
    return run_dir / "cache" if where == "disk" else None


def remove_cache(cache_dir):
    """Delete a disk cache (None: the crops were in memory): as large as the split, and of no
    use once this machine is done with the run."""
    if cache_dir is not None:
        shutil.rmtree(cache_dir, ignore_errors=True)


# ------------------------------------------------------------------ one split, decoded and batched

def load_split(files, cfg, split, cache_dir=None, whole=False):
    """Decode one split into its cache, in memory or (with `cache_dir`) in a tf.data file cache
    there; return (batched dataset, readable files). In a multi-worker run (TF_CONFIG) the train
    and val splits are first cut to this machine's share, so it decodes only those files (`whole`:
    all of them, as the chief's calibration needs). Raises SplitFolderError when no crop can be read, or train's readable crops hold one class."""
    files = real_only(files, split, cfg)
    if split != "test" and not whole:
        files = share_of_split(files, split)
    cache_mb = len(files) * cfg.INPUT_SIZE ** 2 * 3 / 1e6
    shuffle_buffer = None
    if cache_dir is None:
        decoded = decode_dataset(files, cfg.INPUT_SIZE)
        unreadable = fill_cache(decoded, len(files), f"decoding {split} ({cache_mb:,.0f} MB in memory)")
    else:
        if split == "train":  # written shuffled once, then shuffled within DISK_SHUFFLE_BUFFER each epoch
            files = [files[i] for i in np.random.default_rng(cfg.SPLIT_SEED).permutation(len(files))]
            shuffle_buffer = DISK_SHUFFLE_BUFFER
        finished, partial = disk_cache(cache_dir, split, files, cfg.INPUT_SIZE)
        decoded = decode_dataset(files, cfg.INPUT_SIZE, finished or partial)
        desc = f"{'reading' if finished else 'decoding'} {split} ({cache_mb:,.0f} MB cached in {cache_dir})"
        unreadable = fill_cache(decoded, len(files), desc)
        if partial:  # the pass above completed the cache: publish it, and read it from now on
            decoded = decode_dataset(files, cfg.INPUT_SIZE, publish_disk_cache(partial))
    readable = check_readable(files, unreadable, split, one_class=blends(cfg, split))
    if blends(cfg, split):
        return load_blended_split(decoded, files, readable, cfg, split, cache_dir, shuffle_buffer)
    dataset = batch_dataset(decoded, len(readable), cfg.BATCH_SIZE, training=split == "train",
                            augmentation=cfg.AUGMENTATION if cfg.AUGMENT else None,
                            shuffle_buffer=shuffle_buffer)
    return dataset, readable


def share_of_split(files, split):
    """This machine's share of a split's files (worker_share), saying so in a multi-worker run."""
    total, files = len(files), worker_share(files, os.environ.get("TF_CONFIG"))
    position, machines = worker_position(os.environ.get("TF_CONFIG"))
    if machines > 1:
        print(f"machine {position + 1} of {machines}: decoding {len(files):,} of the {total:,} {split} crops")
    return files


def check_readable(files, unreadable, split, one_class=False):
    """The files minus the `unreadable` indices, each named in a warning. Raises SplitFolderError
    when none is left, or when train's hold one class (val or test: a warning, their AUC is null).
    `one_class`: a split whose fakes are self-blended needs real crops only."""
    unreadable = set(unreadable)
    for index in sorted(unreadable):
        warn(f"{files[index][0]}: not a readable image, left out")
    readable = [item for index, item in enumerate(files) if index not in unreadable]
    if not readable:
        raise SplitFolderError(f"no crop of the {split} split could be read")
    present = classes_present(label for _, label in readable)
    if one_class:
        if "real" not in present:
            raise SplitFolderError(f"no real crop of the {split} split could be read: self-blending needs them")
    elif len(present) < 2:
        if split == "train":
            raise SplitFolderError(f"the readable crops of the {split} split hold one class only")
        warn(f"the {split} split holds {present[0]} crops only: its ROC AUC is undefined (reported as null)")
    return readable


# ------------------------------------------------------------------ training

def check_training_settings(cfg):
    """Raise ConfigError for stage 03 settings that cannot work."""
    if cfg.BACKBONE not in BACKBONES:
        raise settings.ConfigError(f"BACKBONE = {cfg.BACKBONE!r}: choose one of {', '.join(BACKBONES)}")
    for name in ("INPUT_SIZE", "BATCH_SIZE", "EPOCHS"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise settings.ConfigError(f"{name} must be a whole number >= 1")
    if cfg.TRAINING_SEED is not None and not isinstance(cfg.TRAINING_SEED, int):
        raise settings.ConfigError("TRAINING_SEED must be None (unseeded) or a whole number")
    if cfg.BATCHNORM_MOMENTUM is not None and not 0 <= cfg.BATCHNORM_MOMENTUM < 1:
        raise settings.ConfigError("BATCHNORM_MOMENTUM must be None (the backbone's own) or a number in [0, 1)")
    if cfg.CACHE not in CACHE_MODES:
        raise settings.ConfigError(f"CACHE = {cfg.CACHE!r}: choose one of {', '.join(CACHE_MODES)}")
    try:
        check_augmentation(cfg.AUGMENTATION)
    except ValueError as error:
        raise settings.ConfigError(str(error)) from None


def set_training_seed(seed):
    """Seed Python, NumPy and TensorFlow (keras.utils.set_random_seed); None leaves them unseeded."""
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)


def build_training(cfg, strategy):
    """(model, optimizer, metrics) with their variables placed by `strategy`: the detector, Adam
    at LEARNING_RATE (wrapped in a LossScaleOptimizer under mixed precision, as compile does) and
    {"train": {...}, "val": {...}} of loss (mean), accuracy and AUC."""
    import keras

    with strategy.scope():
        model = build_model(cfg.BACKBONE, cfg.INPUT_SIZE, cfg.WEIGHTS, cfg.BATCHNORM_MOMENTUM)
        optimizer = keras.optimizers.Adam(learning_rate=cfg.LEARNING_RATE)
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)  # now, so a backup can be restored into it
        metrics = {split: {"loss": keras.metrics.Mean(name="loss"),
                           "accuracy": keras.metrics.BinaryAccuracy(name="accuracy"),
                           "auc": keras.metrics.AUC(name="auc")} for split in ("train", "val")}
    return model, optimizer, metrics


def make_steps(strategy, model, optimizer, metrics):
    """(train_step, val_step, average_step): tf.functions of one distributed batch, run on every
    replica by strategy.run, and one that averages the moving statistics over the replicas. The
    loss is the batch's mean binary cross-entropy over the global batch
    (tf.nn.compute_average_loss), so gradients summed over replicas equal one machine's."""
    import keras
    import tensorflow as tf

    cross_entropy = keras.losses.BinaryCrossentropy(reduction=None)

    def update(split, y, scores, per_example):
        metrics[split]["loss"].update_state(per_example)
        metrics[split]["accuracy"].update_state(y, scores)
        metrics[split]["auc"].update_state(y, scores)

    def train_replica(x, y):
        y = tf.reshape(y, (-1, 1))
        with tf.GradientTape() as tape:
            scores = model(x, training=True)
            per_example = cross_entropy(y, scores)
            loss = tf.nn.compute_average_loss(per_example)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(loss)  # the loss itself unless a LossScaleOptimizer
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        update("train", y, scores, per_example)

    def val_replica(x, y):
        y = tf.reshape(y, (-1, 1))
        scores = model(x, training=False)
        update("val", y, scores, cross_entropy(y, scores))

    @tf.function
    def train_step(batch):
        strategy.run(train_replica, args=batch)

    @tf.function
    def val_step(batch):
        strategy.run(val_replica, args=batch)

    def average_replica():
        context = tf.distribute.get_replica_context()
        return context.all_reduce("MEAN", [tf.identity(variable.value) for variable in averaged])

    @tf.function
    def average_step():
        means = strategy.run(average_replica)
        for variable, mean in zip(averaged, means):  # every machine holds the same means
            variable.assign(strategy.experimental_local_results(mean)[0])

    # Keras 3 updates BatchNorm's moving statistics on each replica from its own batches only;
    # averaging them after each epoch keeps one model on every replica and machine.
    averaged = [v for v in model.non_trainable_variables if v.dtype.startswith("float")] \
        if strategy.num_replicas_in_sync > 1 else []
    return train_step, val_step, average_step if averaged else (lambda: None)


def agree_on_epoch(strategy, finished):
    """The finished epochs every machine's backup holds: the lowest of theirs (the cluster's
    first collective, so it also waits for every peer to be up). `finished` on one machine."""
    import tensorflow as tf

    if cluster_size(os.environ.get("TF_CONFIG")) == 1:
        return finished
    gathered = strategy.gather(strategy.run(lambda: tf.constant([finished])), axis=0)
    return int(tf.reduce_min(gathered).numpy())


def run_epoch(step, dataset, split_metrics, desc):
    """Run `step` over a distributed dataset with a progress bar on a terminal; return
    {name: value} of the split's metrics, reset for the next epoch."""
    from tqdm import tqdm

    for batch in tqdm(dataset, desc=desc, unit="batch", leave=False, disable=not sys.stdout.isatty()):
        step(batch)
    values = {name: float(metric.result()) for name, metric in split_metrics.items()}
    for metric in split_metrics.values():
        metric.reset_state()
    return values


def train_model(cfg, strategy, run_dir, files_by_split, cache_dir=None, writes_run=True, cluster_formed=None):
    """Build the model, decode train and val, and train for up to EPOCHS epochs with our own
    distributed step (the same on one machine and several: Keras 3's fit cannot run under
    MultiWorkerMirroredStrategy), resuming from run_dir/backup if an earlier run was interrupted.
    The machine that `writes_run` writes history.csv, model.keras and TensorBoard logs into run_dir
    (callbacks.EpochLog). `cluster_formed` (distribute.FormedMark) is set once every peer answered.
    Returns the weights' digest, the same on every machine of a cluster."""
    model, optimizer, metrics = build_training(cfg, strategy)  # first: a weights problem shows at once
    backup_dir = Path(run_dir) / "backup"
    resumed = agree_on_epoch(strategy, backup_epoch(backup_dir))
    if cluster_formed is not None:
        cluster_formed.set()
    restore_backup(backup_dir, resumed, model, optimizer)
    train_data, _ = load_split(files_by_split["train"], cfg, "train", cache_dir)
    val_data, _ = load_split(files_by_split["val"], cfg, "val", cache_dir)
    train_data = strategy.experimental_distribute_dataset(train_data)
    val_data = strategy.experimental_distribute_dataset(val_data)
    train_step, val_step, average_step = make_steps(strategy, model, optimizer, metrics)
    log = EpochLog(run_dir, backup_dir, cfg.EARLY_STOPPING_PATIENCE, writes_run, resumed)
    for epoch in range(resumed + 1, cfg.EPOCHS + 1):
        print(f"Epoch {epoch}/{cfg.EPOCHS}", flush=True)
        started = time.monotonic()
        logs = run_epoch(train_step, train_data, metrics["train"], "train")
        average_step()
        val_logs = run_epoch(val_step, val_data, metrics["val"], "val")
        logs.update({f"val_{name}": value for name, value in val_logs.items()})
        print(f"  {time.monotonic() - started:,.1f} s - "
              + " - ".join(f"{name}: {value:.4f}" for name, value in logs.items()), flush=True)
        stopped = log.end_epoch(epoch, logs, model, optimizer, float(cfg.LEARNING_RATE))
        if stopped:
            print(f"  stopped after epoch {epoch}: {stopped} (best val loss in epoch {log.best_epoch})")
            break
    log.finish()
    return weights_digest(model)


def weights_digest(model):
    """SHA-256 (first 16 hex digits) of the model's float weights (not the dropout seeds, which
    differ on purpose): machines that trained one model agree."""
    digest = hashlib.sha256()
    for variable in model.weights:
        if variable.dtype.startswith("float"):
            digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()[:16]
