"""The DFDC layouts: the training set's metadata.json (whole or in parts), the public test set's
labels.csv and the preview's dataset.json.

    metadata.json   {"x.mp4": {"label": "FAKE" | "REAL", "original": "y.mp4", ...}, ...}
    labels.csv      filename,label with 1 = FAKE, 0 = REAL (the public test set, 5,000 videos)
    dataset.json    {"method_A/.../x.mp4": {"label": "fake" | "real", "set": "train" | "test", ...}}
"""

import csv
import json
from pathlib import Path

from deepfake_detect.datasets.common import LABELS, Listing, Video, describe_absent, parse_fake_periods, stem

TEST_LABELS_FILE = "labels.csv"
PREVIEW_FILE = "dataset.json"
# The public test set's labels.csv uses the competition's convention, where the predicted
# "label" is the probability that a video is FAKE: 1 = FAKE, 0 = REAL (Kaggle DFDC "Evaluation"
# page; DeepfakeBench's DFDC test preprocessing reads it the same way).
TEST_LABEL_VALUES = {"1": "FAKE", "0": "REAL", "FAKE": "FAKE", "REAL": "REAL"}
# The preview gives train and test sets but no validation set: only its test set is taken as an
# official split, so that stage 02 cuts train and val from its train set (source groups together).
PREVIEW_OFFICIAL_SETS = ("test",)


class MetadataError(ValueError):
    """metadata.json cannot be read as DFDC metadata; the message says why."""


def read_metadata(path):
    """Read a DFDC metadata.json and return {file name: entry dict}. Raises MetadataError."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise MetadataError(f"{path}: cannot read ({error})") from None
    except json.JSONDecodeError as error:
        raise MetadataError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    if not isinstance(entries, dict):
        raise MetadataError(f"{path}: expected an object mapping video file names to entries")
    return entries


def videos_from_metadata(folder, metadata_file, extensions):
    """Videos listed in DFDC metadata that exist in `folder`. Returns (videos, problems)."""
    videos, problems = [], []
    for file_name, entry in sorted(read_metadata(metadata_file).items()):
        if not isinstance(entry, dict):
            problems.append(f"{file_name}: metadata entry is not an object, skipped")
            continue
        label = str(entry.get("label", "")).upper()
        if label not in LABELS:
            problems.append(f"{file_name}: label {entry.get('label')!r} is not REAL or FAKE, skipped")
            continue
        path = Path(folder) / file_name
        if not path.is_file():
            problems.append(f"{file_name}: listed in {Path(metadata_file).name} but not in {folder}, skipped")
            continue
        original, method = entry.get("original"), entry.get("method")
        try:
            periods = parse_fake_periods(entry.get("fake_periods"))
        except ValueError as error:  # the video keeps its label; only its timing is left out
            problems.append(f"{file_name}: {error}; its fake periods are left out")
            periods = None
        videos.append(Video(stem(file_name), path, label, stem(original) if original else None,
                            str(method) if method and label == "FAKE" else None, fake_periods=periods))
    return videos, problems


def read_parts(part_metadata, extensions):
    """DFDC in parts: the videos of every part folder holding a metadata.json; a malformed one is
    one problem line and that part is skipped."""
    listing = Listing("DFDC in parts", [])
    for metadata_file in part_metadata:
        try:
            part_videos, part_problems = videos_from_metadata(metadata_file.parent, metadata_file, extensions)
        except MetadataError as error:
            part_videos, part_problems = [], [f"{error}; that part is skipped"]
        listing.videos += part_videos
        listing.problems += part_problems
    return listing


def find_test_video(folder, file_name):
    """Where the public test set keeps `file_name`: beside labels.csv or in its videos/ folder."""
    for candidate in (Path(folder) / file_name, Path(folder) / "videos" / file_name):
        if candidate.is_file():
            return candidate
    return None


def read_test_labels(folder):
    """DFDC's public test set: labels.csv (filename,label; 1 = FAKE). Every video is official test."""
    labels_file = Path(folder) / TEST_LABELS_FILE
    listing = Listing("DFDC public test set (labels.csv)", [], split_sources={"test": str(labels_file)})
    absent = []
    with open(labels_file, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            file_name = (row.get("filename") or "").strip()
            label = TEST_LABEL_VALUES.get(str(row.get("label", "")).strip().upper().removesuffix(".0"))
            if not file_name or label is None:
                listing.problems.append(f"{labels_file.name}: row {row} has no filename or a label other than 0/1, skipped")
                continue
            path = find_test_video(folder, file_name)
            if path is None:
                absent.append(stem(file_name))
                continue
            listing.videos.append(Video(stem(file_name), path, label, split="test"))
    if absent:
        listing.problems.append(describe_absent(labels_file.name, absent))
    return listing


def preview_name(relative_path):
    """A preview video's name: its path without extension, '/' -> '_' ('method_A/1/1_A/9.mp4' ->
    'method_A_1_1_A_9'), since file names repeat across the preview's folders."""
    return str(Path(relative_path).with_suffix("")).replace("\\", "/").replace("/", "_")


def read_preview(folder):
    """The DFDC preview: dataset.json, keyed by relative path; its test set is the official test split."""
    dataset_file = Path(folder) / PREVIEW_FILE
    try:
        entries = read_metadata(dataset_file)
    except MetadataError as error:
        return Listing("DFDC preview (dataset.json)", [], [str(error)])
    listing = Listing("DFDC preview (dataset.json)", [])
    absent = []
    for relative, entry in sorted(entries.items()):
        label = str(entry.get("label", "")).upper() if isinstance(entry, dict) else ""
        if label not in LABELS:
            listing.problems.append(f"{dataset_file.name}: {relative}: label is not real or fake, skipped")
            continue
        path = Path(folder) / relative
        if not path.is_file():
            absent.append(preview_name(relative))
            continue
        first = Path(relative).parts[0]
        split = str(entry.get("set", "")).lower()
        split = split if split in PREVIEW_OFFICIAL_SETS else None
        listing.videos.append(Video(preview_name(relative), path, label,
                                    method=first if label == "FAKE" and first.startswith("method_") else None,
                                    split=split))
        if split:
            listing.split_sources[split] = f"{dataset_file} (\"set\")"
    if absent:
        listing.problems.append(describe_absent(dataset_file.name, absent))
    return listing
