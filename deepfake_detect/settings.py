"""Load config.py (or a per-dataset override of it), check it (every check in one place), show it and record it.

A config is a plain namespace of UPPERCASE settings: `cfg.FRAMES_DIR`, `cfg.INPUT_SIZE`, ...
Functions receive it as an argument and read it when they run, so an override applies everywhere.
"""

import difflib
import json
import os
import types
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
INSTALLED_CONFIG = "share/deepfake-detect/config.py"  # where `pip install .` puts config.py (pyproject.toml)


def default_config_path():
    """config.py at the top of this checkout; for a `pip install .`d package, the copy it installed."""
    checkout_config = REPO_DIR / "config.py"
    if checkout_config.is_file():
        return checkout_config
    from importlib import metadata

    try:
        installed = [f for f in metadata.distribution("deepfake-detect").files or []
                     if f.as_posix().endswith(INSTALLED_CONFIG)]
    except metadata.PackageNotFoundError:
        installed = []
    return Path(installed[0].locate()) if installed else checkout_config

# Folder settings that follow OUTPUT_DIR when left at None, with their folder names.
DERIVED_FOLDERS = {
    "FRAMES_DIR": "frames",
    "FACES_DIR": "faces",
    "PREPARED_DIR": "prepared_dataset",
    "SPLIT_DIR": "split_dataset",
    "EVAL_CACHE_DIR": "eval_cache",
}
SECRET_SETTINGS = ("FACE_APIKEY", "VISION_KEY", "WEB_TOKEN")
MIN_TOKEN_LENGTH = 16  # WEB_TOKEN: shorter ones can be guessed
CHOICES = {
    "AZURE_SERVICE": ("face", "vision"),
    "SPLIT_MODE": ("group", "file"),
    "VIDEO_SCORE": ("mean", "confident", "person_max", "segment"),
    "DATASET_COMPRESSION": ("c23", "c40", "raw", "c0"),
    "TRAIN_FAKES": ("dataset", "self_blended", "both"),
    "SELF_BLEND_RECIPE": ("paper", "strong"),
}


class ConfigError(ValueError):
    """The configuration itself is wrong; the message says which setting and how to fix it."""


