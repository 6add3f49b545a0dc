"""Stage 03: train the EfficientNet detector on the split face crops and score it on the test split.

    SPLIT_DIR/{train,val,test}/{real,fake}/*.png  ->  RUNS_DIR/<run name>/

    python 03-train_cnn.py [--config configs/my_dataset.py] [--name NAME] [--overwrite] [--cpu-devices N]
    python 03-train_cnn.py --export RUN [--overwrite]   # RUNS_DIR/RUN/export/: SavedModel + TFLite (export.py)

The network (config BACKBONE, INPUT_SIZE, WEIGHTS) outputs P(pristine): labels are fake = 0,
real = 1, as the original's flow_from_directory gave them. Crops are decoded and resized once
(exactly as detection's prepare_faces does) and kept in memory, or on disk beside the run when
they would not fit (CACHE, see docs/scale.md); training batches get the
original's augmentation as one affine warp per image. Callbacks: early stopping on val loss,
best-model checkpoint, CSV log, stop on NaN, and a per-epoch backup: a run killed mid-epoch and
started again with the same name resumes from its last finished epoch. On GPUs: memory growth,
mixed precision (MIXED_PRECISION) and MirroredStrategy over all of them; several machines named
in TF_CONFIG: MultiWorkerMirroredStrategy. --cpu-devices 2 mirrors over two logical CPU devices.

The run folder gets model.keras (best val loss), history.csv, predictions.csv, metrics.json,
curves.png, roc.png, settings-03.json, MODEL_CARD.md and calibration.json (one temperature fitted
on the val split, which stages 04 and 05 apply). A finished run is never overwritten
without --overwrite. Ends with a summary such as:

    stage 03 finished in 1,804.2 s: run 2026-11-27_093000, 14 epochs (best 9, early stopping), test metrics ...
    | level | count | accuracy | ROC AUC | log loss | fake called FAKE | fake called REAL | real called FAKE | ...
    | crops | 2,210 | 0.9131 | 0.9688 | 0.2402 | 1,030 | 75 | 117 | 988 |
    | videos | 80 | 0.9500 | 0.9900 | 0.1811 | 39 | 1 | 3 | 37 |
      output: runs/2026-11-27_093000  (model.keras, MODEL_CARD.md, metrics.json, ...)
"""

import json
import math
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from deepfake_detect import calibration, settings, training
from deepfake_detect.files import write_csv, write_text_atomic
from deepfake_detect.model import BACKBONES, WeightsError, build_model, load_model
from deepfake_detect.jobs.console import Timer, warn
from deepfake_detect.files import sha256_of
from deepfake_detect.metrics import evaluate_scores, video_scores
from deepfake_detect.model_card import library_versions, metrics_table, model_card
from deepfake_detect.plots import plot_curves, plot_roc
from deepfake_detect.training import PREDICTION_COLUMNS, prediction_rows

# Written once training has ended, so a run killed while being scored is scored again, not retrained.
TRAINED_MARK = ".trained.json"
# Settings that fix the network's shape: a run cannot resume with other values.
SHAPE_SETTINGS = ("BACKBONE", "INPUT_SIZE")


class RunError(RuntimeError):
    """The run cannot start or go on; the message says why and what to do."""


def default_run_name():
    """A timestamp such as 2026-11-27_093000."""
    return datetime.now().strftime("%Y-%m-%d_%H%M%S")


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


