"""Every setting of the DeepFake-Detect pipeline, in one place.

Each numbered script reads this file (or the one given with `--config PATH`). To work on
several datasets, keep one small override file per dataset that sets only what differs,
for example `configs/celeb_df.py`:

    VIDEOS_DIR = Path("/mnt/celeb-df")      # holds real/ and fake/ subfolders
    OUTPUT_DIR = Path("/scratch/celeb-df")  # outputs need not live beside the videos

and run `python 00-convert_video_to_image.py --config configs/celeb_df.py`. An override file
may use every name defined here (and `Path`, `os`); a name that is not a setting is an error,
so a typo cannot silently create a new setting. Relative paths are relative to the folder
you run the scripts from. Folder settings left at None follow OUTPUT_DIR.
"""

import os
from pathlib import Path

# ---------------------------------------------------------------- input videos
# The folder of videos. Layouts understood, in this order:
#   1. DFDC: videos plus METADATA_FILE ({"x.mp4": {"label": "FAKE"|"REAL", "original": ...}})
#   2. real/ and fake/ subfolders (Celeb-DF, FaceForensics++ once sorted, DeepFake-TIMIT ...)
#   3. FaceForensics++ as downloaded (original_sequences/, manipulated_sequences/), docs/datasets-ffpp.md
#   4. Celeb-DF v1/v2 as downloaded (Celeb-real/, YouTube-real/, Celeb-synthesis/), docs/datasets-celeb-df.md
#   5. DFDC's public test set (labels.csv) and the DFDC preview (dataset.json), docs/datasets-dfdc.md
#   6. anything else: every video file in the folder, labels unknown (fine for scoring)
VIDEOS_DIR = Path("data/videos")
METADATA_FILE = None            # None: VIDEOS_DIR / "metadata.json"
DATASET_COMPRESSION = "c23"     # FaceForensics++ only: "c23" | "c40" | "raw" (also "c0": the same folder)
# Official split lists: FF++'s train.json / val.json / test.json, Celeb-DF's List_of_testing_videos.txt.
# None: looked for in VIDEOS_DIR (and VIDEOS_DIR/splits for FF++) | a folder (stage 02: --split-lists).
# Stage 02 then honours them; stage 05 selects one with --dataset NAME=FOLDER:SPLIT.
SPLIT_LISTS_DIR = None
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v")

# --------------------------------------------------------------- output folders
OUTPUT_DIR = Path("data")       # parent of the stage folders below that are left at None
FRAMES_DIR = None               # stage 00 output: <FRAMES_DIR>/<video>/<video>-NNN.png
FACES_DIR = None                # stage 01a/01b output: <FACES_DIR>/<video>/<video>-NNN-NN.png
PREPARED_DIR = None             # stage 02: balanced set, <PREPARED_DIR>/{real,fake}/
SPLIT_DIR = None                # stage 02: <SPLIT_DIR>/{train,val,test}/{real,fake}/
RUNS_DIR = Path("runs")         # stage 03: one folder per training run, runs/<name>/

# ------------------------------------------------------- stage 00: video -> frames
FRAMES_PER_SECOND = 1           # frames kept per second of video (the original: 1)
# Resize by frame width, with INTER_AREA: the first rule whose max width (inclusive) is
# >= the width applies. The original's: x2 below 300 px, x1 to 1000, x0.5 to 1900, x0.33 above.
RESIZE_RULES = (
    (299, 2.0),
    (1000, 1.0),
    (1900, 0.5),
    (None, 0.33),               # None: any width
)
WORKERS = None                  # parallel worker processes; None: one per CPU core
# Decode budgets (stages 04 and 05, command line and web page), checked from the file's header
# before anything is decoded, so a small file declaring a huge size costs nothing (media/budget.py).
# Images: 64 megapixels admits 8K (33 MP) and 50 MP camera photos (decoded: 192 MB of BGR); a
# 108 MP phone photo needs 110_000_000. Videos: pixels per frame, 8K DCI (8192x4320) fits. None: no limit.
MAX_IMAGE_PIXELS = 64_000_000
MAX_VIDEO_PIXELS = 36_000_000

