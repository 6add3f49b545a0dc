"""Stage 00: videos -> one frame per second, resized by width, saved as PNG.

    VIDEOS_DIR (+ metadata.json)  ->  FRAMES_DIR/<video>/<video>-NNN.png

    python 00-convert_video_to_image.py [--config configs/my_dataset.py] [--shard 1/4] [--workers 2] [--ray [ADDRESS]]

Frames kept: index 0, k, 2k, ... with k = floor(fps) (FRAMES_PER_SECOND = 1), as the original.
Resized by width with INTER_AREA per RESIZE_RULES (x2 below 300 px ... x0.33 above 1900 px).
Videos run in parallel, one per worker process, or one Ray task each on a cluster (--ray,
RAY_ADDRESS; see deepfake_detect/jobs/ray_cluster.py). A video's folder appears only once all its
frames are written, so a rerun after a crash skips finished videos and redoes the rest.
Ends with a summary such as:

    stage 00 finished in 41.2 s: 400 videos (398 done, 2 skipped)
      frames: 4,378
      skipped: broken: not a readable video (OpenCV cannot open it)
      output: data/frames
"""

import sys

from deepfake_detect import arguments, settings
from deepfake_detect.datasets.discovery import read_dataset
from deepfake_detect.jobs.console import Timer, summarize, warn
from deepfake_detect.jobs.outcome import exit_status
from deepfake_detect.jobs.pool import plan_shard, run_jobs
from deepfake_detect.media.convert import convert_video

def parse_args(argv=None):
    parser = arguments.new_per_video_parser(
        __doc__, workers_help="worker processes (default: config WORKERS, else one per CPU core)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg, part, count = arguments.load_sharded_config(args)
        listing = read_dataset(cfg)
    except (settings.ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    workers = settings.worker_count(args.workers or cfg.WORKERS)
    print(settings.describe_settings(cfg, ["VIDEOS_DIR", "FRAMES_DIR", "FRAMES_PER_SECOND", "RESIZE_RULES"])
          + f", layout: {listing.layout}, {settings.describe_engine(cfg, workers)}, shard={part}/{count}")
    for problem in listing.problems:
        warn(problem)
    todo, already = plan_shard(listing.videos, cfg.FRAMES_DIR, part, count, args.clean_partials)

    timer = Timer()
    outcomes = run_jobs(convert_video, todo, cfg, workers, desc="stage 00 videos")
    for outcome in outcomes:
        if outcome.status == "done" and outcome.reason:
            warn(f"{outcome.name}: {outcome.reason}")
    settings.save_settings(cfg, cfg.FRAMES_DIR, "00")
    summarize("stage 00", already + outcomes, timer.seconds, cfg.FRAMES_DIR)
    return exit_status(already + outcomes)


if __name__ == "__main__":
    sys.exit(main())
