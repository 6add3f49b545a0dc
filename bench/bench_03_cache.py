"""Benchmark stage 03's input pipeline with CACHE = "memory" and "disk": peak RSS and images/s.

    .venv/bin/python bench/bench_03_cache.py [--memory-counts 10000 40000 80000]
                                             [--disk-counts 10000 40000 160000] [--timed-images 20000]

Writes 10,000 small synthetic face-like PNGs (96 x 112 px) once to /tmp/bench03cache/ and lists
them as many times as a count needs (160,000 crops = each file 16 times: every entry is decoded
and cached like a distinct crop). Each measurement runs in its own Python, which calls stage 03's
own load_split on the train split (INPUT_SIZE, BATCH_SIZE and AUGMENTATION of config.py; disk mode
caches in a fresh folder under /tmp), then times --timed-images of training batches read from the
cache (shuffled and augmented, as training reads them) and reports its peak RSS from
resource.getrusage. Memory mode stops at 80,000 by default: at 160,000 it would take ~16 GB of
the 23 GB benchmark machine, which other jobs share. The reference is the original's ImageDataGenerator.flow_from_directory over the
10,000 files, measured as bench_03_input_pipeline.py does. All figures come from one run.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CROPS_DIR = Path("/tmp/bench03cache")
DISTINCT_CROPS = 10_000

MEASURE = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
import numpy as np
from deepfake_detect import settings
from deepfake_detect.training.batches import load_split
from deepfake_detect.training.split_files import list_split
cfg = settings.load_config()
files = list_split({split_dir!r}, "train")
files = [files[i] for i in np.random.default_rng(0).permutation(len(files))]  # both classes in any prefix
files = [files[i % len(files)] for i in range({count})]
start = time.perf_counter()
dataset, readable = load_split(files, cfg, "train", Path({cache_dir!r}) if {cache_dir!r} else None)
load_seconds = time.perf_counter() - start
steps = max(1, {timed} // cfg.BATCH_SIZE)
start, seen = time.perf_counter(), 0
for x, y in dataset.take(steps):
    seen += int(x.shape[0])
rate = seen / (time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("RESULT", json.dumps({{"load_seconds": load_seconds, "images_per_second": rate, "peak_rss": peak}}))
"""

REFERENCE = """
import json, sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {bench!r})
from pathlib import Path
from deepfake_detect import settings
from bench_03_input_pipeline import bench_image_data_generator
print("RESULT", json.dumps({{"images_per_second": bench_image_data_generator(Path({split_dir!r}), settings.load_config(), 1)}}))
"""


def write_crops(folder, count):
    """count synthetic crops in folder/train/{fake,real}/: a face-like ellipse on a gradient, with noise."""
    import cv2
    import numpy as np

    marker = folder / f".complete-{count}"
    if marker.is_file():
        return
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:112, 0:96]
    for index in range(count):
        class_name = ("fake", "real")[index % 2]
        out = folder / "train" / class_name
        out.mkdir(parents=True, exist_ok=True)
        base = (xs * rng.uniform(0.5, 2) + ys * rng.uniform(0.5, 2))[..., None] + rng.uniform(0, 120, 3)
        image = np.clip(base, 0, 255).astype(np.uint8)
        cv2.ellipse(image, (48, 56), (30, 40), 0, 0, 360, tuple(int(c) for c in rng.uniform(80, 230, 3)), -1)
        image = cv2.add(image, rng.integers(0, 12, image.shape, dtype=np.uint8))
        cv2.imwrite(str(out / f"v{index // 10:05d}-{index % 10:03d}-00.png"), image)
    marker.touch()


def run_child(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memory-counts", type=int, nargs="*", default=[10_000, 40_000, 80_000])
    parser.add_argument("--disk-counts", type=int, nargs="*", default=[10_000, 40_000, 160_000])
    parser.add_argument("--timed-images", type=int, default=20_000, help="images timed after the cache is filled")
    args = parser.parse_args(argv)

    write_crops(CROPS_DIR, DISTINCT_CROPS)
    from deepfake_detect import settings
    from deepfake_detect.training.cache import cache_bytes

    cfg = settings.load_config()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} "
          f"at start; {DISTINCT_CROPS:,} synthetic 96 x 112 PNGs in {CROPS_DIR}; input {cfg.INPUT_SIZE}, "
          f"batch {cfg.BATCH_SIZE}, augmentation on")
    reference = run_child(REFERENCE.format(repo=str(REPO), bench=str(REPO / "bench"), split_dir=str(CROPS_DIR)))
    original = reference["images_per_second"]
    print(f"ImageDataGenerator.flow_from_directory (the original): {original:,.0f} images/s", flush=True)
    print("| crops | decoded size | mode | peak RSS | load (decode + cache) | images/s from the cache | vs original |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    runs = sorted([(count, "memory") for count in args.memory_counts] + [(count, "disk") for count in args.disk_counts],
                  key=lambda run: (run[0], run[1] != "memory"))
    for count, mode in runs:
        cache_dir = tempfile.mkdtemp(prefix="bench03-cache-", dir="/tmp") if mode == "disk" else ""
        try:
            measured = run_child(MEASURE.format(repo=str(REPO), split_dir=str(CROPS_DIR), count=count,
                                                cache_dir=cache_dir, timed=args.timed_images))
        finally:
            if cache_dir:
                shutil.rmtree(cache_dir, ignore_errors=True)
        size = cache_bytes(count, cfg.INPUT_SIZE)
        rate = measured["images_per_second"]
        print(f"| {count:,} | {size / 1e9:.2f} GB | {mode} | {measured['peak_rss'] / 1e9:.2f} GB | "
              f"{measured['load_seconds']:,.0f} s | {rate:,.0f} | {rate / original:.1f}x |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
