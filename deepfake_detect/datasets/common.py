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


def parse_fake_periods(value):
    """LAV-DF's "fake_periods" as ((start, end[, person]), ...), None when absent. Raises
    ValueError with the reason when it is not a list of [start, end] or [start, end, person]
    with 0 <= start <= end (seconds) and person a whole number from 1."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"fake_periods {value!r} is not a list")
    periods = []
    for period in value:
        if not isinstance(period, (list, tuple)) or len(period) not in (2, 3) \
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in period):
            raise ValueError(f"fake_periods entry {period!r} is not [start, end] or [start, end, person] in seconds")
        start, end = period[:2]
        if not 0 <= start <= end < float("inf"):
            raise ValueError(f"fake_periods entry {period!r}: start and end must satisfy 0 <= start <= end")
        if len(period) == 3 and (period[2] != int(period[2]) or period[2] < 1):
            raise ValueError(f"fake_periods entry {period!r}: the person must be 1, 2, ...")
        periods.append((start, end) if len(period) == 2 else (start, end, int(period[2])))
    return tuple(periods)


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