# --------------------------------------------------- stages 01a/01b: frames -> faces
FACE_MARGIN = 0.30              # added on each side, as a fraction of the face box's width/height
MULTI_FACE_MIN_CONFIDENCE = 0.95  # with 2+ faces in a frame, keep those above this confidence
MTCNN_BATCH_SIZE = 8            # frames per MTCNN call; one detector per worker process
# Each kept face's landmarks go to faces.csv (crop pixels) for self-blended training (TRAIN_FAKES).
# "dlib5": dlib's 5-point model, free for any use; "dlib68": the 68-point model, whose hull follows
# the jaw as the paper's does, but it was trained on iBUG 300-W, whose terms exclude commercial use;
# None: MTCNN's own five keypoints (stage 01b: no landmarks). Both ship in face-recognition-models.
LANDMARK_MODEL = "dlib5"
MTCNN_WORKERS = None            # processes for stage 01a; None: one per 4 CPU cores, because TensorFlow
                                # already spreads one detector over several cores (2 workers on 2 cores: 0.6x)

# Ray (optional: pip install -r requirements-ray.txt). Runs stages 00, 01a and 04 on a Ray cluster,
# one task per video, instead of local worker processes; see docs/scale.md.
RAY_ADDRESS = os.environ.get("RAY_ADDRESS") or None  # None: local processes | "auto" (the cluster
                                # `ray start` made on this machine) | "host:6379" | "ray://host:10001"; also --ray
RAY_MAX_RETRIES = 3             # attempts more per video when its worker or machine dies (not for its own errors)
RAY_CPUS_PER_ACTOR = 4          # stages 01a, 04: CPUs per actor (its TensorFlow threads), one detector/model each
RAY_GPUS_PER_ACTOR = 1          # stages 01a, 04: GPUs per actor when the cluster has GPUs (0.5: two share one)

# Azure (stage 01b). Endpoints and keys come from the environment, never from this file.
AZURE_SERVICE = "face"          # "face": Face service detect v1.2 | "vision": Image Analysis 3.2 (retires 2028)
FACE_ENDPOINT = os.environ.get("FACE_ENDPOINT", "")      # https://<resource>.cognitiveservices.azure.com
FACE_APIKEY = os.environ.get("FACE_APIKEY", "")
VISION_ENDPOINT = os.environ.get("VISION_ENDPOINT", "")  # the same form, for AZURE_SERVICE = "vision"
VISION_KEY = os.environ.get("VISION_KEY", "")
AZURE_DETECTION_MODEL = "detection_03"  # Face service only: detection_01 | detection_02 | detection_03
AZURE_CALLS_PER_MINUTE = 20     # client-side rate limit; 20 is the free tier, standard ~600+; None: no limit
AZURE_TIMEOUT_SECONDS = 30      # per request, to connect and to read the answer
AZURE_MAX_RETRIES = 5           # for 429, 5xx, timeouts and connection errors; then the stage stops
AZURE_RETRY_BASE_SECONDS = 1.0  # first retry's wait, doubled each retry (with jitter); Retry-After wins

# ------------------------------------------ stage 02: faces -> balanced, split dataset
SPLIT_RATIOS = (0.8, 0.1, 0.1)  # train, val, test
SPLIT_SEED = 1377               # the original's seed; fixes both the down-sampling and the split
# "group": every crop of a video, and every fake with the real video it was made from, stays in
# one split (no leakage). "file": the original's plain per-file split, for comparison only.
SPLIT_MODE = "group"