def _run_config_file(path, namespace):
    """Execute a config file in `namespace` (a dict) and return the names it defines."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    namespace["__file__"] = str(path)  # so a config may build on another beside it (configs/sample_self_blended.py)
    exec(code, namespace)  # a config file is trusted Python, like the original's scripts
    return {name for name in namespace if name.isupper()}


def load_config(path=None):
    """Return the settings of config.py, overridden by the file at `path` if given.

    The override file runs with every default already defined (so it may write
    `EPOCHS = EPOCHS * 2`); defining a name that is not a setting raises ConfigError.
    """
    default_config = default_config_path()
    defaults = {"Path": Path, "os": os}
    known = _run_config_file(default_config, defaults)
    settings = dict(defaults)
    if path is not None and Path(path).resolve() != default_config.resolve():
        defined = _run_config_file(path, settings)
        unknown = sorted(defined - known)
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{path}: {name} is not a setting{hint}; see config.py for the list")
    cfg = types.SimpleNamespace(**{name: settings[name] for name in sorted(known)})
    cfg.CONFIG_FILE = Path(path) if path else default_config
    return resolve_config(cfg)


def resolve_config(cfg):
    """Fill derived folders, turn folder strings into Paths and check values. Returns cfg."""
    for name in ("VIDEOS_DIR", "OUTPUT_DIR", "RUNS_DIR", "FRAMES_DIR", "FACES_DIR",
                 "PREPARED_DIR", "SPLIT_DIR", "METADATA_FILE", "EVALS_DIR", "EVAL_CACHE_DIR", "SPLIT_LISTS_DIR"):
        value = getattr(cfg, name)
        if value is not None:
            setattr(cfg, name, Path(value))
    for name, folder in DERIVED_FOLDERS.items():
        if getattr(cfg, name) is None:
            setattr(cfg, name, cfg.OUTPUT_DIR / folder)
    if cfg.METADATA_FILE is None:
        cfg.METADATA_FILE = cfg.VIDEOS_DIR / "metadata.json"
    check_config(cfg)
    return cfg


def check_config(cfg):
    """Raise ConfigError with a sentence for the first setting that cannot work."""
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ConfigError(f"{name} = {getattr(cfg, name)!r}: choose one of {', '.join(allowed)}")
    rules = cfg.RESIZE_RULES
    if not rules or rules[-1][0] is not None:
        raise ConfigError("RESIZE_RULES must end with a (None, factor) rule for any width")
    if any(factor <= 0 for _, factor in rules):
        raise ConfigError("RESIZE_RULES factors must be positive")
    if not cfg.FRAMES_PER_SECOND or cfg.FRAMES_PER_SECOND <= 0:
        raise ConfigError("FRAMES_PER_SECOND must be a positive number")
    if len(cfg.SPLIT_RATIOS) != 3 or abs(sum(cfg.SPLIT_RATIOS) - 1) > 1e-6 or min(cfg.SPLIT_RATIOS) < 0:
        raise ConfigError("SPLIT_RATIOS must be three non-negative numbers (train, val, test) summing to 1")
    if not 0 <= cfg.FACE_MARGIN <= 2:
        raise ConfigError("FACE_MARGIN is a fraction of the face box, between 0 and 2 (0.30 = 30%)")
    if not 0 < cfg.THRESHOLD < 1:
        raise ConfigError("THRESHOLD is a P(pristine) between 0 and 1 (the original: 0.5)")
    if not 0 <= cfg.UNCERTAIN_MARGIN < 0.5:
        raise ConfigError("UNCERTAIN_MARGIN is a distance in P(pristine) from THRESHOLD, >= 0 and below 0.5 "
                          "(0.1 = uncertain between THRESHOLD - 0.1 and THRESHOLD + 0.1; 0 turns it off)")
    if cfg.LANDMARK_MODEL not in ("dlib5", "dlib68", None):
        raise ConfigError(f"LANDMARK_MODEL = {cfg.LANDMARK_MODEL!r}: choose 'dlib5', 'dlib68' or None (MTCNN's keypoints)")
    if isinstance(cfg.SELF_BLENDED_SHARE, bool) or not isinstance(cfg.SELF_BLENDED_SHARE, (int, float)) \
            or not 0 <= cfg.SELF_BLENDED_SHARE <= 1:
        raise ConfigError("SELF_BLENDED_SHARE is the share of training fakes that are self-blended, from 0 to 1")
    check_track_settings(cfg)
    for name in ("WORKERS", "MTCNN_WORKERS"):
        value = getattr(cfg, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be None (one per CPU core) or a whole number >= 1")
    check_ray_settings(cfg)
    check_web_settings(cfg)
    check_live_settings(cfg)


def check_web_settings(cfg):
    """Raise ConfigError for decode budgets and web page settings that cannot work."""
    for name in ("MAX_IMAGE_PIXELS", "MAX_VIDEO_PIXELS", "WEB_MAX_VIDEO_SECONDS"):
        value = getattr(cfg, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ConfigError(f"{name} must be None (no limit) or a number > 0")
    for name in ("WEB_WORKERS", "WEB_WORKER_MAX_MB", "WEB_JOB_TIMEOUT_S"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 \
                or (name == "WEB_WORKERS" and not isinstance(value, int)):
            raise ConfigError(f"{name} must be a number > 0" + (" (a whole number)" if name == "WEB_WORKERS" else ""))
    if not isinstance(cfg.WEB_TOKEN, str):
        raise ConfigError("WEB_TOKEN must be a string (read it from the environment: os.environ.get(\"WEB_TOKEN\", \"\"))")
    if cfg.WEB_TOKEN and len(cfg.WEB_TOKEN) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"WEB_TOKEN is shorter than {MIN_TOKEN_LENGTH} characters: make a strong one with "
                          "python -c \"import secrets; print(secrets.token_urlsafe(32))\"")


def check_live_settings(cfg):
    """Raise ConfigError for live-scoring settings (LIVE_*) that cannot work: all are numbers > 0."""
    for name in sorted(n for n in vars(cfg) if n.startswith("LIVE_")):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{name} must be a number > 0 (see config.py)")
    if not isinstance(cfg.LIVE_DETECT_EVERY, int):
        raise ConfigError("LIVE_DETECT_EVERY is a whole number of scored frames (1: detect on every frame)")


def check_track_settings(cfg):
    """Raise ConfigError for person-tracking and fake-segment settings that cannot work."""
    if not isinstance(cfg.TRACK_MAX_GAP, int) or cfg.TRACK_MAX_GAP < 0:
        raise ConfigError("TRACK_MAX_GAP is a whole number of sampled frames >= 0 (2: a track survives "
                          "two frames without its face)")
    if not 0 < cfg.TRACK_MIN_IOU <= 1:
        raise ConfigError("TRACK_MIN_IOU is a box overlap (IoU) above 0 and at most 1 (0.3)")
    if cfg.TRACK_MAX_DISTANCE < 0:
        raise ConfigError("TRACK_MAX_DISTANCE is a distance in face widths >= 0 (1.0)")
    if cfg.SEGMENT_SMOOTHING_SECONDS < 0 or cfg.MIN_FAKE_SECONDS < 0:
        raise ConfigError("SEGMENT_SMOOTHING_SECONDS and MIN_FAKE_SECONDS are seconds >= 0")


def check_ray_settings(cfg):
    """Raise ConfigError for Ray settings that cannot work."""
    if not isinstance(cfg.RAY_MAX_RETRIES, int) or cfg.RAY_MAX_RETRIES < 0:
        raise ConfigError("RAY_MAX_RETRIES must be a whole number >= 0")
    if not cfg.RAY_CPUS_PER_ACTOR > 0 or cfg.RAY_GPUS_PER_ACTOR < 0:
        raise ConfigError("RAY_CPUS_PER_ACTOR must be > 0 and RAY_GPUS_PER_ACTOR >= 0")


def check_training_settings(cfg):
    """Raise ConfigError for stage 03 settings that cannot work."""
    from deepfake_detect.models.network import BACKBONES
    from deepfake_detect.training.cache import CACHE_MODES
    from deepfake_detect.training.pipeline import check_augmentation

    if cfg.BACKBONE not in BACKBONES:
        raise ConfigError(f"BACKBONE = {cfg.BACKBONE!r}: choose one of {', '.join(BACKBONES)}")
    for name in ("INPUT_SIZE", "BATCH_SIZE", "EPOCHS"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1")
    if cfg.TRAINING_SEED is not None and not isinstance(cfg.TRAINING_SEED, int):
        raise ConfigError("TRAINING_SEED must be None (unseeded) or a whole number")
    if cfg.BATCHNORM_MOMENTUM is not None and not 0 <= cfg.BATCHNORM_MOMENTUM < 1:
        raise ConfigError("BATCHNORM_MOMENTUM must be None (the backbone's own) or a number in [0, 1)")
    if cfg.CACHE not in CACHE_MODES:
        raise ConfigError(f"CACHE = {cfg.CACHE!r}: choose one of {', '.join(CACHE_MODES)}")
    try:
        check_augmentation(cfg.AUGMENTATION)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_evaluation_settings(cfg):
    """Raise ConfigError for stage 05 settings that cannot work."""
    for name in ("BOOTSTRAP_SAMPLES", "CALIBRATION_BINS"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1")
    if not isinstance(cfg.CALIBRATE, bool):
        raise ConfigError("CALIBRATE must be True (apply each run's temperature) or False (raw scores)")
    if not isinstance(cfg.EVAL_KEEP_SEEN, bool):
        raise ConfigError("EVAL_KEEP_SEEN must be False (leave out the videos a run trained or validated "
                          "on) or True (score them too, marked)")
    if isinstance(cfg.ROBUSTNESS_SEED, bool) or not isinstance(cfg.ROBUSTNESS_SEED, int):
        raise ConfigError("ROBUSTNESS_SEED must be a whole number")
    check_robustness_settings(cfg)


def check_robustness_settings(cfg, types=None, levels=None):
    """Raise ConfigError for a robustness sweep (the --robustness-* flags, else the ROBUSTNESS_*
    settings) naming an unknown perturbation type or level (evaluation.perturb.check_sweep)."""
    from deepfake_detect.evaluation.perturb import check_sweep

    try:
        check_sweep(cfg.ROBUSTNESS_TYPES if types is None else types,
                    cfg.ROBUSTNESS_LEVELS if levels is None else levels)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"robustness sweep: {error} (ROBUSTNESS_TYPES, ROBUSTNESS_LEVELS or the "
                          f"--robustness-* flags)") from None


def check_azure_settings(cfg):
    """Raise ConfigError for stage 01b's Azure settings that cannot work (AZURE_SERVICE itself is
    one of CHOICES; the endpoint and key are checked by faces.azure.detector_from_config)."""
    from deepfake_detect.faces.azure import DETECTION_MODELS

    def is_number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if cfg.AZURE_SERVICE == "face" and cfg.AZURE_DETECTION_MODEL not in DETECTION_MODELS:
        raise ConfigError(f"AZURE_DETECTION_MODEL = {cfg.AZURE_DETECTION_MODEL!r}: "
                          f"choose one of {', '.join(DETECTION_MODELS)}")
    if not is_number(cfg.AZURE_TIMEOUT_SECONDS) or cfg.AZURE_TIMEOUT_SECONDS <= 0:
        raise ConfigError("AZURE_TIMEOUT_SECONDS must be a positive number of seconds")
    if not isinstance(cfg.AZURE_MAX_RETRIES, int) or cfg.AZURE_MAX_RETRIES < 0:
        raise ConfigError("AZURE_MAX_RETRIES must be a whole number >= 0")
    if cfg.AZURE_CALLS_PER_MINUTE is not None and (not is_number(cfg.AZURE_CALLS_PER_MINUTE)
                                                   or cfg.AZURE_CALLS_PER_MINUTE <= 0):
        raise ConfigError("AZURE_CALLS_PER_MINUTE must be a positive number, or None for no limit")
    if not is_number(cfg.AZURE_RETRY_BASE_SECONDS) or cfg.AZURE_RETRY_BASE_SECONDS < 0:
        raise ConfigError("AZURE_RETRY_BASE_SECONDS must be a number of seconds >= 0")


def check_ray_installed(cfg):
    """Raise ConfigError when RAY_ADDRESS asks for Ray but it is not installed (checked without importing it)."""
    import importlib.util

    if cfg.RAY_ADDRESS and importlib.util.find_spec("ray") is None:
        raise ConfigError(f"RAY_ADDRESS = {cfg.RAY_ADDRESS!r} (or --ray) needs Ray: "
                          "pip install -r requirements-ray.txt, or unset RAY_ADDRESS to use local processes")


def worker_count(requested):
    """Number of worker processes: `requested`, or one per CPU core when None."""
    return requested or os.cpu_count() or 1


def public_settings(cfg):
    """The settings as JSON-ready values, with secrets replaced by whether they are set."""
    shown = {}
    for name, value in vars(cfg).items():
        if name in SECRET_SETTINGS:
            value = "(set)" if value else "(not set)"
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        shown[name] = value
    return shown


def describe_settings(cfg, names):
    """One line listing the given settings, for the start of a stage's output."""
    shown = public_settings(cfg)
    return "settings: " + ", ".join(f"{name}={shown[name]}" for name in names)


def save_settings(cfg, folder, stage):
    """Write the settings a stage used to `<folder>/settings-<stage>.json` (secrets left out)."""
    from deepfake_detect.files import write_text_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(public_settings(cfg), indent=2, default=str)
    write_text_atomic(folder / f"settings-{stage}.json", text + "\n")


def describe_engine(cfg, workers):
    """'workers=N' for the local pool, or 'engine=Ray at ADDRESS'."""
    return f"engine=Ray at {cfg.RAY_ADDRESS}" if cfg.RAY_ADDRESS else f"workers={workers}"
