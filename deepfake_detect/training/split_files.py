"""Stage 03: the crops of stage 02's split folders (SPLIT_DIR/<split>/{fake,real}/), listed and counted."""

from pathlib import Path

from deepfake_detect.datasets.common import SPLITS
from deepfake_detect.media.kinds import IMAGE_EXTENSIONS
from deepfake_detect.models.network import CLASS_NAMES


class SplitFolderError(ValueError):
    """Stage 02's split folders (SPLIT_DIR) cannot be trained on; the message says which folder
    and what to do."""



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
    """{"train": [(path, label)], "val": ..., "test": ...}; raises SplitFolderError when unusable.

    Train must hold both classes (nothing to learn otherwise); val and test must not be empty.
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