# ------------------------------------------------------------ stage 03: training
BACKBONE = "EfficientNetB0"     # EfficientNetB0 ... EfficientNetB7 from the efficientnet package
WEIGHTS = "imagenet"            # "imagenet" (downloads once), None, or a path to a weights file
INPUT_SIZE = 128                # faces are resized to INPUT_SIZE x INPUT_SIZE x 3, scaled to [0, 1]
BATCH_SIZE = 32                 # global batch, split across devices
EPOCHS = 20
LEARNING_RATE = 1e-4            # Adam
EARLY_STOPPING_PATIENCE = 5     # epochs without a better val loss before stopping
AUGMENT = True                  # the original's augmentation on training batches only
# The original's ImageDataGenerator arguments (degrees for rotation and shear, fractions of the
# image size for shifts); applied as one affine warp per training image.
AUGMENTATION = {"rotation_range": 10, "width_shift_range": 0.1, "height_shift_range": 0.1,
                "shear_range": 0.2, "zoom_range": 0.1, "horizontal_flip": True, "fill_mode": "nearest"}
# Momentum of the backbone's BatchNorm moving averages; None keeps the backbone's own (0.99).
# Training from random weights for a few hundred steps needs less (e.g. 0.9): at 0.99 the
# averages used at inference lag ~100 steps behind fast-changing weights (after 75 steps they
# had barely left their start, and every output stayed near 0.5).
BATCHNORM_MOMENTUM = None
TRAINING_SEED = None            # a whole number fixes the initial weights and the shuffling; None: new each run
# Where the training fakes come from (docs/03-train.md#which-fakes-to-train-on):
# "dataset": the dataset's own fakes, the original's way. In domain it is best (EfficientNet on
#   FF++: video AUC 0.997) but it learns those fakes' generators: 0.64-0.75 on Celeb-DF, 0.70 on DFDC.
# "self_blended": train and val fakes are self-blended images (Shiohara & Yamasaki, CVPR 2022) made
#   from the real crops (landmarks from stage 01, LANDMARK_MODEL); the dataset's fakes only test.
#   Needs real videos only; trained on FF++ real, the paper reports video AUC 0.932 on Celeb-DF-v2,
#   0.724 on DFDC: for fakes of unknown generators.
# "both": the dataset's fakes with SELF_BLENDED_SHARE of each training batch's fakes replaced by
#   self-blended ones (val keeps the dataset's fakes), as ProDet (NeurIPS 2024) mixes them.
TRAIN_FAKES = "dataset"
SELF_BLENDED_SHARE = 0.5        # "both": the share of each training batch's fakes that are self-blended
# How the self-blended fakes are made: "paper" (Shiohara & Yamasaki's recipe: blend ratios 0.25-1, a
# colour change then a softening or a sharpening); "strong": always a full blend of a copy softened
# by 2 or sharpened hard, cruder fakes that a network from random weights (WEIGHTS = None, the sample)
# learns in minutes where the paper's kept it at chance for 500 steps. With "imagenet" weights: "paper".
SELF_BLEND_RECIPE = "paper"
MIXED_PRECISION = True          # on GPUs only; float32 output layer either way
# Decoded crops (INPUT_SIZE^2 x 3 bytes each: 49 KB at 128 px) are cached once, then read every epoch:
# "memory" | "disk" (a tf.data file cache in the run's cache/ folder, deleted when the run ends) |
# "auto": disk when train + val would take more than half of the available memory (docs/scale.md)
CACHE = "auto"
RUN_NAME = None                 # None: a timestamp, e.g. runs/2026-11-27_0930
# Several machines (TF_CONFIG, docs/03-train.md): seconds a machine waits for the others named there
# to answer, at the start and after one was lost, before it stops and names those it could not reach.
CLUSTER_TIMEOUT_S = 300

