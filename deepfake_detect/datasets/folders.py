"""The layouts without a dataset's own files: real/ + fake/[<method>/] folders, and a plain folder."""

from pathlib import Path

from deepfake_detect.datasets.common import LABELS, Listing, Video, video_files


def has_label_folders(folder):
    """Whether `folder` has a real/ or fake/ subfolder."""
    return any((Path(folder) / label.lower()).is_dir() for label in LABELS)


def read_label_folders(folder, extensions):
    """Videos under `folder`/real and `folder`/fake, labelled by their subfolder; a video in
    fake/<method>/ is a fake made by <method> (FaceForensics++'s Deepfakes, Face2Face, ...), named
    <method>_<file name> because such datasets reuse file names across methods."""
    videos = []
    for label in LABELS:
        sub = Path(folder) / label.lower()
        if sub.is_dir():
            videos += [Video(p.stem, p, label) for p in video_files(sub, extensions)]
    fake = Path(folder) / "fake"
    if fake.is_dir():
        for method_dir in sorted(p for p in fake.iterdir() if p.is_dir() and not p.name.startswith(".")):
            videos += [Video(f"{method_dir.name}_{p.stem}", p, "FAKE", method=method_dir.name)
                       for p in video_files(method_dir, extensions)]
    return Listing("real/ + fake/ folders", videos)


def read_plain_folder(folder, extensions):
    """Every video file of `folder`, labels unknown."""
    return Listing("plain folder (no labels)", [Video(p.stem, p) for p in video_files(folder, extensions)])
