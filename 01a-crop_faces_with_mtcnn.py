"""Stage 01a: frames -> face crops, found with MTCNN.

    FRAMES_DIR/<video>/<video>-NNN.png  ->  FACES_DIR/<video>/<video>-NNN-NN.png + faces.csv

    python 01a-crop_faces_with_mtcnn.py [--config configs/my_dataset.py] [--shard 1/4] [--workers 2] [--ray [ADDRESS]]

Every face MTCNN finds is kept when its frame has fewer than two detections, or when its
confidence is above MULTI_FACE_MIN_CONFIDENCE (0.95); the box grows by FACE_MARGIN (30%) of
its width and height on each side, clipped to the frame, as in the original. NN counts a
frame's kept faces 00, 01, ... Each video's faces.csv lists every kept face (frame, face
number, box, confidence, and its landmarks in crop pixels: dlib's LANDMARK_MODEL, else MTCNN's
five keypoints; docs/00-02-preprocessing.md#landmarks) and every frame in which none was found.

MTCNN runs as in the original (mtcnn 0.1's steps, see deepfake_detect/faces/mtcnn.py). Each worker
process loads it once and sends it MTCNN_BATCH_SIZE frames at a time; videos run in parallel,
one per worker (default: one worker per 4 cores; each pays ~3 s to start TensorFlow and
already uses several cores, so on 2 cores one worker is fastest). With --ray (or RAY_ADDRESS)
the detectors are Ray actors instead, one per RAY_CPUS_PER_ACTOR CPUs (or RAY_GPUS_PER_ACTOR GPUs).
A video's folder appears only once all its crops and its index are written, so a rerun after
a crash skips finished videos and redoes the rest.
Ends with a summary such as:

    stage 01a finished in 3.0 s: 2 videos (2 done)
      frames: 22, faces: 16, frames_without_face: 6, unreadable_frames: 0
      output: data/faces
"""

import sys

from deepfake_detect import arguments, settings
from deepfake_detect.faces.crops import find_video_folders
from deepfake_detect.faces.mtcnn import (count_detector_threads, count_detector_workers, crop_video_with_mtcnn,
                                         start_detector_worker)
from deepfake_detect.jobs.console import Timer, summarize, warn
from deepfake_detect.jobs.outcome import DONE, exit_status
from deepfake_detect.jobs.pool import plan_shard, run_jobs


def parse_args(argv=None):
    parser = arguments.new_per_video_parser(
        __doc__, workers_help="worker processes, each with its own MTCNN (default: config MTCNN_WORKERS, "
                              "else one per 4 CPU cores); 1 runs in this process")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg, part, count = arguments.load_sharded_config(args)
        folders = find_video_folders(cfg.FRAMES_DIR)
    except (settings.ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not folders:
        print(f"error: no video folders in {cfg.FRAMES_DIR}: run 00-convert_video_to_image.py first",
              file=sys.stderr)
        return 1
    workers = count_detector_workers(args.workers, cfg)
    print(settings.describe_settings(cfg, ["FRAMES_DIR", "FACES_DIR", "FACE_MARGIN", "MULTI_FACE_MIN_CONFIDENCE",
                                           "MTCNN_BATCH_SIZE"])
          + f", {settings.describe_engine(cfg, workers)}, shard={part}/{count}")
    todo, already = plan_shard(folders, cfg.FACES_DIR, part, count, args.clean_partials)

    timer = Timer()
    # Loading MTCNN takes seconds: not worth it when every video is already cropped.
    threads = count_detector_threads(workers)
    if cfg.RAY_ADDRESS:  # each Ray actor has RAY_CPUS_PER_ACTOR CPUs of its machine to itself
        threads = max(1, int(cfg.RAY_CPUS_PER_ACTOR))
    outcomes = run_jobs(crop_video_with_mtcnn, todo, cfg, workers, desc="stage 01a videos",
                        initializer=start_detector_worker, initargs=(threads,)) if todo else []
    for outcome in outcomes:
        if outcome.status == DONE and outcome.reason:
            for line in outcome.reason.splitlines():
                warn(f"skipped frame {line}")
    settings.save_settings(cfg, cfg.FACES_DIR, "01a")
    summarize("stage 01a", already + outcomes, timer.seconds, cfg.FACES_DIR)
    return exit_status(already + outcomes)


if __name__ == "__main__":
    sys.exit(main())
