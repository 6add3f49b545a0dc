"""Stage 03's machinery: the split's file lists, the tf.data input pipeline with the original's
augmentation, resumable callbacks, and the choice of devices.

Labels are the original's flow_from_directory ones: folder `fake` = 0, `real` = 1 (CLASS_NAMES),
so the network outputs P(pristine). Crops are decoded and resized once, by the same
`resize_face` that `prepare_faces` uses at detection time, and kept in memory as uint8; every
epoch then only shuffles, batches, scales to [0, 1] and (training only) warps each image once.
"""

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from deepfake_detect.devices import configure_tensorflow
from deepfake_detect.files import read_image, write_text_atomic
from deepfake_detect.model import CLASS_NAMES, resize_face
import hashlib

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
AUGMENTATION_KEYS = ("rotation_range", "width_shift_range", "height_shift_range", "shear_range",
                     "zoom_range", "horizontal_flip", "fill_mode")
FILL_MODES = ("nearest", "constant", "reflect", "wrap")
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")
# Elements decoded per step while filling the cache; only affects the progress bar's granularity.
DECODE_CHUNK = 256


class DatasetError(ValueError):
    """The split dataset cannot be trained on; the message says which folder and what to do."""


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


def list_splits(split_dir):
    """{"train": [(path, label)], "val": ..., "test": ...}; raises DatasetError when unusable.

    Train must hold both classes (nothing to learn otherwise); val and test must not be empty.
    A val or test split with one class is allowed: its AUC is reported as null.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DatasetError(f"no split dataset in {split_dir}: run 02-prepare_fake_real_dataset.py first")
    files = {split: list_split(split_dir, split) for split in SPLITS}
    for split, items in files.items():
        if not items:
            raise DatasetError(f"{split_dir / split} has no face crops in fake/ or real/: "
                               f"rerun 02-prepare_fake_real_dataset.py with more videos or other SPLIT_RATIOS")
    missing = [name for index, name in enumerate(CLASS_NAMES) if all(label != index for _, label in files["train"])]
    if missing:
        raise DatasetError(f"{split_dir / 'train'} has no {missing[0]} crops: a detector needs both "
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
    dataset = dataset.batch(batch_size)
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


# ------------------------------------------------------------------ resumable callbacks

def read_history(path):
    """Rows of history.csv as dicts of floats (epoch as int); [] when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{key: (int(value) if key == "epoch" else float(value)) for key, value in row.items() if value != ""}
            for row in rows]


def write_history(path, rows):
    """Write history rows (dicts) to CSV atomically; epochs are numbered from 1."""
    lines = [",".join(HISTORY_COLUMNS)]
    for row in rows:
        lines.append(",".join("" if row.get(c) is None else (str(row[c]) if c == "epoch" else f"{row[c]:.6f}")
                              for c in HISTORY_COLUMNS))
    write_text_atomic(path, "\n".join(lines) + "\n")


def best_of(rows, monitor="val_loss"):
    """(best value, its epoch) among history rows, lowest `monitor`; (None, None) when empty."""
    scored = [row for row in rows if monitor in row and not math.isnan(row[monitor])]
    if not scored:
        return None, None
    best = min(scored, key=lambda row: row[monitor])
    return best[monitor], best["epoch"]


