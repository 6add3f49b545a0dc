"""A stage 03 run folder, RUNS_DIR/<name>/, from start to finish: created, or resumed when an
earlier run of that name was interrupted, marked trained, then scored on the test split
(predictions.csv, curves.png, roc.png, MODEL_CARD.md), calibrated on the val split
(calibration.json) and, last, finished by metrics.json. A finished run is never overwritten
without --overwrite.
"""

import json
import math
import os
import shutil
from datetime import datetime
from pathlib import Path

from deepfake_detect.training import calibration
from deepfake_detect.training.epoch_end import best_of, read_history, write_roc_summary
from deepfake_detect.files import sha256_of, write_bytes_atomic, write_csv, write_text_atomic
from deepfake_detect.jobs.console import warn
from deepfake_detect.metrics import evaluate_scores, video_scores
from deepfake_detect.models.network import CLASS_NAMES, load_model
from deepfake_detect.training.model_card import library_versions, model_card
from deepfake_detect.plots import plot_curves, plot_roc
from deepfake_detect.datasets.split import SPLIT_CSV
from deepfake_detect.training.batches import load_split
from deepfake_detect.training.cache import remove_cache
from deepfake_detect.training.split_files import count_files, video_of

# Written once training has ended, so a run killed while being scored is scored again, not retrained.
TRAINED_MARK = ".trained.json"
# Settings that fix the network's shape: a run cannot resume with other values.
SHAPE_SETTINGS = ("BACKBONE", "INPUT_SIZE")
PREDICTION_COLUMNS = ("file", "video", "label", "label_name", "score")


class RunError(RuntimeError):
    """The run cannot start or go on; the message says why and what to do."""


# ------------------------------------------------------------------ the run folder

def default_run_name():
    """A timestamp such as 2026-11-27_093000."""
    return datetime.now().strftime("%Y-%m-%d_%H%M%S")


def choose_run_name(name, cfg, machines):
    """--name, else RUN_NAME, else a timestamp. Raises RunError for a multi-machine run without
    a name: each machine must find its own backup when restarted."""
    if machines > 1 and not (name or cfg.RUN_NAME):
        raise RunError("a multi-machine run needs --name (the same on every machine), so that a "
                       "restarted machine finds its backup")
    return name or cfg.RUN_NAME or default_run_name()


def run_state(run_dir):
    """'new', 'finished' (metrics.json written), 'unfinished' (a run folder without it) or
    'foreign' (a non-empty folder that no run of this script made)."""
    run_dir = Path(run_dir)
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return "new"
    if (run_dir / "metrics.json").is_file():
        return "finished"
    if (run_dir / "settings-03.json").is_file():
        return "unfinished"
    return "foreign"


def prepare_run_dir(cfg, name, overwrite):
    """Create or reuse RUNS_DIR/<name>; return (run_dir, resuming). Raises RunError."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise RunError(f"--name {name!r}: give a plain folder name such as 'b0-dfdc'")
    run_dir = cfg.RUNS_DIR / name
    state = run_state(run_dir)
    if state == "foreign" and not overwrite:
        raise RunError(f"{run_dir} exists and is not a training run: choose another --name")
    if state == "finished" and not overwrite:
        raise RunError(f"{run_dir} is a finished run: choose another --name, or add --overwrite to replace it")
    if state != "new" and overwrite:
        shutil.rmtree(run_dir)
        state = "new"
    resuming = state == "unfinished"
    if resuming:
        check_resumable(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, resuming


def check_resumable(cfg, run_dir):
    """Raise RunError when an interrupted run was started with another network shape."""
    started = json.loads((run_dir / "settings-03.json").read_text(encoding="utf-8"))
    for name in SHAPE_SETTINGS:
        if started.get(name) != getattr(cfg, name):
            raise RunError(f"{run_dir} was started with {name} = {started.get(name)!r}, not "
                           f"{getattr(cfg, name)!r}: resume it with the same settings, "
                           f"or use another --name (or --overwrite to start it over)")


def record_split(cfg, run_dir):
    """Copy stage 02's split.csv (every crop's split, video and source group) into the run folder,
    so stage 05 can tell which videos this run trained and validated on, even after SPLIT_DIR is
    rebuilt. A split made by hand, without split.csv, leaves nothing to copy."""
    split_csv = Path(cfg.SPLIT_DIR) / SPLIT_CSV
    if split_csv.is_file():
        write_bytes_atomic(run_dir / SPLIT_CSV, split_csv.read_bytes())


def worker_run_dir(cfg, name, overwrite=False):
    """RUNS_DIR/.<name>.<task>-<index>, created (emptied first with `overwrite`): where a machine
    other than the chief of a multi-worker run (TF_CONFIG) keeps its settings, backup and cache.
    Beside the run folder, not in it, so machines may start in any order on a shared disk."""
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    run_dir = cfg.RUNS_DIR / f".{name}.{task['type']}-{task.get('index', 0)}"
    if overwrite:
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def prepare_machine_dir(cfg, name, overwrite, chief):
    """(folder, resuming): the run folder on the chief (or the one machine); on the other machines
    of a multi-machine run, their own folder beside it (worker_run_dir). Raises RunError."""
    if chief:
        return prepare_run_dir(cfg, name, overwrite)
    return worker_run_dir(cfg, name, overwrite), False


# ------------------------------------------------------------------ trained

def is_trained(run_dir):
    """True once training has ended in this run folder (mark_trained)."""
    return (run_dir / TRAINED_MARK).is_file()


def mark_trained(cfg, run_dir):
    """Record that training has ended, with describe_training's account of it."""
    write_text_atomic(run_dir / TRAINED_MARK, json.dumps(describe_training(cfg, run_dir)) + "\n")