def check_training_settings(cfg):
    """Raise ConfigError for stage 03 settings that cannot work."""
    if cfg.BACKBONE not in BACKBONES:
        raise settings.ConfigError(f"BACKBONE = {cfg.BACKBONE!r}: choose one of {', '.join(BACKBONES)}")
    for name in ("INPUT_SIZE", "BATCH_SIZE", "EPOCHS"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise settings.ConfigError(f"{name} must be a whole number >= 1")
    if cfg.TRAINING_SEED is not None and not isinstance(cfg.TRAINING_SEED, int):
        raise settings.ConfigError("TRAINING_SEED must be None (unseeded) or a whole number")
    if cfg.BATCHNORM_MOMENTUM is not None and not 0 <= cfg.BATCHNORM_MOMENTUM < 1:
        raise settings.ConfigError("BATCHNORM_MOMENTUM must be None (the backbone's own) or a number in [0, 1)")
    if cfg.CACHE not in training.CACHE_MODES:
        raise settings.ConfigError(f"CACHE = {cfg.CACHE!r}: choose one of {', '.join(training.CACHE_MODES)}")
    try:
        training.check_augmentation(cfg.AUGMENTATION)
    except ValueError as error:
        raise settings.ConfigError(str(error)) from None


def load_split(files, cfg, split, cache_dir=None):
    """Decode one split into its cache, in memory or (with `cache_dir`) in a tf.data file cache
    there; return (batched dataset, readable files). In a multi-worker run (TF_CONFIG) the train
    and val splits are first cut to this machine's share, so it decodes only those files."""
    if split != "test":
        total, files = len(files), training.worker_share(files, os.environ.get("TF_CONFIG"))
        position, machines = training.worker_position(os.environ.get("TF_CONFIG"))
        if machines > 1:
            print(f"machine {position + 1} of {machines}: decoding {len(files):,} of the {total:,} {split} crops")
    cache_mb = len(files) * cfg.INPUT_SIZE ** 2 * 3 / 1e6
    shuffle_buffer = None
    if cache_dir is None:
        decoded = training.decode_dataset(files, cfg.INPUT_SIZE)
        unreadable = training.fill_cache(decoded, len(files), f"decoding {split} ({cache_mb:,.0f} MB in memory)")
    else:
        if split == "train":  # written shuffled once, then shuffled within DISK_SHUFFLE_BUFFER each epoch
            files = [files[i] for i in np.random.default_rng(cfg.SPLIT_SEED).permutation(len(files))]
            shuffle_buffer = training.DISK_SHUFFLE_BUFFER
        finished, partial = training.disk_cache(cache_dir, split, files, cfg.INPUT_SIZE)
        decoded = training.decode_dataset(files, cfg.INPUT_SIZE, finished or partial)
        desc = f"{'reading' if finished else 'decoding'} {split} ({cache_mb:,.0f} MB cached in {cache_dir})"
        unreadable = training.fill_cache(decoded, len(files), desc)
        if partial:  # the pass above completed the cache: publish it, and read it from now on
            decoded = training.decode_dataset(files, cfg.INPUT_SIZE, training.publish_disk_cache(partial))
    unreadable = set(unreadable)
    for index in sorted(unreadable):
        warn(f"{files[index][0]}: not a readable image, left out")
    readable = [item for index, item in enumerate(files) if index not in unreadable]
    if not readable:
        raise training.DatasetError(f"no crop of the {split} split could be read")
    present = training.classes_present(label for _, label in readable)
    if len(present) < 2:
        if split == "train":
            raise training.DatasetError(f"the readable crops of the {split} split hold one class only")
        warn(f"the {split} split holds {present[0]} crops only: its ROC AUC is undefined (reported as null)")
    dataset = training.batch_dataset(decoded, len(readable), cfg.BATCH_SIZE, training=split == "train",
                                     augmentation=cfg.AUGMENTATION if cfg.AUGMENT else None,
                                     shuffle_buffer=shuffle_buffer)
    return dataset, readable


def choose_cache_dir(cfg, files_by_split, run_dir):
    """Where load_split keeps the decoded crops, per CACHE: None (memory) or run_dir/cache (disk).
    "auto" weighs train + val, which are held at once, against the memory available; prints why."""
    machines = training.cluster_size(os.environ.get("TF_CONFIG"))  # each decodes its share only
    in_use = (len(files_by_split["train"]) + len(files_by_split["val"])) // machines
    where, why = training.choose_cache(cfg.CACHE, in_use, cfg.INPUT_SIZE, training.available_memory_bytes())
    print(why)
    return run_dir / "cache" if where == "disk" else None


def build_compiled_model(cfg, strategy):
    """The detector with its optimizer, loss and metrics, its variables placed by `strategy`."""
    import keras

    with strategy.scope():
        model = build_model(cfg.BACKBONE, cfg.INPUT_SIZE, cfg.WEIGHTS, cfg.BATCHNORM_MOMENTUM)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.LEARNING_RATE),
                      loss="binary_crossentropy",
                      metrics=["accuracy", keras.metrics.AUC(name="auc")])
    return model


def train_model(model, cfg, run_dir, train_data, val_data):
    """Fit the model, resuming from RUN_DIR/backup if an earlier run was interrupted; the
    callbacks write history.csv, model.keras and the backup."""
    # shuffle=False: the dataset reshuffles itself every epoch; Keras cannot shuffle a tf.data.
    model.fit(train_data, validation_data=val_data, epochs=cfg.EPOCHS, shuffle=False,
              callbacks=training.make_callbacks(run_dir, cfg.EARLY_STOPPING_PATIENCE),
              verbose=1 if sys.stdout.isatty() else 2)


