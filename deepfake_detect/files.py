"""Writing outputs so that a killed run never leaves a half-written or half-finished one.

Single files are written to a temporary name and renamed. A video's whole output folder is
built under a hidden partial name (`.<video>.partial-<host>-<pid>`) and renamed at the end, so a
folder named after a video exists only once that video is complete; a rerun skips those and
clears the partial folders that a killed run left behind. Only a provably stale partial folder
is deleted: one made on this host by a process that is no longer alive. Another host's partial
folder is left alone, since its process may be at work on shared storage (docs/scale.md; a
stage's --clean-partials clears them once the user knows no other machine is writing there).
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

    Stale partial folders of the same video (a process of this host that died mid-video) are
    deleted first; another host's, or a live process's, are left alone (is_stale_partial).
    """
    final_dir = Path(final_dir)
    prefix = f".{final_dir.name}{PARTIAL_MARK}"
    if final_dir.parent.is_dir():
        for earlier in final_dir.parent.glob(f"{glob_escape(prefix)}*"):
            if is_stale_partial(earlier):
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


def partial_folders(folder):
    """The partial folders in `folder` (any host, live or not)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name.startswith(".") and PARTIAL_MARK in p.name]


def partial_owner(path):
    """(host, pid) from a partial folder named `.<name>.partial-<host>-<pid>`; None for another name."""
    host, _, pid = Path(path).name.rpartition(PARTIAL_MARK)[2].rpartition("-")
    if not host or not pid.isdigit():
        return None
    return host, int(pid)


def process_alive(pid):
    """True when a process with this id runs on this machine (or might: when in doubt, True)."""
    if os.name == "nt":
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # it exists, under another user (or the id is not a real one: keep)
    return not _is_zombie(pid)


def _is_zombie(pid):
    """True when Linux says `pid` has exited but is not yet reaped (its folder is as dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _windows_process_alive(pid):
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def is_stale_partial(path):
    """True only when `path` was made on this host by a process that is no longer alive.

    A partial folder of another host may be live (shared storage), and one whose name does not
    say its owner cannot be proven dead: both are kept. The pid of a dead process reused by a
    new one keeps a stale folder until that process ends too; it is never a live folder deleted.
    """
    owner = partial_owner(path)
    return owner is not None and owner[0] == socket.gethostname() and not process_alive(owner[1])


def remove_stale_partials(folder, every_host=False):
    """Delete the partial folders that a killed run of this host left in `folder`.

    `every_host=True` (a stage's --clean-partials) deletes every partial folder except those of
    live processes of this host: for when the user knows no other machine writes to `folder`.
    Returns (how many were deleted, how many of other hosts were left).
    """
    removed, foreign = 0, 0
    for path in partial_folders(folder):
        owner = partial_owner(path)
        here = owner is not None and owner[0] == socket.gethostname()
        if is_stale_partial(path) or (every_host and not (here and process_alive(owner[1]))):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        elif not here:
            foreign += 1
    return removed, foreign


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