def make_callbacks(run_dir, patience):
    """The training callbacks, in the order they must run at each epoch's end.

    The epoch log, best checkpoint and early stopping read history.csv when training (re)starts,
    so an interrupted run that BackupAndRestore brings back at epoch k neither logs an epoch
    twice nor forgets the best val loss it had reached before the interruption.
    """
    import keras

    run_dir = Path(run_dir)
    history_path = run_dir / "history.csv"

    class EpochLog(keras.callbacks.Callback):
        """Rewrite history.csv (atomically) after every epoch, dropping rows a resume redoes."""

        def on_train_begin(self, logs=None):
            self.rows, self.started = read_history(history_path), False

        def on_epoch_begin(self, epoch, logs=None):
            if not self.started:
                self.rows, self.started = [row for row in self.rows if row["epoch"] <= epoch], True

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items() if k in HISTORY_COLUMNS}}
            self.rows.append(row)
            write_history(history_path, self.rows)

    class BestCheckpoint(keras.callbacks.Callback):
        """Save model.keras (temporary name, then rename) whenever val loss improves."""

        def on_epoch_begin(self, epoch, logs=None):
            if not hasattr(self, "best"):
                earlier = [row for row in read_history(history_path) if row["epoch"] <= epoch]
                self.best = best_of(earlier)[0]
                self.best = math.inf if self.best is None else self.best

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get("val_loss")
            if value is not None and not math.isnan(value) and value < self.best:
                self.best = value
                final = run_dir / "model.keras"
                temporary = run_dir / f".tmp-{os.getpid()}-model.keras"
                self.model.save(temporary)
                os.replace(temporary, final)

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping whose patience counts epochs from before an interruption too."""

        def on_epoch_begin(self, epoch, logs=None):
            if getattr(self, "resumed_at", None) is None:
                self.resumed_at = epoch
                best, best_epoch = best_of([row for row in read_history(history_path) if row["epoch"] <= epoch])
                if best is not None:
                    self.best, self.best_epoch, self.wait = best, best_epoch - 1, epoch - best_epoch

    return [
        EpochLog(),
        BestCheckpoint(),
        ResumableEarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True, verbose=1),
        keras.callbacks.TerminateOnNaN(),
        # Last, so the epoch's log and checkpoint exist before the backup says it is done.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True),
    ]


# ------------------------------------------------------------------ devices

def cluster_size(tf_config_text):
    """Machines named in a TF_CONFIG (JSON) that train: its chief and workers; 1 when unset."""
    if not tf_config_text:
        return 1
    cluster = json.loads(tf_config_text).get("cluster", {})
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def is_chief(tf_config_text):
    """True on the machine that writes the run's outputs: the chief, else worker 0."""
    if cluster_size(tf_config_text) == 1:
        return True
    config = json.loads(tf_config_text)
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def worker_position(tf_config_text):
    """(this machine's position, machines) among a TF_CONFIG's chief and workers: chief first,
    then workers by index; (0, 1) when unset."""
    machines = cluster_size(tf_config_text)
    if machines == 1:
        return 0, 1
    config = json.loads(tf_config_text)
    task = config.get("task", {})
    has_chief = 1 if "chief" in config.get("cluster", {}) else 0
    if task.get("type") == "chief":
        return 0, machines
    return has_chief + int(task.get("index", 0)), machines


def worker_share(files, tf_config_text):
    """This machine's files of a multi-worker run: every N-th from its position, before any
    decoding, so each machine reads 1/N of the crops. Every share is cut to the same length
    (dropping at most N-1 crops), so that all machines run the same number of steps."""
    position, machines = worker_position(tf_config_text)
    if machines == 1:
        return files
    return files[position::machines][:len(files) // machines]


def choose_strategy(mixed_precision=True, cpu_devices=0):
    """Set up devices and return (tf.distribute strategy, description). Call before any other TF use.

    Several machines in TF_CONFIG: MultiWorkerMirroredStrategy. GPUs: memory growth, mixed
    precision unless switched off (the model's output layer stays float32) and MirroredStrategy
    over all of them. `cpu_devices` >= 2 splits the CPU into that many logical devices mirrored
    like GPUs, to exercise the multi-device path on a machine without GPUs. Otherwise the default
    (one-device) strategy: training runs unchanged on CPU.
    """
    gpus = configure_tensorflow()  # first: it sets TensorFlow's log level before the import
    import keras
    import tensorflow as tf

    if cpu_devices and cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    if gpus and mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    precision = "mixed float16" if gpus and mixed_precision else "float32"

    machines = cluster_size(os.environ.get("TF_CONFIG"))
    if machines > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        where = f"{machines} machines ({strategy.num_replicas_in_sync} replicas)"
    elif cpu_devices and cpu_devices > 1:
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        where = f"{len(devices)} logical CPU devices"
    elif len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        where = f"{len(gpus)} GPUs"
    else:
        strategy = tf.distribute.get_strategy()
        where = "1 GPU" if gpus else "CPU"
    return strategy, f"{where}, {strategy.num_replicas_in_sync} replica(s), {precision}"


PREDICTION_COLUMNS = ("file", "video", "label", "label_name", "score")


def prediction_rows(files, videos, labels, scores):
    """Rows of predictions.csv: file, video, true label (number and name), score = P(pristine).

    Scores are written with 9 significant digits, enough to give back every float32 exactly
    (read them as float32), so AUC and log loss recomputed from the file equal metrics.json's.
    """
    return [{"file": path, "video": video, "label": int(label), "label_name": CLASS_NAMES[int(label)],
             "score": f"{float(score):.9g}"} for path, video, label, score in zip(files, videos, labels, scores)]