def describe_training(cfg, run_dir):
    """{"epochs_run", "best_epoch", "best_val_loss", "stopped"} from history.csv."""
    rows = training.read_history(run_dir / "history.csv")
    best_val_loss, best_epoch = training.best_of(rows)
    if rows and any(math.isnan(rows[-1].get(key, 0.0)) for key in ("loss", "val_loss")):
        stopped = f"loss became NaN in epoch {rows[-1]['epoch']}"
    elif len(rows) < cfg.EPOCHS:
        stopped = "early stopping"
    else:
        stopped = "all epochs"
    return {"epochs_run": len(rows), "best_epoch": best_epoch, "best_val_loss": best_val_loss, "stopped": stopped}


def evaluate_run(cfg, run_dir, files_by_split, trained, cache_dir=None):
    """Score model.keras on the test split and write predictions, metrics, plots and the card."""
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise RunError(f"training ended ({trained['stopped']}) before any epoch improved the val loss, "
                       f"so there is no model.keras: lower LEARNING_RATE or check the crops, then --overwrite")
    model = load_model(model_path)
    test_data, test_files = load_split(files_by_split["test"], cfg, "test", cache_dir)
    scores = model.predict(test_data, verbose=0).reshape(-1)
    labels = [label for _, label in test_files]
    videos = [training.video_of(path.name) for path, _ in test_files]
    metrics = evaluate_scores(videos, labels, scores, cfg.THRESHOLD)
    names = [str(path.relative_to(cfg.SPLIT_DIR)) if path.is_relative_to(cfg.SPLIT_DIR) else str(path)
             for path, _ in test_files]
    write_csv(run_dir / "predictions.csv", prediction_rows(names, videos, labels, scores),
              PREDICTION_COLUMNS)
    plot_curves(training.read_history(run_dir / "history.csv"), run_dir / "curves.png")
    plot_roc(labels, scores, video_scores(videos, labels, scores), run_dir / "roc.png")

    fitted = fit_calibration(model, cfg, run_dir, files_by_split, labels, scores)

    counts = training.count_files(files_by_split)
    sha256 = sha256_of(model_path)
    card = model_card({
        "run": run_dir.name, "backbone": cfg.BACKBONE, "input_size": cfg.INPUT_SIZE, "weights": cfg.WEIGHTS,
        "epochs_run": trained["epochs_run"], "best_epoch": trained["best_epoch"], "counts": counts,
        "metrics": metrics, "threshold": cfg.THRESHOLD, "versions": library_versions(),
        "sha256": sha256, "settings_file": "settings-03.json"}) + calibration.model_card_section(fitted)
    write_text_atomic(run_dir / "MODEL_CARD.md", card)
    report = {"run": run_dir.name, "split_dir": str(cfg.SPLIT_DIR), "score": "P(pristine): 1 = real, 0 = fake",
              **metrics, "calibration": fitted, "training": trained, "counts": counts,
              "test_unreadable": len(files_by_split["test"]) - len(test_files), "model_sha256": sha256}
    # Last: its presence marks the run finished.
    write_text_atomic(run_dir / "metrics.json", json.dumps(report, indent=2) + "\n")
    if cache_dir is not None:  # decoded crops, as large as the split: of no use to a finished run
        shutil.rmtree(cache_dir, ignore_errors=True)
    return metrics


def fit_calibration(model, cfg, run_dir, files_by_split, test_labels, test_scores):
    """Fit the temperature on the val split and write calibration.json; None (with a warning)
    when the val split cannot calibrate (one class only)."""
    val_data, val_files = load_split(files_by_split["val"], cfg, "val")
    val_scores = model.predict(val_data, verbose=0).reshape(-1)
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


def parse_args(argv=None):
    parser = settings.new_parser(__doc__)
    parser.add_argument("--name", default=None,
                        help="run folder under RUNS_DIR (default: config RUN_NAME, else a timestamp); "
                             "an interrupted run with this name resumes")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing run folder of this name instead of refusing")
    parser.add_argument("--export", default=None, metavar="RUN",
                        help="instead of training, export RUN's model.keras (a run name in RUNS_DIR or a run "
                             "folder) as a SavedModel and float32/int8 TFLite models in RUN/export/")
    parser.add_argument("--cpu-devices", type=int, default=0, metavar="N",
                        help="split the CPU into N logical devices and mirror training across them "
                             "(tests the multi-GPU path on a machine without GPUs)")
    return parser.parse_args(argv)


