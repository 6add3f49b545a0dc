"""Celeb-DF (v1 and v2) as downloaded, with its official test list.

    Celeb-real/id0_0000.mp4            real celebrity videos
    YouTube-real/00000.mp4             real YouTube videos
    Celeb-synthesis/id0_id1_0000.mp4   fakes: the face of id1 put into id0_0000.mp4
    List_of_testing_videos.txt         "1 YouTube-real/00170.mp4" per line, 1 = real, 0 = fake

File names differ across the three folders, so videos keep them as their names. The original of
idA_idB_NNNN is idA_NNNN. The test list is the official test split (518 videos in v2); the other
videos have no official split (stage 02 splits them into train and val).
"""

from dataclasses import replace
from pathlib import Path

from deepfake_detect.datasets.common import Listing, Video, describe_absent, stem, video_files

FOLDER_LABELS = {"Celeb-real": "REAL", "YouTube-real": "REAL", "Celeb-synthesis": "FAKE"}
TEST_LIST_FILE = "List_of_testing_videos.txt"
LIST_LABELS = {"1": "REAL", "0": "FAKE"}


def is_celebdf(folder):
    """Whether `folder` is laid out as Celeb-DF's download."""
    return any((Path(folder) / name).is_dir() for name in FOLDER_LABELS)


def original_of(file_stem):
    """idA_idB_NNNN -> idA_NNNN; None for a name of another form."""
    parts = file_stem.split("_")
    return f"{parts[0]}_{parts[-1]}" if len(parts) == 3 else None


def read_videos(folder, extensions):
    """The videos of the three folders, labelled by folder. Returns (videos, problems)."""
    videos, problems = [], []
    for name, label in FOLDER_LABELS.items():
        sub = Path(folder) / name
        if not sub.is_dir():
            problems.append(f"{sub}: missing (partial download?), its videos are left out")
            continue
        files = video_files(sub, extensions)
        if not files:
            problems.append(f"{sub}: no video files, left out")
        videos += [Video(p.stem, p, label, original_of(p.stem) if label == "FAKE" else None) for p in files]
    return videos, problems


def read_test_list(path):
    """[(label, folder/file)] of List_of_testing_videos.txt, and the lines it could not read."""
    entries, bad = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[0] not in LIST_LABELS:
            bad.append(number)
            continue
        entries.append((LIST_LABELS[fields[0]], fields[1]))
    return entries, bad


def apply_test_list(listing, path):
    """Mark the listed videos as the official test split; one line each for absent videos,
    unreadable lines and labels that disagree with the folder."""
    entries, bad = read_test_list(path)
    by_name = {v.name: v for v in listing.videos}
    listed, absent, disagree = set(), [], []
    for label, relative in entries:
        video = by_name.get(stem(relative))
        if video is None:
            absent.append(relative)
        elif video.label != label:
            disagree.append(relative)
        else:
            listed.add(video.name)
    listing.split_sources["test"] = str(path)
    listing.videos = [replace(v, split="test") if v.name in listed else v for v in listing.videos]
    if absent:
        listing.problems.append(describe_absent(Path(path).name, absent))
    if bad:
        listing.problems.append(f"{path}: {len(bad):,} line(s) not of the form '1 YouTube-real/00170.mp4' "
                                f"(lines {', '.join(map(str, bad[:5]))}), skipped")
    if disagree:
        listing.problems.append(f"{path}: {len(disagree):,} video(s) listed with a label other than their "
                                f"folder's, left out of the test split: {', '.join(disagree[:5])}")


def read_celebdf(folder, lists_dir, extensions):
    """Celeb-DF with the official test split when List_of_testing_videos.txt is found (in
    SPLIT_LISTS_DIR or the dataset folder)."""
    videos, problems = read_videos(folder, extensions)
    listing = Listing("Celeb-DF", videos, problems)
    for candidate in ([Path(lists_dir)] if lists_dir else []) + [Path(folder)]:
        if (candidate / TEST_LIST_FILE).is_file():
            apply_test_list(listing, candidate / TEST_LIST_FILE)
            break
    return listing
