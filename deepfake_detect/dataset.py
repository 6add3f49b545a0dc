"""Find a dataset's videos and their labels, whatever its layout.

Layouts, tried in this order (see config.VIDEOS_DIR):
  1. DFDC: a folder of videos plus metadata.json
     {"x.mp4": {"label": "FAKE" | "REAL", "original": "y.mp4", ...}, ...}
  2. DFDC in parts: a folder whose subfolders (dfdc_train_part_0, ...) each hold videos plus
     their own metadata.json
  3. a folder with real/ and fake/ subfolders of videos (Celeb-DF and many others); videos in
     fake/<method>/ subfolders are fakes made by that manipulation method
  4. a plain folder of videos: labels unknown
"""

import json
from dataclasses import dataclass
from pathlib import Path

LABELS = ("REAL", "FAKE")


@dataclass(frozen=True)
class Video:
    """One video of the dataset. `name` is the file name without extension, used for folders."""

    name: str
    path: Path
    label: str | None = None     # "REAL", "FAKE" or None when the layout gives none
    original: str | None = None  # for a fake: the name of the real video it was made from
    method: str | None = None    # for a fake: the manipulation method, when the dataset names it
    # LAV-DF's "fake_periods": ((start, end), ...) in seconds, or (start, end, person) where the
    # metadata names the manipulated person (1, 2, ... by first appearance); () for a real video
    # whose metadata says so; None when the metadata gives no timing.
    fake_periods: tuple | None = None


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


def _stem(file_name):
    return Path(str(file_name)).stem


def _video_files(folder, extensions):
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in extensions)


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
        periods = entry.get("fake_periods")
        videos.append(Video(_stem(file_name), path, label, _stem(original) if original else None,
                            str(method) if method and label == "FAKE" else None,
                            tuple(tuple(period) for period in periods) if isinstance(periods, list) else None))
    return videos, problems


def videos_from_label_folders(folder, extensions):
    """Videos under `folder`/real and `folder`/fake, labelled by their subfolder; a video in
    fake/<method>/ is a fake made by <method> (FaceForensics++'s Deepfakes, Face2Face, ...), named
    <method>_<file name> because such datasets reuse file names across methods."""
    videos = []
    for label in LABELS:
        sub = Path(folder) / label.lower()
        if sub.is_dir():
            videos += [Video(p.stem, p, label) for p in _video_files(sub, extensions)]
    fake = Path(folder) / "fake"
    if fake.is_dir():
        for method_dir in sorted(p for p in fake.iterdir() if p.is_dir() and not p.name.startswith(".")):
            videos += [Video(f"{method_dir.name}_{p.stem}", p, "FAKE", method=method_dir.name)
                       for p in _video_files(method_dir, extensions)]
    return videos, []


def discover_videos(cfg):
    """All videos of cfg.VIDEOS_DIR with labels where the layout gives them.

    Returns (videos sorted by name, problems): one line per item that was left out, and for a
    malformed metadata.json a line saying so before falling back to the other layouts.
    Raises FileNotFoundError when VIDEOS_DIR does not exist.
    """
    folder = Path(cfg.VIDEOS_DIR)
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder {folder} does not exist: set VIDEOS_DIR in your config")
    extensions = {e.lower() for e in cfg.VIDEO_EXTENSIONS}
    problems = []
    videos = None
    if Path(cfg.METADATA_FILE).is_file():
        try:
            videos, problems = videos_from_metadata(folder, cfg.METADATA_FILE, extensions)
        except MetadataError as error:
            problems.append(f"{error}; reading the folder without labels instead")
    part_metadata = sorted(folder.glob(f"*/{Path(cfg.METADATA_FILE).name}"))
    if videos is None and part_metadata:
        videos = []
        for metadata_file in part_metadata:
            try:
                part_videos, part_problems = videos_from_metadata(metadata_file.parent, metadata_file, extensions)
            except MetadataError as error:
                part_videos, part_problems = [], [f"{error}; that part is skipped"]
            videos += part_videos
            problems += part_problems
    if videos is None and any((folder / label.lower()).is_dir() for label in LABELS):
        videos, problems_here = videos_from_label_folders(folder, extensions)
        problems += problems_here
    if videos is None:
        videos = [Video(p.stem, p) for p in _video_files(folder, extensions)]
    return _drop_duplicate_names(videos, problems)


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


def select_shard(items, part, count):
    """The `part`-th (1-based) of every `count` items: the share of one machine out of `count`."""
    return [item for index, item in enumerate(items) if index % count == part - 1]
