"""Stage 05: measure trained models on labelled datasets, with calibrated probabilities.

    RUNS_DIR/<run>/model.keras (each --run)  +  labelled video folders (each --dataset)
        ->  EVALS_DIR/<name>/ (metrics.json, per_video.csv, per_face.csv, report.md, plots-*.png)
            and EVAL_CACHE_DIR/<dataset>-<key>/ (face crops, extracted once per dataset and settings)

    python 05-evaluate_model.py --run RUN [--run RUN2 ...] --dataset NAME=FOLDER[:SPLIT] [--dataset ...]
                                [--config configs/my.py] [--name EVAL_NAME] [--workers N] [--ray [ADDRESS]]
                                [--robustness [--robustness-types noise,blur] [--robustness-levels 1,3,5]]

A dataset is any folder stage 00 reads with labels: DFDC (metadata.json, optionally with a
"method" key per fake), DFDC parts, FaceForensics++ or Celeb-DF as downloaded, DFDC's public test
set (labels.csv) or preview (dataset.json), or real/ + fake/ (fake/<method>/ subfolders name
methods); see docs/datasets-ffpp.md, docs/datasets-celeb-df.md, docs/datasets-dfdc.md.
`:SPLIT` (train, val, test) scores only a dataset's official split, e.g. `--dataset
ffpp=/data/FF++:test` (FF++'s test.json pairs) or `cdf=/data/Celeb-DF-v2:test`
(List_of_testing_videos.txt); the report names the split and the list it comes from.
Each run's videos seen in training (<run folder>/split.csv: its train and val videos and their
source groups) are counted ("36 of 60 videos were in run sample's train/val split") and left out
of its scores, unless EVAL_KEEP_SEEN (then marked in per_video.csv's `seen` column).
Its frames and faces go through the training stages' code and settings (FRAMES_PER_SECOND,
RESIZE_RULES, MTCNN, FACE_MARGIN, MULTI_FACE_MIN_CONFIDENCE) once; the crops are cached under a
key of those settings, so every further model on that dataset costs only its own time. Each
run's faces get P(real), calibrated by the run's temperature (CALIBRATE; raw kept too), and its
videos a P(real) by VIDEO_SCORE. Metrics at face and video level: ROC AUC, AP, EER, accuracy
and balanced accuracy at THRESHOLD, log loss, ECE before and after calibration, the confusion
matrix, 95% bootstrap intervals by video (BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED), and all of them
per manipulation method. Ends with a summary such as (make demo's untrained run, 2-core CPU):

    stage 05 finished in 99.3 s: 2 runs x 2 datasets
      sample: 20 videos (10 real, 10 fake), 20 extracted, 0 from the cache, 0 without a score
      dfdc: 2 videos (0 real, 2 fake), 2 extracted, 0 from the cache, 0 without a score
    video ROC AUC / log loss (runs x datasets):
    run                         sample                    dfdc
    sample               0.400 / 0.693               - / 0.693
    sample-raw           0.400 / 0.693               - / 0.693
      output: evals/demo (report.md, metrics.json, per_video.csv, per_face.csv, plots)

--robustness adds a sweep (deepfake_detect/evaluation/robustness.py, docs/05-evaluate.md#robustness):
each run on each dataset again under DeeperForensics-1.0's perturbations (ROBUSTNESS_TYPES x
ROBUSTNESS_LEVELS, seed ROBUSTNESS_SEED; the flags override them), faces cached per perturbation,
level 0 being the clean evaluation above; it writes robustness.csv, robustness.png (one
robustness-<run>-<dataset>.png per pair when there are several) and a report.md section, and
prints a line per sweep point. Without an ffmpeg with libx264, video compression is not run (an
error line says what to install) and the other types are.

Videos without a face or unreadable are listed and left out of the video metrics (no stand-in
score); a one-class dataset (as "dfdc" here) gets no AUC, AP or EER, with the reason.
Exit status: 0 done (also when only video compression could not run), 2 for a usage, settings,
dataset or model error (nothing is evaluated then).

The steps live in deepfake_detect/evaluation/: inputs.py (settings, runs), extract.py (datasets,
the face cache), scores.py (scores, metrics), outputs.py (the files, the summary), robustness.py.
"""

import sys
from datetime import datetime

from deepfake_detect import arguments, settings
from deepfake_detect.evaluation.extract import DatasetError, extract_datasets, load_datasets
from deepfake_detect.evaluation.inputs import describe_datasets, plan_robustness, resolve_runs
from deepfake_detect.evaluation.outputs import build_metrics_document, summary_lines, write_outputs
from deepfake_detect.evaluation.perturb import TYPE_NAMES
from deepfake_detect.evaluation.scores import score_runs
from deepfake_detect.jobs.console import Timer
from deepfake_detect.models.predictors import ModelError

