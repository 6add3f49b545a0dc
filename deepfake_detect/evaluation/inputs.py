"""Stage 05's inputs, checked before any work starts: its settings, the robustness sweep's plan,
the runs to evaluate (the datasets: extract.load_datasets; what each run trained on:
scores.read_seen_videos).

Each raises the error stage 05 turns into exit status 2: settings.ConfigError for a setting or
flag that cannot work, models.predictors.ModelError for a run without a model.
"""

from pathlib import Path

from deepfake_detect import settings
from deepfake_detect.inference.scoring import MODEL_FILE, find_run_model


def plan_robustness(cfg, types=None, levels=None):
    """(the sweep's perturbations that can run here, {type: why not}) from the flags, else the
    ROBUSTNESS_* settings. Raises ConfigError for an unknown type or level."""
    from deepfake_detect.evaluation.robustness import plan_sweep, runnable_plan

    settings.check_robustness_settings(cfg, types, levels)
    return runnable_plan(plan_sweep(cfg.ROBUSTNESS_TYPES if types is None else types,
                                    cfg.ROBUSTNESS_LEVELS if levels is None else levels, cfg.ROBUSTNESS_SEED))


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


def describe_datasets(datasets):
    """'ffpp (FaceForensics++ (c23), test split), sample (DFDC (metadata.json), all videos)' for the settings line."""
    return ", ".join(f"{d.name} ({d.layout}, {f'{d.split} split' if d.split else 'all videos'})" for d in datasets)
