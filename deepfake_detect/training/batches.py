"""Stage 03: one split decoded into its cache (this machine's share of it) and batched."""

import os

import numpy as np

from deepfake_detect.jobs.console import warn
from deepfake_detect.training.cache import DISK_SHUFFLE_BUFFER, disk_cache, publish_disk_cache
from deepfake_detect.training.distribute import worker_position, worker_share
from deepfake_detect.models.network import CLASS_NAMES
from deepfake_detect.training import self_blend
from deepfake_detect.training.pipeline import (batch_dataset, blended_train_batches, blended_val_batches, blends,
                                               decode_dataset, fill_cache)
from deepfake_detect.training.split_files import SplitFolderError, classes_present, video_of


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
