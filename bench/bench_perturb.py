"""Benchmark the robustness sweep's perturbations (deepfake_detect/evaluation/perturb.py) on real DFDC data.

    .venv/bin/python bench/bench_perturb.py [VIDEO]      (default: the first of $DFDC_SAMPLE_DIR/videos/*.mp4)

Prints the time per frame of each frame type at level 3 on the video's first kept frame, as
stage 00 saves it (633x356 for DFDC's 1920x1080 clips), best of `--repeat` runs, with its PSNR;
then the wall time of re-encoding the whole clip with H.264 at each level's CRF (one run each),
the output size, and the PSNR of stage 00's kept frames against the clean ones. One run of this
script, on one machine.
"""

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deepfake_detect import settings  # noqa: E402
from deepfake_detect.media.frames import iter_kept_frames  # noqa: E402
from deepfake_detect.evaluation.perturb import FRAME_TYPES, SEVERITY_LEVELS, Perturbation, psnr  # noqa: E402


def time_frame_type(kind, level, frame, repeat):
    """Best seconds per frame over `repeat` runs, and the perturbed frame."""
    perturbation = Perturbation(kind, level)
    best = math.inf
    for index in range(repeat):
        start = time.perf_counter()
        perturbation.apply(frame, index, "bench")
        best = min(best, time.perf_counter() - start)
    return best, perturbation.apply(frame, 0, "bench")


def kept_frames(video, rules):
    """Stage 00's kept, resized frames of `video`."""
    return [frame for _, frame in iter_kept_frames(video, rules)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", type=Path)
    parser.add_argument("--level", type=int, default=3, help="level of the frame types (default 3)")
    parser.add_argument("--repeat", type=int, default=20, help="runs per frame type; the best is kept")
    args = parser.parse_args()
    videos = [args.video] if args.video else sorted(Path(os.environ.get("DFDC_SAMPLE_DIR", "")).glob("videos/*.mp4"))
    if not videos or not videos[0]:
        sys.exit("no video: pass one, or set DFDC_SAMPLE_DIR=../shared/dfdc_sample")
    video = videos[0]
    rules = settings.load_config().RESIZE_RULES
    clean = kept_frames(video, rules)
    frame = clean[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
          f"OpenCV {cv2.__version__}; video {video.name}, frame {frame.shape[1]}x{frame.shape[0]}")
    print(f"frame types at level {args.level}, best of {args.repeat}:")
    for kind in FRAME_TYPES:
        seconds, out = time_frame_type(kind, args.level, frame, args.repeat)
        print(f"  {kind:<10} {seconds * 1000:7.2f} ms/frame   PSNR {psnr(frame, out):5.2f} dB")
    size_mb = video.stat().st_size / 1e6
    print(f"video re-encode of {video.name} ({size_mb:.2f} MB, {len(clean)} kept frames), one run each:")
    with tempfile.TemporaryDirectory() as tmp:
        for level in SEVERITY_LEVELS:
            perturbation = Perturbation("video", level)
            out_path = Path(tmp) / f"{video.stem}-{level}.mp4"
            start = time.perf_counter()
            perturbation.reencode(video, out_path)
            seconds = time.perf_counter() - start
            frames = kept_frames(out_path, rules)
            quality = np.mean([psnr(a, b) for a, b in zip(clean, frames)])
            print(f"  level {level} CRF {perturbation.parameter}: {seconds:6.2f} s   "
                  f"{out_path.stat().st_size / 1e6:5.2f} MB   kept frames {len(frames)}   PSNR {quality:5.2f} dB")


if __name__ == "__main__":
    main()
