"""Benchmark stage 04's memory on a long video: peak RSS of the command on a 4-minute and a
40-minute video, with --json and --annotate, as new processes.

    python bench/bench_04_long_video.py [--minutes 4 40] [--fps 5] [--repo PATH]

The videos are synthetic and small (a portrait 160 px wide, doubled by RESIZE_RULES to 320 px,
shifting a pixel a frame, --fps frames a second, so 40 minutes at 5 fps is 12,000 frames and
2,400 kept at FRAMES_PER_SECOND = 1, a face in each), written with cv2.VideoWriter in a temp
folder. The model is an untrained EfficientNet-B0 at 128 px (weights=None). Peak RSS is the
largest VmRSS of the process, read from /proc every 0.2 s (Linux only). `--repo` runs another
checkout's 04-detect_deepfakes.py (e.g. the code before the fix) on the same videos and model.
Prints one line per video: minutes, kept frames, wall seconds, peak RSS in MB.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
sys.path.insert(0, str(REPO_DIR / "bench"))

from bench_04_detect import build_model  # noqa: E402 - after the path is set

FRAME_WIDTH = 160


def write_video(path, minutes, fps):
    """A `minutes`-long mp4v video of a portrait at `fps` frames a second."""
    from deepfake_detect.sample import portrait_images

    rgb = portrait_images()["astronaut"]
    small = cv2.resize(rgb, (FRAME_WIDTH, round(rgb.shape[0] * FRAME_WIDTH / rgb.shape[1])), interpolation=cv2.INTER_AREA)
    frame = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
    try:
        for index in range(int(minutes * 60 * fps)):
            writer.write(np.roll(frame, index % 8, axis=1))
    finally:
        writer.release()
    return path


def peak_rss_mb(command, cwd):
    """(wall seconds, peak RSS in MB) of `command` run as a new process, sampled from /proc."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    peak = 0
    while process.poll() is None:
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.2)
    if process.returncode != 0:
        sys.exit(f"stage 04 failed ({process.returncode}): {process.stderr.read()[-2000:]}")
    return time.perf_counter() - started, peak / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[4, 40])
    parser.add_argument("--fps", type=int, default=5)
    parser.add_argument("--repo", type=Path, default=REPO_DIR, help="checkout whose stage 04 to run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = build_model(folder / "runs" / "bench" / "model.keras")
        config = folder / "config.py"
        config.write_text(f"from pathlib import Path\nRUNS_DIR = Path({str(folder / 'runs')!r})\n")
        print(f"stage 04 --json --annotate, {args.repo}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        for minutes in args.minutes:
            video = write_video(folder / f"clip_{minutes:g}min.mp4", minutes, args.fps)
            out = folder / f"{minutes:g}.json"
            seconds, peak = peak_rss_mb([sys.executable, "04-detect_deepfakes.py", "--config", str(config), str(video),
                                         "--json", str(out), "--annotate", str(folder / "annotated")], args.repo)
            record = json.loads(out.read_text())["inputs"][0]
            print(f"{minutes:g} min: {record['frames']:,} frames kept, {record['faces']:,} faces, "
                  f"{seconds:,.0f} s, peak RSS {peak:,.0f} MB", flush=True)
            video.unlink()


if __name__ == "__main__":
    main()
