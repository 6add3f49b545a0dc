"""Stage 03: train the EfficientNet detector on the split face crops and score it on the test split.

    SPLIT_DIR/{train,val,test}/{real,fake}/*.png  ->  RUNS_DIR/<run name>/

    python 03-train_cnn.py [--config configs/my_dataset.py] [--name NAME] [--overwrite] [--cpu-devices N]
    python 03-train_cnn.py --export RUN [--overwrite]   # RUNS_DIR/RUN/export/: SavedModel + TFLite (training/export.py)

The network (config BACKBONE, INPUT_SIZE, WEIGHTS) outputs P(pristine): labels are fake = 0,
real = 1. Crops are decoded and resized once (as detection's prepare_faces does) and cached in
memory or on disk (CACHE, docs/scale.md); training batches get the original's augmentation.
Stage 03's own distributed step trains on one CPU, mirrored GPUs (MIXED_PRECISION) or several
machines named in TF_CONFIG (MultiWorkerMirroredStrategy, the same command on each, with --name;
docs/03-train.md). Each epoch ends with history.csv, the best-val-loss checkpoint, early stopping,
a NaN stop, TensorBoard logs and a backup: a run killed mid-epoch resumes from its last finished
epoch, and a cluster that lost a machine resumes once it is started again.

The run folder gets model.keras (best val loss), history.csv, logs/ (TensorBoard), predictions.csv,
metrics.json, curves.png, roc.png, settings-03.json, MODEL_CARD.md and calibration.json (one temperature fitted
on the val split, which stages 04 and 05 apply). A finished run is never overwritten
without --overwrite. Ends with a summary such as:

    stage 03 finished in 1,804.2 s: run 2026-11-27_093000, 14 epochs (best 9, early stopping), test metrics ...
    | level | count | accuracy | ROC AUC | log loss | fake called FAKE | fake called REAL | real called FAKE | ...
    | crops | 2,210 | 0.9131 | 0.9688 | 0.2402 | 1,030 | 75 | 117 | 988 |
    | videos | 80 | 0.9500 | 0.9900 | 0.1811 | 39 | 1 | 3 | 37 |
      output: runs/2026-11-27_093000  (model.keras, MODEL_CARD.md, metrics.json, ...)
"""

import os
import sys

from deepfake_detect import arguments, settings
from deepfake_detect.jobs.console import Timer
from deepfake_detect.models.network import WeightsError
from deepfake_detect.training import distribute, export, runs
from deepfake_detect.training.cache import choose_cache_dir, remove_cache
from deepfake_detect.training.loop import set_training_seed, train_model
from deepfake_detect.training.model_card import metrics_table
from deepfake_detect.training.split_files import SplitFolderError, count_files, list_splits

# The settings printed first, as this run resolved them.
SHOWN_SETTINGS = ["SPLIT_DIR", "BACKBONE", "WEIGHTS", "INPUT_SIZE", "BATCH_SIZE", "EPOCHS",
                  "LEARNING_RATE", "BATCHNORM_MOMENTUM", "TRAINING_SEED", "AUGMENT", "TRAIN_FAKES"]


def parse_args(argv=None):
    parser = arguments.new_parser(__doc__)
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


def export_main(args):
    """--export RUN: write RUN/export/ and say what was written; return the exit status."""
    try:
        cfg = settings.load_config(args.config)
        model_path, out_dir = export.prepare_export_dir(cfg.RUNS_DIR, args.export, args.overwrite)
    except (settings.ConfigError, export.ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    export.export_run(model_path, out_dir, cfg.THRESHOLD)
    return 0


def print_plan(cfg, devices, files_by_split, run_dir, resuming):
    """The resolved settings and devices, each split's crops and videos, and the run folder."""
    print(settings.describe_settings(cfg, SHOWN_SETTINGS) + f", devices: {devices}")
    for split, by_class in count_files(files_by_split).items():
        print(f"{split}: " + ", ".join(f"{c['crops']:,} {class_name} crops from {c['videos']:,} videos"
                                       for class_name, c in by_class.items()))
    print(f"{'resuming the interrupted run' if resuming else 'run'}: {run_dir}")


def main(argv=None):
    args = parse_args(argv)
    if args.export:
        return export_main(args)
    try:
        cfg = settings.load_config(args.config)
        settings.check_training_settings(cfg)
        tf_config = os.environ.get("TF_CONFIG")
        machines, chief = distribute.cluster_size(tf_config), distribute.is_chief(tf_config)
        name = runs.choose_run_name(args.name, cfg, machines)
        files_by_split = list_splits(cfg.SPLIT_DIR, cfg.TRAIN_FAKES)
        if distribute.needs_supervisor(tf_config):  # training runs in a child process it supervises
            machine_dir, _ = runs.prepare_machine_dir(cfg, name, args.overwrite, chief)
            return distribute.supervise_script(__file__, argv, name, tf_config, cfg.CLUSTER_TIMEOUT_S,
                                               machine_dir / "backup")
        run_dir, resuming = runs.prepare_machine_dir(cfg, name, args.overwrite, chief)
    except (settings.ConfigError, SplitFolderError, runs.RunError, distribute.ClusterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    timer = Timer()
    strategy, devices = distribute.choose_strategy(cfg.MIXED_PRECISION, args.cpu_devices)
    set_training_seed(cfg.TRAINING_SEED)
    print_plan(cfg, devices, files_by_split, run_dir, resuming)
    settings.save_settings(cfg, run_dir, "03")
    if chief:
        runs.record_split(cfg, run_dir)
    cache_dir = choose_cache_dir(cfg, files_by_split, run_dir)

    try:
        if not runs.is_trained(run_dir):
            digest = train_model(cfg, strategy, run_dir, files_by_split, cache_dir,
                                 writes_run=chief, cluster_formed=distribute.formed_mark())
            print(f"trained weights: digest {digest}")
            runs.mark_trained(cfg, run_dir)
        if not chief:  # the chief scores the test split alone
            remove_cache(cache_dir)
            return 0
        trained = runs.describe_training(cfg, run_dir)
        metrics = runs.score_test_split(cfg, run_dir, files_by_split, trained, cache_dir)
    except (SplitFolderError, runs.RunError, WeightsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command (--name {name}) to resume from the last finished epoch",
              file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - TensorFlow's errors when a peer of the cluster is lost
        if machines > 1 and distribute.lost_peer(error):
            print(f"lost a peer: {str(error).splitlines()[0][:300]}", file=sys.stderr, flush=True)
            os._exit(distribute.RESTART_STATUS)  # TensorFlow's threads could hold a normal exit
        raise

    print(f"\nstage 03 finished in {timer.seconds:,.1f} s: run {name}, {trained['epochs_run']} epochs "
          f"(best {trained['best_epoch']}, {trained['stopped']}), test metrics at threshold {cfg.THRESHOLD}:")
    print(metrics_table(metrics))
    print(f"  output: {run_dir}  (model.keras, MODEL_CARD.md, metrics.json, predictions.csv, curves.png, roc.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
