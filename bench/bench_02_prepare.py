"""Benchmark stage 02: hard links against copies, and the original's copy-then-split-folders way.

    .venv/bin/python bench/bench_02_prepare.py [--reals 200] [--fakes-per-real 4] [--crops 20]

Builds a DFDC-like set of face crops in a temporary folder (64x64 noise PNGs; each real video
with `--fakes-per-real` fakes made from it, `--crops` crops per video), then times, in one run:
  - stage 02 as shipped (hard links), through its main()
  - stage 02 writing copies instead (what it does where links are refused)
  - the original's way: copy every crop to prepared/real and a temporary fake folder, copy the
    down-sampled fakes, then splitfolders.ratio() copies everything again
and the new disk space each used. Finally it times the in-memory part (balance and group split)
on a million crops, to show it is not what limits a full DFDC run.
"""

import argparse
import contextlib
import importlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import splitfolders  # noqa: E402

from conftest import write_config  # noqa: E402
from deepfake_detect import settings  # noqa: E402
from deepfake_detect.datasets.discovery import discover_videos  # noqa: E402
from deepfake_detect.datasets.split import (Crop, FilePlacer, assign_splits, balance_classes,  # noqa: E402
                                   build_outputs, collect_crops, split_by_group)

stage02 = importlib.import_module("02-prepare_fake_real_dataset")


def build_crops(root, reals, fakes_per_real, crops_per_video):
    """Write the videos' placeholders, metadata.json and crops; return the config path."""
    videos_dir, faces_dir = root / "videos", root / "faces"
    videos_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    metadata = {}
    names = []
    for r in range(reals):
        names.append((f"real{r:05d}", "REAL", None))
        names += [(f"fake{r:05d}x{f}", "FAKE", f"real{r:05d}.mp4") for f in range(fakes_per_real)]
    for name, label, original in names:
        (videos_dir / f"{name}.mp4").write_bytes(b"")
        metadata[f"{name}.mp4"] = {"label": label, "original": original}
        (faces_dir / name).mkdir(parents=True)
        for index in range(crops_per_video):
            cv2.imwrite(str(faces_dir / name / f"{name}-{index:03d}-00.png"),
                        rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (videos_dir / "metadata.json").write_text(json.dumps(metadata))
    return write_config(root / "config.py", VIDEOS_DIR=videos_dir, OUTPUT_DIR=root / "out", FACES_DIR=faces_dir)


def new_disk_bytes(folder, input_inodes):
    """Bytes of the files under `folder` that are not hard links to an input crop."""
    total, seen = 0, set()
    for path in Path(folder).rglob("*"):
        info = path.stat()
        if path.is_file() and info.st_ino not in input_inodes and info.st_ino not in seen:
            seen.add(info.st_ino)
            total += info.st_blocks * 512
    return total


def run_ours_with_copies(cfg):
    """Stage 02's own steps, with a FilePlacer that copies."""
    videos, _ = discover_videos(cfg)
    crops, _ = collect_crops(videos, cfg.FACES_DIR)
    crops, _ = balance_classes(crops, cfg.SPLIT_SEED)
    assignment, _ = assign_splits(crops, cfg)
    build_outputs(crops, assignment, cfg, FilePlacer(use_links=False))


def run_original_way(cfg, out):
    """The original script's file operations: copy_tree per video, np.random.choice, split-folders."""
    prepared, tmp_fake = out / "prepared_dataset", out / "tmp_fake_faces"
    for folder in (prepared / "real", prepared / "fake", tmp_fake):
        folder.mkdir(parents=True)
    videos, _ = discover_videos(cfg)
    for video in videos:
        target = prepared / "real" if video.label == "REAL" else tmp_fake
        shutil.copytree(cfg.FACES_DIR / video.name, target, dirs_exist_ok=True)
    real_count = len(list((prepared / "real").glob("*.png")))
    fakes = sorted(p.name for p in tmp_fake.glob("*.png"))
    for name in np.random.default_rng(0).choice(fakes, real_count, replace=False):
        shutil.copyfile(tmp_fake / name, prepared / "fake" / name)
    splitfolders.ratio(str(prepared), output=str(out / "split_dataset"), seed=1377, ratio=(0.8, 0.1, 0.1))


def timed(function, *args):
    """Wall seconds of function(*args), with its printed output and progress bars hidden."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        function(*args)
    return time.perf_counter() - start


def time_in_memory(crop_count):
    """Seconds to balance and group-split `crop_count` crops (DFDC-like: 1 real : 5 fakes)."""
    crops = []
    for index in range(crop_count):
        group = index // 120  # one real video and its fakes, 20 crops each
        label = "REAL" if index % 120 < 20 else "FAKE"
        video = f"v{index // 20}"
        crops.append(Crop(Path(f"{video}/{video}-{index % 20:03d}-00.png"), label, video, f"g{group}"))
    start = time.perf_counter()
    kept, _ = balance_classes(crops, 1377)
    split_by_group(kept, (0.8, 0.1, 0.1), 1377)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reals", type=int, default=200)
    parser.add_argument("--fakes-per-real", type=int, default=4)
    parser.add_argument("--crops", type=int, default=20, help="crops per video")
    parser.add_argument("--memory-crops", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        config = build_crops(work, args.reals, args.fakes_per_real, args.crops)
        cfg = settings.load_config(config)
        inputs = {p.stat().st_ino for p in cfg.FACES_DIR.rglob("*.png")}
        input_bytes = sum(p.stat().st_blocks * 512 for p in cfg.FACES_DIR.rglob("*.png"))
        print(f"input: {len(inputs):,} crops of {args.reals * (1 + args.fakes_per_real):,} videos, "
              f"{input_bytes / 1e6:,.0f} MB")
        results = []
        links_seconds = timed(stage02.main, ["--config", str(config)])
        results.append(("stage 02, hard links", links_seconds, new_disk_bytes(cfg.OUTPUT_DIR, inputs)))
        shutil.rmtree(cfg.OUTPUT_DIR)
        seconds = timed(run_ours_with_copies, cfg)
        results.append(("stage 02, copies", seconds, new_disk_bytes(cfg.OUTPUT_DIR, inputs)))
        shutil.rmtree(cfg.OUTPUT_DIR)
        seconds = timed(run_original_way, cfg, work / "original")
        results.append(("original (copy + split-folders)", seconds, new_disk_bytes(work / "original", inputs)))
    print()
    print(f"{'method':<34}{'seconds':>9}{'new disk MB':>13}{'time vs links':>15}")
    for name, seconds, disk in results:
        print(f"{name:<34}{seconds:>9.2f}{disk / 1e6:>13,.1f}{seconds / links_seconds:>14.1f}x")
    print(f"\nbalance + group split of {args.memory_crops:,} crops in memory: "
          f"{time_in_memory(args.memory_crops):.1f} s")


if __name__ == "__main__":
    main()
