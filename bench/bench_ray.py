"""Benchmark Ray's overhead against the local process pool: stage 00 on the DFDC clips.

    DFDC_SAMPLE_DIR=/work/shared/dfdc_sample .venv/bin/python bench/bench_ray.py [--copies 4] [--repeats 3]

Links the two 10-s 1920x1080 DFDC clips of $DFDC_SAMPLE_DIR/videos --copies times under new names
(a plain folder of videos), starts a one-node Ray cluster on 127.0.0.1 with as many CPUs as the
machine (its own temp folder; stopped at the end, never with `ray stop`), and runs the whole stage
00 script --repeats times each way, into a fresh folder every time:

  - local: --workers <CPU cores>, the default process pool;
  - Ray:   --ray 127.0.0.1:<port>, one task per video (connect, tasks, disconnect all included).

Prints the best wall time of each (the script from start to exit) and the stage's own time from its
summary (run_jobs only), and their ratios. Both write identical frames (checked).
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from tests.conftest import folder_contents, write_config  # noqa: E402
from tests.test_ray import RayNode, free_port, wait_for_nodes  # noqa: E402


def link_clips(sample_dir, folder, copies):
    """folder/<clip>-<k>.mp4 for each DFDC clip and k < copies; returns how many videos."""
    folder.mkdir(parents=True)
    clips = sorted((Path(sample_dir) / "videos").glob("*.mp4"))
    for clip in clips:
        for copy in range(copies):
            os.symlink(clip, folder / f"{clip.stem}-{copy}.mp4")
    return len(clips) * copies


def run_stage(config, extra):
    """(wall seconds, the stage's own seconds from its summary) of one stage 00 run."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / "00-convert_video_to_image.py"), "--config", str(config),
                             *extra], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    own = float(re.search(r"stage 00 finished in ([\d,.]+) s", result.stdout).group(1).replace(",", ""))
    return wall, own


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4, help="links of each clip (2 clips x 4 = 8 videos)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each engine; the best is kept")
    args = parser.parse_args(argv)
    sample_dir = os.environ.get("DFDC_SAMPLE_DIR")
    if not sample_dir:
        sys.exit("set DFDC_SAMPLE_DIR to the folder holding videos/ with the DFDC clips")

    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    logs = work / "logs"
    logs.mkdir()
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = RayNode(["--head", "--port", str(port), "--include-dashboard", "false",
                    "--ray-client-server-port", str(free_port())],
                   logs / "head.log", cpus=cores)
    try:
        videos = link_clips(sample_dir, work / "videos", args.copies)
        wait_for_nodes(address, 1, resource=None)
        print(f"machine: {platform.machine()}, {cores} CPU cores, load average {os.getloadavg()[0]:.1f} at start; "
              f"{videos} videos (the 2 DFDC clips x {args.copies}), one-node Ray cluster with {cores} CPUs")
        results, outputs = {}, {}
        for name, extra in (("local", ["--workers", str(cores)]), ("ray", ["--ray", address])):
            runs = []
            for repeat in range(args.repeats):
                out = work / f"{name}-{repeat}"
                config = write_config(work / f"{name}-{repeat}.py", VIDEOS_DIR=work / "videos", OUTPUT_DIR=out,
                                      RAY_ADDRESS=None)
                runs.append(run_stage(config, extra))
                outputs[name] = folder_contents(out / "frames")
            results[name] = (min(w for w, _ in runs), min(o for _, o in runs))
            print(f"{name:5}: best of {args.repeats}: {results[name][0]:.2f} s wall, {results[name][1]:.2f} s "
                  f"in the stage's jobs ({videos / results[name][1]:.2f} videos/s)", flush=True)
        assert outputs["local"] == outputs["ray"], "Ray and the local pool wrote different frames"
        wall = results["ray"][0] / results["local"][0]
        own = results["ray"][1] / results["local"][1]
        extra_seconds = results["ray"][0] - results["local"][0]
        print(f"Ray / local: {wall:.2f}x wall time, {own:.2f}x the jobs' time; Ray adds {extra_seconds:.1f} s "
              f"to this run ({extra_seconds / videos:.2f} s per video); frames identical")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        head.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
