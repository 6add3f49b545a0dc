"""What every layout reader returns: Video (one video) and Listing (a dataset's videos and more)."""

from dataclasses import dataclass, field
from pathlib import Path

LABELS = ("REAL", "FAKE")
SPLITS = ("train", "val", "test")
SHOWN_ABSENT = 5  # names quoted in a line about absent videos; the rest are counted


@dataclass(frozen=True)
class Video:
    """One video of the dataset. `name` is unique in the dataset and names its frame and face
    folders, split rows and result rows (FaceForensics++ prefixes fakes with their method, as
    every method folder holds the same file names)."""

    name: str
    path: Path
    label: str | None = None     # "REAL", "FAKE" or None when the layout gives none
    original: str | None = None  # for a fake: the name of the real video it was made from
    method: str | None = None    # for a fake: the manipulation method, when the dataset names it
    split: str | None = None     # "train", "val" or "test" when an official list names it
    # LAV-DF's "fake_periods": ((start, end), ...) in seconds, or (start, end, person) where the
    # metadata names the manipulated person (1, 2, ... by first appearance); () for a real video
    # whose metadata says so; None when the metadata gives no timing.
    fake_periods: tuple | None = None


@dataclass
class Listing:
    """A dataset folder as read: its layout's name, videos, problems (one line per thing left
    out) and {split: where that official split comes from} for the splits an official list gives."""

    layout: str
    videos: list
    problems: list = field(default_factory=list)
    split_sources: dict = field(default_factory=dict)


def stem(file_name):
    """'x/y.mp4' -> 'y'."""
    return Path(str(file_name)).stem


def video_files(folder, extensions):
    """The video files directly in `folder`, sorted; hidden files left out."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith("."))


def describe_absent(list_name, names):
    """One line for the videos an official list names that are not in the download."""
    names = sorted(names)
    shown = ", ".join(names[:SHOWN_ABSENT]) + (f", ... ({len(names) - SHOWN_ABSENT:,} more)"
                                               if len(names) > SHOWN_ABSENT else "")
    return f"{list_name} names {len(names):,} video(s) that are not in the folder (partial download?): {shown}"