# --------------------------------------------------------- stage 04: detection
THRESHOLD = 0.5                 # a video or image scoring below this P(pristine) is called FAKE
# Stage 04 calls a video or image UNCERTAIN, not REAL or FAKE, when its P(pristine) lies strictly
# within this distance of THRESHOLD (0.1: between 0.4 and 0.6), rather than show false certainty
# for a score a hair's breadth from the threshold. 0 turns the band off. Stage 03's metrics
# always use THRESHOLD alone.
UNCERTAIN_MARGIN = 0.1
# How a video's faces make its one score (docs/04-detect.md, "Which rule"):
#   "mean": every face alike (the original; right when the whole video is manipulated)
#   "confident": the DFDC winner's rule (a few confident faces outvote the rest)
#   "person_max": each person scored by the mean of their faces, the video as fake as its most-fake
#     person (for videos where one of several people is swapped)
#   "segment": FAKE when any person has a fake segment, scored by the strongest one (for partly
#     manipulated videos: a swapped span of a few seconds); without a segment, as person_max
VIDEO_SCORE = "mean"
# Person tracks (inference/tracks.py): faces are matched frame to frame by box overlap and centre
# distance. At FRAMES_PER_SECOND = 1 a moving face can shift by more than its width between
# frames, hence a distance gate beside the overlap one.
TRACK_MAX_GAP = 2               # sampled frames a person may go undetected and keep their number (0: none)
TRACK_MIN_IOU = 0.3             # boxes overlapping at least this much (IoU, 0-1] may be the same person
TRACK_MAX_DISTANCE = 1.0        # ... or centres within this many face widths (>= 0)
# Fake segments (inference/segments.py): per person, P(fake) per frame is median-smoothed over
# this window (a median keeps a swap's step edge where a mean would smear it; 0: no smoothing),
# and a span above the threshold counts as fake only when it lasts at least MIN_FAKE_SECONDS
# (shorter blips are noise; LAV-DF's shortest fakes are about 0.1 s, so lower it for such data).
SEGMENT_SMOOTHING_SECONDS = 2.0
MIN_FAKE_SECONDS = 1.5
WEB_HOST = "127.0.0.1"          # the web page binds here; 0.0.0.0 exposes it to your network
WEB_PORT = 8000
WEB_MAX_UPLOAD_MB = 50
WEB_MAX_VIDEO_SECONDS = 120     # the page is for short clips: longer videos are refused (the command line takes any)
# Uploads are scored by WEB_WORKERS processes, each holding MTCNN and the model (~0.6-1 GB at rest).
# One that crashes, grows above WEB_WORKER_MAX_MB resident (checked on Linux) or scores one upload
# longer than WEB_JOB_TIMEOUT_S is killed and replaced; that upload gets one sentence. Memory of
# the whole page: the server (~0.5 GB) + WEB_WORKERS x WEB_WORKER_MAX_MB at most (docs/04-detect.md).
WEB_WORKERS = 2
WEB_WORKER_MAX_MB = 3072
WEB_JOB_TIMEOUT_S = 300
# Anyone who can reach a page bound beyond loopback must give this token (the API as
# "Authorization: Bearer <token>", the page asks once and keeps it in a cookie). Read from the
# environment, never written here; without it such a server refuses to start (--no-auth opts out).
# When set, loopback pages ask for it too. Make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"
WEB_TOKEN = os.environ.get("WEB_TOKEN", "")
# Live scoring (04-detect_deepfakes.py --live SOURCE, the page's /live view, Detector.stream;
# deepfake_detect/live/, docs/live.md). A live source never ends, so each person is judged on the
# last LIVE_WINDOW_SECONDS only, by the same rules as a file (VIDEO_SCORE, UNCERTAIN_MARGIN, fake
# segments); a person in a fake segment that is still going on reads FAKE, and is alerted once.
LIVE_WINDOW_SECONDS = 10.0      # each person's recent P(fake) kept and judged over this many seconds
# MTCNN costs ~8x the model, so it runs beside the scoring loop (live/detection.py): a new detection
# starts on the newest frame every LIVE_DETECT_EVERY scored frames (1: as soon as the last is done),
# and in between each face's box is followed by optical flow. Measured on the sample's spliced
# takes with the demo's model, 5 let the real part of the astronaut's take read fake (followed boxes
# drift over a second); 1 kept it real and still scored 14 frames/s on a loaded 2-core CPU.
LIVE_DETECT_EVERY = 1
LIVE_UPDATE_SECONDS = 0.5       # an update (terminal line, JSON line) at least this often
# An alert needs a fake segment; on a live stream it must come within ~2 s of a swap, so the live
# segments are shorter and smoothed over less than a file's (SEGMENT_SMOOTHING_SECONDS, MIN_FAKE_SECONDS).
LIVE_SMOOTHING_SECONDS = 1.0
LIVE_MIN_FAKE_SECONDS = 1.0
LIVE_TRACK_GAP_SECONDS = 2.0    # a live person keeps their number this long without a face (the page's
                                # view scores 2-5 frames/s on a loaded 2-core CPU: a second is 2-5 frames)
