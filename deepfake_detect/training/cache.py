"""Stage 03's crop cache: decoded crops kept in memory or, above a share of the memory, in a
tf.data file cache on disk that a killed run never leaves half-written."""

import hashlib
import os
import shutil
from pathlib import Path

from deepfake_detect.training.distribute import cluster_size

# CACHE = "auto" keeps the decoded crops in memory while they fit in this share of the memory
# available when stage 03 starts; above it, on disk.
CACHE_MEMORY_SHARE = 0.5
# Disk cache: training shuffles within this many crops (100 MB at 128 px) over a cache written
# in a shuffled file order, instead of over the whole split.
DISK_SHUFFLE_BUFFER = 2048
CACHE_MODES = ("auto", "memory", "disk")


def cache_bytes(crop_count, input_size):
    """Bytes of decoded uint8 crops: crop_count x input_size^2 x 3."""
    return crop_count * input_size * input_size * 3


def available_memory_bytes():
    """Memory available to a new process (Linux MemAvailable, else sysconf); None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def choose_cache(mode, crop_count, input_size, available_bytes, share=CACHE_MEMORY_SHARE):
    """("memory" | "disk", a sentence saying why) for CACHE = mode and this many crops in memory at once."""
    need = cache_bytes(crop_count, input_size)
    if mode != "auto":
        return mode, f"CACHE = {mode!r}: {crop_count:,} decoded crops, {need / 1e9:,.1f} GB"
    if available_bytes is None:
        return "memory", f"CACHE = 'auto': available memory unknown, so {need / 1e9:,.1f} GB of crops in memory"
    limit = available_bytes * share
    where = "disk" if need > limit else "memory"
    return where, (f"CACHE = 'auto': {crop_count:,} decoded crops need {need / 1e9:,.1f} GB, "
                   f"{'more' if where == 'disk' else 'no more'} than {share:.0%} of the "
                   f"{available_bytes / 1e9:,.1f} GB available, so they are cached {'on disk' if where == 'disk' else 'in memory'}")


def crop_cache_key(files, input_size):
    """A short hash of the crops (path, size, modification time) and INPUT_SIZE: a cache is
    reused only for exactly these files, unchanged."""
    digest = hashlib.sha256(str(input_size).encode())
    for path, label in files:
        stat = os.stat(path)
        digest.update(f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def disk_cache(cache_dir, name, files, input_size):
    """(prefix of a finished file cache or None, prefix to write a new one under) in cache_dir.

    tf.data writes a file cache as <prefix>.data-* plus <prefix>.index when a pass ends, and
    leaves a lockfile and temporary files when killed. A new cache is therefore written under a
    private partial prefix and published by publish_disk_cache (index renamed last), so a
    cache named <name>-<key> is always complete; partial caches of killed runs are deleted here.
    """
    import socket

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / f"{name}-{crop_cache_key(files, input_size)}"
    for stale in cache_dir.glob(f".{name}-*.partial-*"):
        stale.unlink(missing_ok=True)
    for outdated in cache_dir.glob(f"{name}-*"):  # caches of other files or another INPUT_SIZE
        if not outdated.name.startswith(final.name + "."):
            outdated.unlink(missing_ok=True)
    if final.with_name(final.name + ".index").is_file():
        return final, None
    return None, cache_dir / f".{final.name}.partial-{socket.gethostname()}-{os.getpid()}"


def publish_disk_cache(partial):
    """Rename a fully written partial file cache to its final prefix (data first, index last)."""
    final_name = partial.name[1:].split(".partial-")[0]
    files = sorted(partial.parent.glob(f"{partial.name}.*"), key=lambda path: path.suffix == ".index")
    for path in files:
        os.replace(path, path.with_name(final_name + path.name[len(partial.name):]))
    return partial.with_name(final_name)


def choose_cache_dir(cfg, files_by_split, run_dir):
    """Where load_split keeps the decoded crops, per CACHE: None (memory) or run_dir/cache (disk).
    "auto" weighs train + val, which are held at once, against the memory available; prints why."""
    machines = cluster_size(os.environ.get("TF_CONFIG"))  # each decodes its share only
    in_use = (len(files_by_split["train"]) + len(files_by_split["val"])) // machines
    where, why = choose_cache(cfg.CACHE, in_use, cfg.INPUT_SIZE, available_memory_bytes())
    print(why)
    return run_dir / "cache" if where == "disk" else None


def remove_cache(cache_dir):
    """Delete a disk cache (None: the crops were in memory): as large as the split, and of no
    use once this machine is done with the run."""
    if cache_dir is not None:
        shutil.rmtree(cache_dir, ignore_errors=True)