SHOWN_SETTINGS = ["FRAMES_PER_SECOND", "RESIZE_RULES", "FACE_MARGIN", "MULTI_FACE_MIN_CONFIDENCE", "VIDEO_SCORE",
                  "THRESHOLD", "CALIBRATE", "BOOTSTRAP_SAMPLES", "EVALS_DIR", "EVAL_CACHE_DIR", "DATASET_COMPRESSION",
                  "SPLIT_LISTS_DIR", "EVAL_KEEP_SEEN"]


def parse_args(argv=None):
    parser = arguments.new_parser(__doc__)
    parser.add_argument("--run", action="append", default=[], metavar="PATH_OR_NAME",
                        help="run folder, run name in RUNS_DIR or .keras file; repeat for several "
                             "(default: the newest run)")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=FOLDER[:SPLIT]", required=True,
                        help="a labelled video folder and the name it gets in the tables; :train, :val or :test "
                             "selects its official split (e.g. ffpp=/data/FF++:test); repeatable")
    parser.add_argument("--name", default=None, help="output folder under EVALS_DIR (default: a timestamp)")
    parser.add_argument("--workers", type=int, default=None,
                        help="face extraction processes (default: config MTCNN_WORKERS, else one per 4 cores)")
    arguments.add_ray_argument(parser)
    parser.add_argument("--robustness", action="store_true",
                        help="also run the robustness sweep (DeeperForensics-1.0 perturbations x levels)")
    parser.add_argument("--robustness-types", type=arguments.comma_list, default=None, metavar="TYPE,...",
                        help="perturbation types to sweep (default: config ROBUSTNESS_TYPES, None = all seven)")
    parser.add_argument("--robustness-levels", type=arguments.comma_list, default=None, metavar="N,...",
                        help="levels 1-5 to sweep (default: config ROBUSTNESS_LEVELS)")
    args = parser.parse_args(argv)
    if (args.robustness_types is not None or args.robustness_levels is not None) and not args.robustness:
        parser.error("--robustness-types and --robustness-levels need --robustness")
    if args.robustness_levels is not None:
        if not all(level.isdigit() for level in args.robustness_levels):
            parser.error(f"--robustness-levels {','.join(args.robustness_levels)}: give levels 1-5, e.g. 1,3,5")
        args.robustness_levels = [int(level) for level in args.robustness_levels]
    if args.name is not None and (not args.name or "/" in args.name or "\\" in args.name or args.name in (".", "..")):
        parser.error(f"--name {args.name!r}: give a plain folder name such as 'b0-vs-celebdf'")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = arguments.apply_ray_flag(settings.load_config(args.config), args.ray)
        settings.check_evaluation_settings(cfg)
        plan, not_run = [], {}
        if args.robustness:
            plan, not_run = plan_robustness(cfg, args.robustness_types, args.robustness_levels)
        models = resolve_runs(cfg, args.run)
        datasets = load_datasets(cfg, args.dataset)
    except (settings.ConfigError, ModelError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    name = args.name or datetime.now().strftime("%Y-%m-%d_%H%M%S")
    out_dir = cfg.EVALS_DIR / name
    out_dir.mkdir(parents=True, exist_ok=True)
    print(settings.describe_settings(cfg, SHOWN_SETTINGS) + f", runs: {', '.join(models)}, "
          f"datasets: {describe_datasets(datasets)}"
          + (f", engine=Ray at {cfg.RAY_ADDRESS}" if cfg.RAY_ADDRESS else ""))
    timer = Timer()

    extractions = extract_datasets(datasets, cfg, workers=args.workers)
    extraction_seconds = timer.seconds
    try:
        scores = score_runs(models, datasets, extractions, cfg, out_dir)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sweep = None
    if args.robustness:
        from deepfake_detect.evaluation.robustness import run_sweep

        for kind, reason in not_run.items():
            print(f"error: robustness sweep: {TYPE_NAMES[kind]} not run: {reason}", file=sys.stderr)
        sweep = run_sweep(models, datasets, scores.results, plan, cfg, workers=args.workers, skipped=not_run)

    document = build_metrics_document(name, cfg, datasets, extractions, scores,
                                      {"extraction": extraction_seconds, "total": timer.seconds}, sweep, plan)
    outputs = write_outputs(out_dir, document, scores, cfg, sweep)
    print("\n".join(summary_lines(document, timer.seconds, out_dir, outputs, sweep)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