LIVE_RECONNECT_SECONDS = 10.0   # a network source or camera that drops is retried this long, then the run ends
LIVE_RECORD_FPS = 10            # frame rate of --record's annotated video (scored frames repeated to keep time)
# The page's live view: the browser sends at most LIVE_WEB_FPS JPEG frames a second, at most
# LIVE_WEB_FRAME_WIDTH px wide, one at a time; frames are scored in memory, never written to disk.
LIVE_WEB_FPS = 5
LIVE_WEB_FRAME_WIDTH = 640
LIVE_WEB_MAX_FRAME_KB = 512     # a larger frame body is refused (413)
LIVE_WEB_MAX_FRAME_PIXELS = 1920 * 1080  # a JPEG declaring more is refused (413) before it is decoded
LIVE_WEB_MAX_SESSIONS = 4       # live views open at once on one server; more get 429
LIVE_WEB_IDLE_SECONDS = 30      # a live view that sends nothing this long is ended (its tab closed or asleep)
LIVE_WEB_FRAME_WAIT_S = 2       # a frame waits this long for a worker, else it is skipped (503)
# Stage 03 fits one temperature on the val split (calibration.json beside model.keras); stages
# 04 and 05 then report calibrated P(real) (raw scores stay in their CSV/JSON). False: raw only.
CALIBRATE = True

# --------------------------------------------------------- stage 05: evaluation
EVALS_DIR = Path("evals")       # stage 05 output: <EVALS_DIR>/<name>/ (metrics.json, report.md, CSVs, plots)
EVAL_CACHE_DIR = None           # faces extracted once per dataset and settings; None: OUTPUT_DIR/eval_cache
BOOTSTRAP_SAMPLES = 1000        # resamples (by video) for the 95% intervals of AUC and log loss
BOOTSTRAP_SEED = 1377           # fixes those resamples, so a rerun gives the same intervals
CALIBRATION_BINS = 15           # equal-width bins of P(real) for the expected calibration error
# Stage 05 leaves out the videos a run trained or validated on, or that share a source group with
# one (from <run folder>/split.csv): False (the default) | True: score them too, marked in per_video.csv.
EVAL_KEEP_SEEN = False
# Robustness sweep (05-evaluate_model.py --robustness; flags --robustness-types/-levels override):
# DeeperForensics-1.0's perturbations, see deepfake_detect/evaluation/perturb.py and docs/05-evaluate.md.
ROBUSTNESS_TYPES = None         # None: all seven | a list of "saturation", "contrast", "block",
                                # "noise", "blur", "jpeg", "video" (H.264 re-encode: needs imageio-ffmpeg)
ROBUSTNESS_LEVELS = (1, 2, 3, 4, 5)  # levels 1 (mild) .. 5 (severe); level 0 is the clean evaluation
ROBUSTNESS_SEED = 0             # fixes the random perturbations (noise, blocks): a rerun gives the same
