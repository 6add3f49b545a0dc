"""Benchmark stage 00: the original's read-every-frame loop against ours (grab, retrieve kept).

    .venv/bin/python bench/bench_00_frames.py [VIDEO ...]     (default: $DFDC_SAMPLE_DIR/videos/*.mp4)

Prints video frames decoded per second for each mode on one worker, the ratio, whether both
wrote identical PNGs, and stage 00's throughput with 1 and 2 worker processes. Each mode is run
`--repeat` times and the best time is kept, in one run of this script, on one machine.
"""

import argparse
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deepfake_detect import settings  # noqa: E402
from deepfake_detect.files import write_png  # noqa: E402
from deepfake_detect.media.frames import frame_file_name, iter_kept_frames, resize_frame  # noqa: E402


def extract_naive(video, out_dir, rules):
    """The original DeepFake-Detect loop: read() (decode + convert) every frame, keep i % floor(fps) == 0."""
    capture = cv2.VideoCapture(str(video))
    frame_rate = capture.get(cv2.CAP_PROP_FPS)
    kept, total = 0, 0
    try:
        while capture.isOpened():
            frame_id = capture.get(cv2.CAP_PROP_POS_FRAMES)
            ok, frame = capture.read()
            if not ok:
                break
            total += 1
            if frame_id % math.floor(frame_rate) == 0:
                write_png(out_dir / frame_file_name(video.stem, kept), resize_frame(frame, rules))
                kept += 1
    finally:
        capture.release()
    return total


def extract_ours(video, out_dir, rules):
    """Stage 00's extraction (what convert_video does, without the resume bookkeeping)."""
    stats = {}
    for kept, (_, frame) in enumerate(iter_kept_frames(video, rules, 1, stats)):
        write_png(out_dir / frame_file_name(video.stem, kept), frame)
    return stats["decoded"]


def time_mode(extract, videos, rules, out_dir, repeat):
    """Best wall time over `repeat` runs and the frames decoded per run."""
    best, frames = math.inf, 0
    for _ in range(repeat):
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        start = time.perf_counter()
        frames = sum(extract(video, out_dir, rules) for video in videos)
        best = min(best, time.perf_counter() - start)
    return best, frames


def same_files(a, b):
    names_a, names_b = sorted(p.name for p in a.iterdir()), sorted(p.name for p in b.iterdir())
    return names_a == names_b and all((a / n).read_bytes() == (b / n).read_bytes() for n in names_a)


def time_stage(videos, workers, work_dir, copies):
    """Wall time of the real stage 00 script on `copies` links of each video, with `workers` processes."""
    videos_dir = work_dir / f"videos-{workers}"
    shutil.rmtree(videos_dir, ignore_errors=True)
    videos_dir.mkdir(parents=True)
    for copy in range(copies):
        for video in videos:
            os.symlink(video.resolve(), videos_dir / f"{video.stem}_{copy}{video.suffix}")
    out_dir = work_dir / f"out-{workers}"
    shutil.rmtree(out_dir, ignore_errors=True)
    config = work_dir / f"cfg-{workers}.py"
    config.write_text(f"VIDEOS_DIR = Path({str(videos_dir)!r})\nOUTPUT_DIR = Path({str(out_dir)!r})\n")
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "00-convert_video_to_image.py"), "--config", str(config),
                    "--workers", str(workers)], check=True, capture_output=True)
    return time.perf_counter() - start, len(videos) * copies


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copies", type=int, default=3, help="copies of each video for the worker scaling run")
    args = parser.parse_args()
    videos = args.videos or sorted(Path(os.environ.get("DFDC_SAMPLE_DIR", "")).glob("videos/*.mp4"))
    if not videos:
        sys.exit("no videos: pass some, or set DFDC_SAMPLE_DIR=../shared/dfdc_sample")
    rules = settings.load_config().RESIZE_RULES
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
          f"OpenCV {cv2.__version__}; {len(videos)} videos")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        naive_time, frames = time_mode(extract_naive, videos, rules, tmp / "naive", args.repeat)
        ours_time, frames_ours = time_mode(extract_ours, videos, rules, tmp / "ours", args.repeat)
        assert frames == frames_ours, (frames, frames_ours)
        print(f"one worker, {frames} frames decoded, best of {args.repeat}:")
        print(f"  naive read() every frame : {frames / naive_time:8.1f} frames/s")
        print(f"  ours grab() + retrieve() : {frames / ours_time:8.1f} frames/s")
        print(f"  ratio                    : {naive_time / ours_time:8.2f}x")
        print(f"  identical PNGs           : {same_files(tmp / 'naive', tmp / 'ours')}")
        one, count = time_stage(videos, 1, tmp, args.copies)
        two, _ = time_stage(videos, 2, tmp, args.copies)
        print(f"stage 00 script on {count} videos (start-up included):")
        print(f"  1 worker : {one:6.2f} s   2 workers: {two:6.2f} s   speed-up {one / two:.2f}x")


if __name__ == "__main__":
    main()
