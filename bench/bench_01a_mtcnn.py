"""Benchmark stage 01a: the original's way (a new MTCNN for every frame) against ours.

    python bench/bench_01a_mtcnn.py [FRAMES_DIR] [--workers 1 2] [--copies 1]

FRAMES_DIR holds stage 00 output (<video>/<video>-NNN.png). Default: stage 00 is run on the
two DFDC clips of $DFDC_SAMPLE_DIR/videos (22 frames) into a temporary folder. --copies K
repeats every video K times (as new names), to see how a longer run amortises start-up.

Modes, all on the same frames, writing crops and index through the same shared code:
  naive      one process; for each frame a new MTCNN, then detect that frame alone (the original)
  ours, w=1  stage 01a with --workers 1: one MTCNN, frames sent MTCNN_BATCH_SIZE at a time
  ours, w=N  stage 01a with --workers N: N spawned processes, each loading TensorFlow and MTCNN

TensorFlow is imported once before any timing, so the naive and w=1 times leave out its
~3 s import; the w=N times include it, because each worker process pays it again.
Prints frames/s for each mode, the speed-up over naive, and whether the crops are identical.
"""

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))

from deepfake_detect import settings  # noqa: E402
from deepfake_detect.faces.crops import (crop_faces_of_video, list_frame_files,  # noqa: E402
                                   load_frame_rgb)
from deepfake_detect.faces.mtcnn import MtcnnFaceDetector  # noqa: E402


def make_dfdc_frames(work_dir):
    """Run stage 00 on $DFDC_SAMPLE_DIR/videos; return the frames folder."""
    sample = os.environ.get("DFDC_SAMPLE_DIR")
    if not sample:
        sys.exit("give a FRAMES_DIR, or set DFDC_SAMPLE_DIR to the dfdc_sample folder")
    config = write_config(work_dir / "stage00.py", VIDEOS_DIR=Path(sample) / "videos", OUTPUT_DIR=work_dir)
    stage00 = importlib.import_module("00-convert_video_to_image")
    if stage00.main(["--config", str(config), "--workers", "1"]) != 0:
        sys.exit("stage 00 failed on the DFDC sample")
    return work_dir / "frames"


def copy_frames(source, target, copies):
    """Copy each video folder of `source` into `target` `copies` times (video, video_c1, ...)."""
    for video in sorted(p for p in Path(source).iterdir() if p.is_dir() and not p.name.startswith(".")):
        for copy in range(copies):
            name = video.name if copy == 0 else f"{video.name}_c{copy}"
            (target / name).mkdir(parents=True)
            for frame in list_frame_files(video):
                shutil.copy(frame, target / name / frame.name.replace(video.name, name, 1))
    return target


def write_config(path, **values):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name} = {value!r}\n".replace("PosixPath", "Path").replace("WindowsPath", "Path")
                            for name, value in values.items()))
    return path


def run_naive(frames_root, faces_root, cfg):
    """The original's loop: a fresh MTCNN for every frame, each frame detected on its own."""
    def detect_with_new_mtcnn(images):
        return MtcnnFaceDetector()(images)

    for video in sorted(p for p in frames_root.iterdir() if p.is_dir()):
        crop_faces_of_video(video, faces_root, detect_with_new_mtcnn, cfg, batch_size=1)


def run_ours(config, workers):
    stage01a = importlib.import_module("01a-crop_faces_with_mtcnn")
    if stage01a.main(["--config", str(config), "--workers", str(workers)]) != 0:
        sys.exit("stage 01a failed")


def crop_files(faces_root):
    """{video/file: bytes} of every crop PNG (the index is left out: confidences may differ in the 7th digit)."""
    return {str(p.relative_to(faces_root)): p.read_bytes() for p in sorted(faces_root.glob("*/*.png"))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("frames_dir", nargs="?", type=Path, help="stage 00 output (default: the DFDC sample)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time (default: 1 2)")
    parser.add_argument("--copies", type=int, default=1, help="repeat every video this many times (default: 1)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench01a-") as tmp:
        work = Path(tmp)
        source = args.frames_dir or make_dfdc_frames(work / "dfdc")
        frames_root = copy_frames(source, work / "frames", args.copies)
        frame_count = sum(len(list_frame_files(v)) for v in frames_root.iterdir())
        print(f"\n{frame_count} frames in {len(list(frames_root.iterdir()))} videos, "
              f"{os.cpu_count()} CPU cores")
        # Import TensorFlow and run MTCNN once outside the timings: both modes would pay it once.
        first_video = sorted(frames_root.iterdir())[0]
        MtcnnFaceDetector()([load_frame_rgb(list_frame_files(first_video)[0])])

        cfg = settings.load_config(write_config(work / "naive.py", FRAMES_DIR=frames_root,
                                                FACES_DIR=work / "faces_naive"))
        start = time.perf_counter()
        run_naive(frames_root, cfg.FACES_DIR, cfg)
        naive_seconds = time.perf_counter() - start
        naive_crops = crop_files(cfg.FACES_DIR)

        results = []
        for workers in args.workers:
            faces_root = work / f"faces_w{workers}"
            config = write_config(work / f"ours_w{workers}.py", FRAMES_DIR=frames_root, FACES_DIR=faces_root)
            start = time.perf_counter()
            run_ours(config, workers)
            results.append((workers, time.perf_counter() - start, crop_files(faces_root) == naive_crops))

        print(f"\nstage 01a on {frame_count} frames ({os.cpu_count()}-core CPU, no GPU):")
        print(f"  naive (new MTCNN per frame) : {naive_seconds:6.1f} s  {frame_count / naive_seconds:6.1f} frames/s"
              f"  ({len(naive_crops)} crops)")
        for workers, seconds, same in results:
            print(f"  ours, --workers {workers}          : {seconds:6.1f} s  {frame_count / seconds:6.1f} frames/s"
                  f"  {naive_seconds / seconds:4.1f}x naive, crops {'identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
