"""Find a dataset's videos and their labels, whatever its layout: the one entry point
(`discover_videos`, `read_dataset`) every stage imports; the layouts live in datasets/.

Layouts, tried in this order (see config.VIDEOS_DIR):
  1. DFDC: a folder of videos plus metadata.json
     {"x.mp4": {"label": "FAKE" | "REAL", "original": "y.mp4", ...}, ...}
  2. DFDC in parts: a folder whose subfolders (dfdc_train_part_0, ...) each hold videos plus
     their own metadata.json
  3. FaceForensics++ as downloaded: original_sequences/, manipulated_sequences/ (DATASET_COMPRESSION;
     official splits from train/val/test.json)
  4. Celeb-DF v1/v2 as downloaded: Celeb-real/, YouTube-real/, Celeb-synthesis/ (official test
     split from List_of_testing_videos.txt)
  5. DFDC's public test set: videos plus labels.csv (every video is test)
  6. DFDC preview: dataset.json with its own train/test sets
  7. a folder with real/ and fake/ subfolders of videos; videos in fake/<method>/ subfolders
     are fakes made by that manipulation method
  8. a plain folder of videos: labels unknown
"""

from pathlib import Path

from deepfake_detect.datasets import celebdf, dfdc, ffpp, folders
from deepfake_detect.datasets.common import LABELS, SPLITS, Listing, Video  # noqa: F401 (re-exported)
from deepfake_detect.datasets.dfdc import MetadataError, read_metadata, videos_from_metadata  # noqa: F401

DEFAULT_COMPRESSION = "c23"


def _metadata_name(cfg):
    return Path(cfg.METADATA_FILE).name if cfg.METADATA_FILE else "metadata.json"


def detect_layout(cfg):
    """The name of VIDEOS_DIR's layout, from its folder and file names only (cheap: for the
    settings line each stage prints before reading the dataset)."""
    folder = Path(cfg.VIDEOS_DIR)
    compression = getattr(cfg, "DATASET_COMPRESSION", DEFAULT_COMPRESSION)
    if cfg.METADATA_FILE and Path(cfg.METADATA_FILE).is_file():
        return "DFDC (metadata.json)"
    checks = ((lambda: any(folder.glob(f"*/{_metadata_name(cfg)}")), "DFDC in parts"),
              (lambda: ffpp.is_ffpp(folder), f"FaceForensics++ ({compression})"),
              (lambda: celebdf.is_celebdf(folder), "Celeb-DF"),
              (lambda: (folder / dfdc.TEST_LABELS_FILE).is_file(), "DFDC public test set (labels.csv)"),
              (lambda: (folder / dfdc.PREVIEW_FILE).is_file(), "DFDC preview (dataset.json)"),
              (lambda: folders.has_label_folders(folder), "real/ + fake/ folders"))
    if not folder.is_dir():
        return "missing folder"
    return next((name for check, name in checks if check()), "plain folder (no labels)")


def read_dataset(cfg):
    """All videos of cfg.VIDEOS_DIR as a Listing: layout name, videos sorted by name (each with
    its label, original, method and official split where the layout gives them), problems (one
    line per item left out; for a malformed metadata.json a line saying so before falling back to
    the other layouts) and the official splits' sources. Raises FileNotFoundError when VIDEOS_DIR
    does not exist."""
    folder = Path(cfg.VIDEOS_DIR)
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder {folder} does not exist: set VIDEOS_DIR in your config")
    extensions = {e.lower() for e in cfg.VIDEO_EXTENSIONS}
    lists_dir = getattr(cfg, "SPLIT_LISTS_DIR", None)
    problems = []
    if cfg.METADATA_FILE and Path(cfg.METADATA_FILE).is_file():
        try:
            videos, problems = videos_from_metadata(folder, cfg.METADATA_FILE, extensions)
            return finish_listing(Listing("DFDC (metadata.json)", videos, problems))
        except MetadataError as error:
            problems.append(f"{error}; reading the folder without labels instead")
    part_metadata = sorted(folder.glob(f"*/{_metadata_name(cfg)}"))
    if part_metadata:
        listing = dfdc.read_parts(part_metadata, extensions)
    elif ffpp.is_ffpp(folder):
        listing = ffpp.read_ffpp(folder, getattr(cfg, "DATASET_COMPRESSION", DEFAULT_COMPRESSION), lists_dir,
                                 extensions)
    elif celebdf.is_celebdf(folder):
        listing = celebdf.read_celebdf(folder, lists_dir, extensions)
    elif (folder / dfdc.TEST_LABELS_FILE).is_file():
        listing = dfdc.read_test_labels(folder)
    elif (folder / dfdc.PREVIEW_FILE).is_file():
        listing = dfdc.read_preview(folder)
    elif folders.has_label_folders(folder):
        listing = folders.read_label_folders(folder, extensions)
    else:
        listing = folders.read_plain_folder(folder, extensions)
    listing.problems = problems + listing.problems
    return finish_listing(listing)


def finish_listing(listing):
    """The listing with its videos sorted by name and duplicate names dropped (with a line each)."""
    listing.videos, listing.problems = _drop_duplicate_names(listing.videos, listing.problems)
    return listing


def discover_videos(cfg):
    """All videos of cfg.VIDEOS_DIR with labels where the layout gives them (read_dataset).

    Returns (videos sorted by name, problems). Raises FileNotFoundError when VIDEOS_DIR does not exist.
    """
    listing = read_dataset(cfg)
    return listing.videos, listing.problems


def _drop_duplicate_names(videos, problems):
    """Output folders are named by video, so two videos with one name cannot both be kept."""
    kept, seen = [], set()
    for video in sorted(videos, key=lambda v: (v.name, str(v.path))):
        if video.name in seen:
            problems.append(f"{video.path}: another video is also named {video.name}, skipped")
            continue
        seen.add(video.name)
        kept.append(video)
    return kept, problems


def source_group(video):
    """The group a video belongs to: a fake's original, else the video itself. Every video of a
    group stays in one split (stage 02), and stage 05 flags a video whose group a run trained on."""
    if video.label == "FAKE" and video.original:
        return video.original
    return video.name


def select_shard(items, part, count):
    """The `part`-th (1-based) of every `count` items: the share of one machine out of `count`."""
    return [item for index, item in enumerate(items) if index % count == part - 1]
