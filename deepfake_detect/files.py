"""Writing outputs so that a killed run never leaves a half-written or half-finished one.

Single files are written to a temporary name and renamed. A video's whole output folder is
built under a hidden partial name (`.<video>.partial-<host>-<pid>`) and renamed at the end, so a
folder named after a video exists only once that video is complete; a rerun skips those and
clears partial folders that a killed run left behind. The host in the name keeps two machines
writing to shared storage (a Ray task and its retry on another node) out of each other's folders.
"""

import csv
import hashlib
import io
import os
import shutil
import socket
from pathlib import Path

import cv2
import numpy as np

PARTIAL_MARK = ".partial-"


def write_bytes_atomic(path, data):
    """Write `data` to `path` through a temporary file in the same folder, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def write_text_atomic(path, text):
    """Write UTF-8 `text` to `path` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_csv(path, rows, columns):
    """Write dict rows as CSV (header first, missing keys empty) atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_png(path, image_bgr):
    """Save an OpenCV (BGR or grayscale) image as PNG atomically. Raises OSError on failure."""
    ok, encoded = cv2.imencode(".png", image_bgr)
    if not ok:
        raise OSError(f"could not encode {path} as PNG")
    write_bytes_atomic(path, encoded.tobytes())


def read_image(path):
    """Read an image file as BGR uint8 (H, W, 3); None when it is missing or unreadable.

    Grayscale and RGBA images are converted; imdecode is used so non-ASCII paths work on Windows.
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)


def start_partial_folder(final_dir):
    """Create and return a fresh private folder in which `final_dir`'s content is built.

    Partial folders of the same video left by an earlier attempt (a worker or a whole machine
    that died mid-video, whose video is now retried) are deleted first.
    """
    final_dir = Path(final_dir)
    prefix = f".{final_dir.name}{PARTIAL_MARK}"
    if final_dir.parent.is_dir():
        for earlier in final_dir.parent.glob(f"{glob_escape(prefix)}*"):
            shutil.rmtree(earlier, ignore_errors=True)
    partial = final_dir.with_name(f"{prefix}{socket.gethostname()}-{os.getpid()}")
    partial.mkdir(parents=True)
    return partial


def glob_escape(text):
    """`text` with glob's special characters bracketed, so video names like 'a[1]' match literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def finish_partial_folder(partial, final_dir):
    """Rename a finished partial folder to its final name. False if another run got there first."""
    try:
        os.replace(partial, final_dir)
        return True
    except OSError:
        if Path(final_dir).is_dir():
            shutil.rmtree(partial, ignore_errors=True)
            return False
        raise


def discard_partial_folder(partial):
    """Delete a partial folder whose item turned out to be unusable."""
    shutil.rmtree(partial, ignore_errors=True)


def remove_stale_partials(folder):
    """Delete partial folders that a killed run left in `folder`; return how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and PARTIAL_MARK in p.name]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def completed_names(folder):
    """Names of the finished per-video folders in `folder` (partial ones excluded)."""
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}


def sha256_of(path):
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
