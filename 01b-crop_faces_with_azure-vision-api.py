"""Stage 01b: frames -> face crops, found by Azure's cloud face detection (instead of 01a's MTCNN).

    FRAMES_DIR/<video>/<video>-NNN.png  ->  FACES_DIR/<video>/<video>-NNN-NN.png + faces.csv

    export FACE_ENDPOINT=https://<resource>.cognitiveservices.azure.com FACE_APIKEY=<key>
    python 01b-crop_faces_with_azure-vision-api.py [--config configs/my_dataset.py] [--shard 1/4]

AZURE_SERVICE picks the Face service (default; FACE_ENDPOINT, FACE_APIKEY) or Image Analysis 3.2
(VISION_ENDPOINT, VISION_KEY). The output is 01a's, made by the same code: each box grows by
FACE_MARGIN (30%) on each side, clipped to the frame; NN counts a frame's faces; faces.csv lists
every face and every frame without one. Azure gives no confidence, so 01a's rule for frames with
several faces (keep those above 0.95) cannot apply: every face Azure returns is kept.

One request per frame, one video after another in this process: the service, limited to
AZURE_CALLS_PER_MINUTE, is the bottleneck. 429, 5xx, timeouts and broken connections are retried
with growing waits. A frame the service refuses (400) is named on stderr and its video is left
unfinished, so a rerun retries it; a refused key (401/403) or a service still failing after
AZURE_MAX_RETRIES stops the stage at once. A video's folder appears only once all its crops and
its index are written, so a rerun skips finished videos and redoes the rest. Ends with:

    stage 01b finished in 70.3 s: 2 videos (2 done)
      frames: 22, faces: 18, frames_without_face: 4, unreadable_frames: 0
      Azure Face service: 23 requests, 22 frames sent, 1 retries, 0 frames refused, 0 frames rescaled
      to the service's size limits, 66 s waiting for AZURE_CALLS_PER_MINUTE
      output: data/faces
"""

import sys

from tqdm import tqdm

from deepfake_detect import settings
from deepfake_detect.azure import AzureSetupError, AzureStopError, detector_from_config
from deepfake_detect.faces import crop_faces_of_video, find_video_folders
from deepfake_detect.jobs.console import Timer, summarize, warn
from deepfake_detect.jobs.outcome import FAILED, SKIPPED, Outcome, exit_status
from deepfake_detect.jobs.pool import plan_shard

# Stage 01a reads the same input folders: its function is used rather than copied.


def crop_video(frames_dir, cfg, detector):
    """Crop the faces of one video's frames into FACES_DIR/<video>/; return its Outcome.

    Raises AzureStopError (nothing of this video is kept) when the service cannot be used.
    """
    # One frame at a time: the detector sends one request per frame anyway, and a stop loses less.
    return crop_faces_of_video(frames_dir, cfg.FACES_DIR, detector, cfg, batch_size=1,
                               on_problem=lambda message: warn(f"frame not searched: {message}"))


def crop_videos(folders, cfg, detector):
    """Crop each video in turn; return (Outcomes, the AzureStopError that stopped it or None)."""
    outcomes = []
    bar = tqdm(folders, desc="stage 01b videos", unit="video", dynamic_ncols=True)
    try:
        for folder in bar:
            try:
                outcome = crop_video(folder, cfg, detector)
            except AzureStopError as error:
                return outcomes, error
            except Exception as error:  # noqa: BLE001 - one video's bug must not stop the others
                outcome = Outcome(folder.name, FAILED, f"{type(error).__name__}: {error}")
            if outcome.status in (SKIPPED, FAILED):
                warn(f"{outcome.name}: {outcome.reason}")
            outcomes.append(outcome)
            bar.set_postfix(requests=detector.stats["requests"], retries=detector.stats["retries"],
                            refresh=False)
    finally:
        bar.close()
    return outcomes, None


def describe_requests(detector):
    """One summary line: what was asked of the service, and what it cost."""
    stats = detector.stats
    line = (f"{detector.service.title}: {stats['requests']:,} requests, {stats['frames_sent']:,} frames sent, "
            f"{stats['retries']:,} retries, {stats['frames_rejected']:,} frames refused, "
            f"{stats['frames_rescaled']:,} frames rescaled to the service's size limits")
    if detector.rate_limit_wait_seconds >= 1:
        line += f", {detector.rate_limit_wait_seconds:,.0f} s waiting for AZURE_CALLS_PER_MINUTE"
    return line


def parse_args(argv=None):
    parser = settings.new_parser(__doc__, shard=True)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = settings.load_config(args.config)
        part, count = settings.parse_shard(args.shard)
        detector = detector_from_config(cfg)  # checks the endpoint and key; sends nothing
        folders = find_video_folders(cfg.FRAMES_DIR)
    except (settings.ConfigError, AzureSetupError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return crop_all(cfg, detector, folders, part, count, args.clean_partials)
    finally:
        detector.close()


def crop_all(cfg, detector, folders, part, count, clean_partials=False):
    """The run itself, once the settings are known to be usable; returns the exit status."""
    if not folders:
        print(f"error: no video folders in {cfg.FRAMES_DIR}: run 00-convert_video_to_image.py first",
              file=sys.stderr)
        return 1
    endpoint_variable = detector.service.endpoint_variable
    print(settings.describe_settings(cfg, ["FRAMES_DIR", "FACES_DIR", "FACE_MARGIN", "AZURE_SERVICE",
                                           endpoint_variable, "AZURE_CALLS_PER_MINUTE",
                                           "AZURE_TIMEOUT_SECONDS", "AZURE_MAX_RETRIES"])
          + f", shard={part}/{count}")
    todo, already = plan_shard(folders, cfg.FACES_DIR, part, count, clean_partials)

    timer = Timer()
    outcomes, stop = crop_videos(todo, cfg, detector)
    settings.save_settings(cfg, cfg.FACES_DIR, "01b")
    extra = [describe_requests(detector)]
    if stop:
        extra.append(f"stopped before {len(todo) - len(outcomes):,} videos; rerun to go on")
    summarize("stage 01b", already + outcomes, timer.seconds, cfg.FACES_DIR, extra=extra)
    if stop:
        print(f"error: {stop}", file=sys.stderr)
        return 1
    return exit_status(already + outcomes)


if __name__ == "__main__":
    sys.exit(main())