def describe_training(cfg, run_dir):
    """{"epochs_run", "best_epoch", "best_val_loss", "stopped"} from history.csv."""
    rows = read_history(run_dir / "history.csv")
    best_val_loss, best_epoch = best_of(rows)
    if rows and any(math.isnan(rows[-1].get(key, 0.0)) for key in ("loss", "val_loss")):
        stopped = f"loss became NaN in epoch {rows[-1]['epoch']}"
    elif len(rows) < cfg.EPOCHS:
        stopped = "early stopping"
    else:
        stopped = "all epochs"
    return {"epochs_run": len(rows), "best_epoch": best_epoch, "best_val_loss": best_val_loss, "stopped": stopped}


# ------------------------------------------------------------------ scored on the test split

def score_test_split(cfg, run_dir, files_by_split, trained, cache_dir=None):
    """Score model.keras on the test split; write predictions.csv, curves.png, roc.png,
    calibration.json, MODEL_CARD.md and, last, metrics.json; return the test metrics
    (metrics.evaluate_scores). Raises RunError when training saved no model."""
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise RunError(f"training ended ({trained['stopped']}) before any epoch improved the val loss, "
                       f"so there is no model.keras: lower LEARNING_RATE or check the crops, then --overwrite")
    model = load_model(model_path)
    test_data, test_files = load_split(files_by_split["test"], cfg, "test", cache_dir)
    scores = model.predict(test_data, verbose=0).reshape(-1)
    labels = [label for _, label in test_files]
    videos = [video_of(path.name) for path, _ in test_files]
    metrics = evaluate_scores(videos, labels, scores, cfg.THRESHOLD)
    names = [str(path.relative_to(cfg.SPLIT_DIR)) if path.is_relative_to(cfg.SPLIT_DIR) else str(path)
             for path, _ in test_files]
    write_csv(run_dir / "predictions.csv", prediction_rows(names, videos, labels, scores), PREDICTION_COLUMNS)
    plot_curves(read_history(run_dir / "history.csv"), run_dir / "curves.png")
    plot_roc(labels, scores, video_scores(videos, labels, scores), run_dir / "roc.png")

    fitted = fit_calibration(model, cfg, run_dir, files_by_split, labels, scores)
    write_report(cfg, run_dir, files_by_split, trained, metrics, fitted,
                 test_unreadable=len(files_by_split["test"]) - len(test_files))
    remove_cache(cache_dir)  # decoded crops, as large as the split: of no use to a finished run
    return metrics


def prediction_rows(files, videos, labels, scores):
    """Rows of predictions.csv: file, video, true label (number and name), score = P(pristine).

    Scores are written with 9 significant digits, enough to give back every float32 exactly
    (read them as float32), so AUC and log loss recomputed from the file equal metrics.json's.
    """
    return [{"file": path, "video": video, "label": int(label), "label_name": CLASS_NAMES[int(label)],
             "score": f"{float(score):.9g}"} for path, video, label, score in zip(files, videos, labels, scores)]


def fit_calibration(model, cfg, run_dir, files_by_split, test_labels, test_scores):
    """Fit the temperature on the val split and write calibration.json; None (with a warning)
    when the val split cannot calibrate (one class only)."""
    val_data, val_files = load_split(files_by_split["val"], cfg, "val", whole=True)  # not a machine's share
    val_scores = model.predict(val_data, verbose=0).reshape(-1)
    write_roc_summary(run_dir / "logs", [label for _, label in val_files], val_scores)
    try:
        fitted = calibration.calibrate_run(run_dir, [label for _, label in val_files], val_scores,
                                           test_labels, test_scores)
    except ValueError as error:
        warn(f"not calibrated: {error}, and the val split holds one class only; stages 04 and 05 use raw scores")
        (run_dir / calibration.CALIBRATION_FILE).unlink(missing_ok=True)
        return None
    print(f"calibration: temperature {fitted['temperature']:.4f} fitted on the val split; test log loss "
          f"{fitted['test_log_loss_raw']:.4f} raw -> {fitted['test_log_loss_calibrated']:.4f} calibrated")
    if fitted["temperature"] >= 0.99 * calibration.TEMPERATURE_RANGE[1]:
        warn("the temperature reached its upper bound: the val scores barely tell real from fake, so "
             "calibration flattens them towards 0.5")
    return fitted


def write_report(cfg, run_dir, files_by_split, trained, metrics, fitted, test_unreadable):
    """Write MODEL_CARD.md, then metrics.json: the test metrics, calibration, training, counts
    and the model's SHA-256. metrics.json comes last: its presence marks the run finished."""
    counts = count_files(files_by_split)
    sha256 = sha256_of(run_dir / "model.keras")
    card = model_card({
        "run": run_dir.name, "backbone": cfg.BACKBONE, "input_size": cfg.INPUT_SIZE, "weights": cfg.WEIGHTS,
        "epochs_run": trained["epochs_run"], "best_epoch": trained["best_epoch"], "counts": counts,
        "metrics": metrics, "threshold": cfg.THRESHOLD, "versions": library_versions(),
        "sha256": sha256, "settings_file": "settings-03.json"}) + calibration.model_card_section(fitted)
    write_text_atomic(run_dir / "MODEL_CARD.md", card)
    report = {"run": run_dir.name, "split_dir": str(cfg.SPLIT_DIR), "score": "P(pristine): 1 = real, 0 = fake",
              **metrics, "calibration": fitted, "training": trained, "counts": counts,
              "test_unreadable": test_unreadable, "model_sha256": sha256}
    write_text_atomic(run_dir / "metrics.json", json.dumps(report, indent=2) + "\n")
