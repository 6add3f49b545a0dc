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

from deepfake_detect import arguments, settings
from deepfake_detect.faces.azure import AzureSetupError, crop_videos_with_azure, describe_requests, detector_from_config
from deepfake_detect.faces.crops import find_video_folders
from deepfake_detect.jobs.console import Timer, summarize
from deepfake_detect.jobs.outcome import exit_status
from deepfake_detect.jobs.pool import plan_shard

def parse_args(argv=None):
    parser = arguments.new_parser(__doc__, shard=True)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = settings.load_config(args.config)
        part, count = arguments.parse_shard(args.shard)
        settings.check_azure_settings(cfg)
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
    outcomes, stop = crop_videos_with_azure(todo, cfg, detector)
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
