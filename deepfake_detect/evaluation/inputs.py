"""Stage 05's inputs, checked before any work starts: its settings, the robustness sweep's plan,
the runs to evaluate (the datasets: extract.load_datasets; what each run trained on:
scores.read_seen_videos).

Each raises the error stage 05 turns into exit status 2: settings.ConfigError for a setting or
flag that cannot work, inference.scoring.ModelError for a run without a model.
"""

from pathlib import Path

from deepfake_detect import settings
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

