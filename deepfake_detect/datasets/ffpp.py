"""FaceForensics++ as its download script leaves it, with its official pair lists.

    original_sequences/{youtube,actors}/<compression>/videos/*.mp4      the real videos
    manipulated_sequences/<Method>/<compression>/videos/*.mp4           the fakes of each method
    train.json, val.json, test.json   [["071", "054"], ...]: pairs of youtube ids (in SPLIT_LISTS_DIR,
                                      the dataset folder or its splits/ folder)

Every method folder holds the same file names (183_253.mp4 under Deepfakes, Face2Face, ...), so a
fake is named <Method>_<file name> (Deepfakes_183_253); originals keep their file name (183,
01__kitchen_pan). The original of a fake X_Y.mp4 is the youtube video X (its target); of a
DeepFakeDetection fake AA_BB__scene__ID.mp4, the actors' video AA__scene.
"""

import json
from dataclasses import replace
from pathlib import Path

from deepfake_detect.datasets.common import SPLITS, Listing, Video, describe_absent, video_files

ORIGINALS_DIR, MANIPULATED_DIR = "original_sequences", "manipulated_sequences"
ORIGINAL_SOURCES = ("youtube", "actors")
METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
PAIRED_SOURCE = "youtube"            # the pair lists name youtube ids; actors and their fakes are in none
UNPAIRED_METHODS = ("DeepFakeDetection",)
# The download script calls the uncompressed level "raw"; papers call it c0.
COMPRESSION_FOLDERS = {"raw": ("raw", "c0"), "c0": ("c0", "raw"), "c23": ("c23",), "c40": ("c40",)}


def is_ffpp(folder):
    """Whether `folder` is laid out as FaceForensics++'s download."""
    return (Path(folder) / ORIGINALS_DIR).is_dir() or (Path(folder) / MANIPULATED_DIR).is_dir()


def find_compression_folder(source_dir, compression):
    """(<source_dir>/<compression>/videos, None), or (None, a line naming the levels there are)."""
    for name in COMPRESSION_FOLDERS[compression]:
        if (source_dir / name / "videos").is_dir():
            return source_dir / name / "videos", None
    levels = sorted(p.name for p in source_dir.iterdir() if (p / "videos").is_dir())
    return None, (f"{source_dir}: no {compression}/videos folder (levels here: {', '.join(levels) or 'none'}); "
                  f"left out: set DATASET_COMPRESSION to one of them" if levels else
                  f"{source_dir}: no <compression>/videos folder with videos, left out")


def original_of(file_stem):
    """The name of the real video a fake was made from: X_Y -> X; AA_BB__scene__ID -> AA__scene."""
    if "__" in file_stem:
        ids, scene = file_stem.split("__")[:2]
        return f"{ids.split('_')[0]}__{scene}"
    return file_stem.split("_")[0]


def source_folders(folder):
    """[(source dir, method or None for originals)] present in the download, in a fixed order."""
    folder = Path(folder)
    found = [(folder / ORIGINALS_DIR / source, None) for source in ORIGINAL_SOURCES
             if (folder / ORIGINALS_DIR / source).is_dir()]
    manipulated = folder / MANIPULATED_DIR
    if manipulated.is_dir():
        found += [(p, p.name) for p in sorted(manipulated.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    return found


def read_videos(folder, compression, extensions):
    """The originals and fakes at one compression level. Returns (videos, problems)."""
    videos, problems = [], []
    for source_dir, method in source_folders(folder):
        videos_dir, problem = find_compression_folder(source_dir, compression)
        files = video_files(videos_dir, extensions) if videos_dir else []
        if videos_dir and not files:
            problem = f"{videos_dir}: no video files, left out"
        if problem:
            problems.append(problem)
        if method is None:
            videos += [Video(p.stem, p, "REAL") for p in files]
        else:
            videos += [Video(f"{method}_{p.stem}", p, "FAKE", original_of(p.stem), method) for p in files]
    return videos, problems


def find_list_folder(folder, lists_dir):
    """The first of SPLIT_LISTS_DIR, the dataset folder and its splits/ that holds a <split>.json."""
    for candidate in ([Path(lists_dir)] if lists_dir else []) + [Path(folder), Path(folder) / "splits"]:
        if any((candidate / f"{split}.json").is_file() for split in SPLITS):
            return candidate
    return None


def read_pair_list(path):
    """[(X, Y)] of one FF++ split file. Raises ValueError with the reason."""
    try:
        pairs = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read ({error})") from None
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise ValueError(f"{path}: expected a list of [\"X\", \"Y\"] pairs")
    return [(str(x), str(y)) for x, y in pairs]


def pair_members(pair, methods):
    """Every video name of one listed pair: both originals and, per method, the fakes X_Y and Y_X."""
    x, y = pair
    return {x, y} | {f"{method}_{a}_{b}" for method in methods for a, b in ((x, y), (y, x))}


def apply_pair_lists(listing, list_folder):
    """Give every video of a listed pair its official split; one line per list naming absent videos."""
    present = {v.name for v in listing.videos}
    methods = sorted({v.method for v in listing.videos if v.method and v.method not in UNPAIRED_METHODS})
    has_originals = any(v.label == "REAL" for v in listing.videos)
    split_of = {}
    for split in SPLITS:
        path = Path(list_folder) / f"{split}.json"
        if not path.is_file():
            continue
        try:
            pairs = read_pair_list(path)
        except ValueError as error:
            listing.problems.append(f"{error}; the {split} split is not taken from it")
            continue
        listing.split_sources[split] = str(path)
        expected = set()
        for pair in pairs:
            expected |= pair_members(pair, methods) - (set() if has_originals else set(pair))
        split_of.update({name: split for name in expected})
        if expected - present:
            listing.problems.append(describe_absent(path.name, expected - present))
    listing.videos = [replace(v, split=split_of.get(v.name)) for v in listing.videos]


def read_ffpp(folder, compression, lists_dir, extensions):
    """FaceForensics++ at `compression`, with the official splits when their lists are found."""
    videos, problems = read_videos(folder, compression, extensions)
    listing = Listing(f"FaceForensics++ ({compression})", videos, problems)
    list_folder = find_list_folder(folder, lists_dir)
    if list_folder is not None:
        apply_pair_lists(listing, list_folder)
    return listing
