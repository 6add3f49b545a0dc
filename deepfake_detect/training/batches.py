"""Stage 03: one split decoded into its cache (this machine's share of it) and batched."""

import os

import numpy as np

from deepfake_detect.jobs.console import warn
from deepfake_detect.training.cache import DISK_SHUFFLE_BUFFER, disk_cache, publish_disk_cache
from deepfake_detect.training.distribute import worker_position, worker_share
from deepfake_detect.training.pipeline import batch_dataset, decode_dataset, fill_cache
from deepfake_detect.training.split_files import SplitFolderError, classes_present


def load_split(files, cfg, split, cache_dir=None, whole=False):
    """Decode one split into its cache, in memory or (with `cache_dir`) in a tf.data file cache
    there; return (batched dataset, readable files). In a multi-worker run (TF_CONFIG) the train
    and val splits are first cut to this machine's share, so it decodes only those files (`whole`:
    all of them, as the chief's calibration needs). Raises SplitFolderError when no crop can be read, or train's readable crops hold one class."""
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
    readable = check_readable(files, unreadable, split)
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


def check_readable(files, unreadable, split):
    """The files minus the `unreadable` indices, each named in a warning. Raises SplitFolderError
    when none is left, or when train's hold one class (val or test: a warning, their AUC is null)."""
    unreadable = set(unreadable)
    for index in sorted(unreadable):
        warn(f"{files[index][0]}: not a readable image, left out")
    readable = [item for index, item in enumerate(files) if index not in unreadable]
    if not readable:
        raise SplitFolderError(f"no crop of the {split} split could be read")
    present = classes_present(label for _, label in readable)
    if len(present) < 2:
        if split == "train":
            raise SplitFolderError(f"the readable crops of the {split} split hold one class only")
        warn(f"the {split} split holds {present[0]} crops only: its ROC AUC is undefined (reported as null)")
    return readable