def export_run(cfg, run, overwrite):
    """--export RUN: write RUN/export/ (export.py) and print what was written; return the exit status."""
    from deepfake_detect import export

    run_dir = Path(run) if (Path(run) / "model.keras").is_file() else cfg.RUNS_DIR / run
    model_path, out_dir = run_dir / "model.keras", run_dir / export.EXPORT_DIR
    if not model_path.is_file():
        print(f"error: --export {run}: no model.keras in {run_dir}", file=sys.stderr)
        return 2
    if out_dir.exists():
        if not overwrite:
            print(f"error: {out_dir} exists: add --overwrite to replace it", file=sys.stderr)
            return 2
        shutil.rmtree(out_dir)
    timer = Timer()
    print(f"exporting {model_path} to {out_dir}")
    written = export.export_model(model_path, out_dir, cfg.THRESHOLD)
    print(f"stage 03 export finished in {timer.seconds:,.1f} s:")
    for name, path in written.items():
        size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
        print(f"  {name:<22} {size / 1e6:8.2f} MB   + {export.sidecar_path(path).name}")
    print(f"  score with: python 04-detect_deepfakes.py INPUTS --run {written[export.TFLITE_FLOAT32]}")
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.export:
        try:
            cfg = settings.load_config(args.config)
        except settings.ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return export_run(cfg, args.export, args.overwrite)
    try:
        cfg = settings.load_config(args.config)
        check_training_settings(cfg)
        name = args.name or cfg.RUN_NAME or default_run_name()
        files_by_split = training.list_splits(cfg.SPLIT_DIR)
        chief = training.is_chief(os.environ.get("TF_CONFIG"))
        run_dir, resuming = prepare_run_dir(cfg, name, args.overwrite) if chief else (None, False)
    except (settings.ConfigError, training.DatasetError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not chief:
        # Other machines of a multi-worker run keep their copies of checkpoints apart from the chief's.
        run_dir = cfg.RUNS_DIR / name / f".worker-{json.loads(os.environ['TF_CONFIG'])['task']['index']}"
        run_dir.mkdir(parents=True, exist_ok=True)

    timer = Timer()
    strategy, devices = training.choose_strategy(cfg.MIXED_PRECISION, args.cpu_devices)
    if cfg.TRAINING_SEED is not None:
        import keras

        keras.utils.set_random_seed(cfg.TRAINING_SEED)
    print(settings.describe_settings(cfg, ["SPLIT_DIR", "BACKBONE", "WEIGHTS", "INPUT_SIZE", "BATCH_SIZE", "EPOCHS",
                                           "LEARNING_RATE", "BATCHNORM_MOMENTUM", "TRAINING_SEED", "AUGMENT"])
          + f", devices: {devices}")
    counts = training.count_files(files_by_split)
    for split, by_class in counts.items():
        print(f"{split}: " + ", ".join(f"{c['crops']:,} {class_name} crops from {c['videos']:,} videos"
                                       for class_name, c in by_class.items()))
    print(f"{'resuming the interrupted run' if resuming else 'run'}: {run_dir}")
    settings.save_settings(cfg, run_dir, "03")
    cache_dir = choose_cache_dir(cfg, files_by_split, run_dir)

    try:
        if not (run_dir / TRAINED_MARK).is_file():
            model = build_compiled_model(cfg, strategy)  # first: a weights problem shows at once
            train_data, _ = load_split(files_by_split["train"], cfg, "train", cache_dir)
            val_data, _ = load_split(files_by_split["val"], cfg, "val", cache_dir)
            train_model(model, cfg, run_dir, train_data, val_data)
            write_text_atomic(run_dir / TRAINED_MARK, json.dumps(describe_training(cfg, run_dir)) + "\n")
        if not chief:
            if cache_dir is not None:  # this machine's share of decoded crops: the chief evaluates alone
                shutil.rmtree(cache_dir, ignore_errors=True)
            return 0
        trained = describe_training(cfg, run_dir)
        metrics = evaluate_run(cfg, run_dir, files_by_split, trained, cache_dir)
    except (training.DatasetError, RunError, WeightsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command (--name {name}) to resume from the last finished epoch",
              file=sys.stderr)
        return 130

    print(f"\nstage 03 finished in {timer.seconds:,.1f} s: run {name}, {trained['epochs_run']} epochs "
          f"(best {trained['best_epoch']}, {trained['stopped']}), test metrics at threshold {cfg.THRESHOLD}:")
    print(metrics_table(metrics))
    print(f"  output: {run_dir}  (model.keras, MODEL_CARD.md, metrics.json, predictions.csv, curves.png, roc.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
