"""Stage 05's inputs, checked before any work starts: its settings, the robustness sweep's plan,
the runs to evaluate and the videos each run trained and validated on (the datasets:
extract.load_datasets).

Each raises the error stage 05 turns into exit status 2: settings.ConfigError for a setting or
flag that cannot work, inference.scoring.ModelError for a run without a model.
"""

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from deepfake_detect import settings
from deepfake_detect.dataset import source_group
from deepfake_detect.inference.scoring import MODEL_FILE, find_run_model


def check_evaluation_settings(cfg):
    """Raise ConfigError for stage 05 settings that cannot work."""
    for name in ("BOOTSTRAP_SAMPLES", "CALIBRATION_BINS"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise settings.ConfigError(f"{name} must be a whole number >= 1")
    if not isinstance(cfg.CALIBRATE, bool):
        raise settings.ConfigError("CALIBRATE must be True (apply each run's temperature) or False (raw scores)")
    if not isinstance(cfg.EVAL_KEEP_SEEN, bool):
        raise settings.ConfigError("EVAL_KEEP_SEEN must be False (leave out the videos a run trained or validated "
                                   "on) or True (score them too, marked)")
    if isinstance(cfg.ROBUSTNESS_SEED, bool) or not isinstance(cfg.ROBUSTNESS_SEED, int):
        raise settings.ConfigError("ROBUSTNESS_SEED must be a whole number")
    plan_robustness(cfg)


def plan_robustness(cfg, types=None, levels=None):
    """(the sweep's perturbations that can run here, {type: why not}) from the flags, else the
    ROBUSTNESS_* settings. Raises ConfigError for an unknown type or level."""
    from deepfake_detect.evaluation.robustness import plan_sweep, runnable_plan

    try:
        plan = plan_sweep(cfg.ROBUSTNESS_TYPES if types is None else types,
                          cfg.ROBUSTNESS_LEVELS if levels is None else levels, cfg.ROBUSTNESS_SEED)
    except (TypeError, ValueError) as error:
        raise settings.ConfigError(f"robustness sweep: {error} (ROBUSTNESS_TYPES, ROBUSTNESS_LEVELS or the "
                                   f"--robustness-* flags)") from None
    return runnable_plan(plan)


def resolve_runs(cfg, runs):
    """{run label: model path} for each --run (default: the newest run). Raises ModelError."""
    models = {}
    for run in runs or [None]:
        path = find_run_model(cfg.RUNS_DIR, run)
        label, number = run_label(path), 2
        while label in models and models[label] != path:
            label, number = f"{run_label(path)}-{number}", number + 1
        models[label] = path
    return models


def run_label(model_path):
    """A run's name for tables: its folder's name for .../<run>/model.keras, else the file's stem."""
    model_path = Path(model_path)
    return model_path.parent.name if model_path.name == MODEL_FILE else model_path.stem


# ------------------------------------------------------------------ what a run has seen

RUN_SPLIT_FILE = "split.csv"     # stage 02's SPLIT_DIR/split.csv, copied into the run folder by stage 03
SEEN_SPLITS = ("train", "val")   # a model is fitted on train and chosen on val: both are seen


@dataclass(frozen=True)
class SeenVideos:
    """The videos and source groups of a run's train and val splits, and the file they come from."""

    source: Path
    videos: frozenset
    groups: frozenset


def find_run_folder(model_path):
    """The run folder a model comes from: the parent of <run>/model.keras; for an export, the
    parent of the model its sidecar JSON names (export.py's "source_model"); else None."""
    model_path = Path(model_path)
    if model_path.name == MODEL_FILE:
        return model_path.parent
    sidecar = model_path.with_name(model_path.stem + ".json")
    try:
        source = json.loads(sidecar.read_text(encoding="utf-8")).get("source_model")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(source).parent if source else None


def read_seen_videos(model_path):
    """(SeenVideos, None) from the run's split.csv, or (None, why there is no overlap check)."""
    folder = find_run_folder(model_path)
    if folder is None:
        return None, f"{model_path} names no run folder (not a run's {MODEL_FILE}, no sidecar with its source model)"
    path = folder / RUN_SPLIT_FILE
    if not path.is_file():
        return None, f"{path} is missing (stage 03 copies stage 02's split.csv there)"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("split") in SEEN_SPLITS]
    return SeenVideos(path, frozenset(r["video"] for r in rows), frozenset(r["group"] for r in rows)), None


def flag_seen(videos, seen):
    """The names of the `videos` (dataset.Video) the run saw: in its train/val split by name, or
    sharing a source group with a video that was (split.py's source_group on both sides)."""
    if seen is None:
        return set()
    return {v.name for v in videos if v.name in seen.videos or source_group(v) in seen.groups}
