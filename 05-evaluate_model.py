"""Stage 05: measure trained models on labelled datasets, with calibrated probabilities.

    RUNS_DIR/<run>/model.keras (each --run)  +  labelled video folders (each --dataset)
        ->  EVALS_DIR/<name>/ (metrics.json, per_video.csv, per_face.csv, report.md, plots-*.png)
            and EVAL_CACHE_DIR/<dataset>-<key>/ (face crops, extracted once per dataset and settings)

    python 05-evaluate_model.py --run RUN [--run RUN2 ...] --dataset NAME=FOLDER [--dataset ...]
                                [--config configs/my.py] [--name EVAL_NAME] [--workers N] [--ray [ADDRESS]]
                                [--robustness [--robustness-types noise,blur] [--robustness-levels 1,3,5]]

A dataset is any folder stage 00 reads with labels: DFDC (metadata.json, optionally with a
"method" key per fake), DFDC parts, or real/ + fake/ (fake/<method>/ subfolders name methods).
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

--robustness adds a sweep (deepfake_detect/robustness.py, docs/05-evaluate.md#robustness): each
run on each dataset again under DeeperForensics-1.0's perturbations (ROBUSTNESS_TYPES x
ROBUSTNESS_LEVELS, seed ROBUSTNESS_SEED; the flags override them), faces cached per perturbation,
level 0 being the clean evaluation above; it writes robustness.csv, robustness.png (one
robustness-<run>-<dataset>.png per pair when there are several) and a report.md section, and
prints a line per sweep point. Without an ffmpeg with libx264, video compression is not run (an
error line says what to install) and the other types are.

Videos without a face or unreadable are listed and left out of the video metrics (no stand-in
score); a one-class dataset (as "dfdc" here) gets no AUC, AP or EER, with the reason.
Exit status: 0 done (also when only video compression could not run), 2 for a usage, settings,
dataset or model error (nothing is evaluated then).
"""

import json
import sys
from datetime import datetime

from deepfake_detect import settings
from deepfake_detect.calibration import run_temperature
from deepfake_detect.inference.scoring import ModelError, find_run_model, load_predictor
from deepfake_detect.evaluation.report import matrix_text, plot_run_on_dataset, report_markdown
from deepfake_detect.evaluation.extract import (FACE_COLUMNS, VIDEO_COLUMNS, DatasetError, as_table, extract_faces, load_dataset, parse_dataset_argument, run_label, score_dataset, unscored_videos, write_table)
from deepfake_detect.files import write_text_atomic
from deepfake_detect.metrics import dataset_metrics
from deepfake_detect.evaluation.perturb import TYPE_NAMES
from deepfake_detect.jobs.console import Timer, warn

SHOWN_SETTINGS = ["FRAMES_PER_SECOND", "RESIZE_RULES", "FACE_MARGIN", "MULTI_FACE_MIN_CONFIDENCE", "VIDEO_SCORE",
                  "THRESHOLD", "CALIBRATE", "BOOTSTRAP_SAMPLES", "EVALS_DIR", "EVAL_CACHE_DIR"]


def check_evaluation_settings(cfg):
    """Raise ConfigError for stage 05 settings that cannot work."""
    for name in ("BOOTSTRAP_SAMPLES", "CALIBRATION_BINS"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise settings.ConfigError(f"{name} must be a whole number >= 1")
    if not isinstance(cfg.CALIBRATE, bool):
        raise settings.ConfigError("CALIBRATE must be True (apply each run's temperature) or False (raw scores)")
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


def load_datasets(cfg, arguments):
    """[EvalDataset] for each --dataset NAME=FOLDER. Raises DatasetError."""
    datasets = [load_dataset(*parse_dataset_argument(text), cfg) for text in arguments]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise DatasetError(f"--dataset names must differ: {', '.join(names)}")
    return datasets


def describe_dataset(dataset, extraction):
    """metrics.json's entry for one dataset."""
    labels = [v.label for v in dataset.videos]
    return {"folder": str(dataset.folder), "videos": len(labels), "real": labels.count("REAL"),
            "fake": labels.count("FAKE"), "methods": sorted({v.method for v in dataset.videos if v.method}),
            "cache": str(extraction.cache_dir), "extracted": extraction.extracted, "reused": extraction.reused,
            "problems": list(dataset.problems)}


def evaluate_run(name, model_path, datasets, extractions, cfg, out_dir):
    """Score one run on every dataset: (video rows, face rows, {dataset: metrics}, run info, plots)."""
    predictor = load_predictor(model_path)  # a model.keras, or an export (.tflite, SavedModel folder)
    temperature, note = run_temperature(model_path, cfg)
    print(f"run {name}: {model_path}; {note}")
    video_rows, face_rows, results, plots = [], [], {}, {}
    for dataset in datasets:
        videos, faces = score_dataset(predictor, temperature, dataset, extractions[dataset.name], cfg, name)
        video_table, face_table = as_table(videos, VIDEO_COLUMNS), as_table(faces, FACE_COLUMNS)
        result = dataset_metrics(video_table, face_table, cfg)
        result["videos_without_score"] = unscored_videos(video_table)
        results[dataset.name] = result
        plots[(name, dataset.name)] = f"plots-{name}-{dataset.name}.png"
        plot_run_on_dataset(face_table, video_table, out_dir / plots[(name, dataset.name)],
                            f"{name} on {dataset.name}", cfg.CALIBRATION_BINS)
        video_rows += videos
        face_rows += faces
    info = {"model": str(model_path), "temperature": temperature, "calibration": note}
    return video_rows, face_rows, results, info, plots


def comma_list(text):
    """'noise, blur' -> ['noise', 'blur']."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv=None):
    parser = settings.new_parser(__doc__)
    parser.add_argument("--run", action="append", default=[], metavar="PATH_OR_NAME",
                        help="run folder, run name in RUNS_DIR or .keras file; repeat for several "
                             "(default: the newest run)")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=FOLDER", required=True,
                        help="a labelled video folder and the name it gets in the tables; repeatable")
    parser.add_argument("--name", default=None, help="output folder under EVALS_DIR (default: a timestamp)")
    parser.add_argument("--workers", type=int, default=None,
                        help="face extraction processes (default: config MTCNN_WORKERS, else one per 4 cores)")
    settings.add_ray_argument(parser)
    parser.add_argument("--robustness", action="store_true",
                        help="also run the robustness sweep (DeeperForensics-1.0 perturbations x levels)")
    parser.add_argument("--robustness-types", type=comma_list, default=None, metavar="TYPE,...",
                        help="perturbation types to sweep (default: config ROBUSTNESS_TYPES, None = all seven)")
    parser.add_argument("--robustness-levels", type=comma_list, default=None, metavar="N,...",
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
        cfg = settings.apply_ray_flag(settings.load_config(args.config), args.ray)
        check_evaluation_settings(cfg)
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
          f"datasets: {', '.join(d.name for d in datasets)}"
          + (f", engine=Ray at {cfg.RAY_ADDRESS}" if cfg.RAY_ADDRESS else ""))
    timer = Timer()

    extractions, described = {}, {}
    for dataset in datasets:
        for problem in dataset.problems:
            warn(f"{dataset.name}: {problem}")
        extractions[dataset.name] = extract_faces(dataset, cfg, workers=args.workers)
        described[dataset.name] = describe_dataset(dataset, extractions[dataset.name])
    extraction_seconds = timer.seconds

    video_rows, face_rows, results, runs, plots = [], [], {}, {}, {}
    try:
        for run, model_path in models.items():
            videos, faces, results[run], runs[run], run_plots = evaluate_run(
                run, model_path, datasets, extractions, cfg, out_dir)
            video_rows, face_rows = video_rows + videos, face_rows + faces
            plots.update(run_plots)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    sweep = None
    if args.robustness:
        from deepfake_detect.evaluation.robustness import run_sweep

        for kind, reason in not_run.items():
            print(f"error: robustness sweep: {TYPE_NAMES[kind]} not run: {reason}", file=sys.stderr)
        sweep = run_sweep(models, datasets, results, plan, cfg, workers=args.workers, skipped=not_run)

    document = {"name": name, "score": "P(real): 1 = real, 0 = fake", "settings": settings.public_settings(cfg),
                "datasets": described, "runs": runs, "results": results,
                "seconds": {"extraction": round(extraction_seconds, 2), "total": round(timer.seconds, 2)}}
    if sweep is not None:
        document["robustness"] = {"points": [perturbation.cache_tag for perturbation in plan],
                                  "seed": cfg.ROBUSTNESS_SEED, "not_run": sweep.skipped,
                                  "seconds": round(sum(p.seconds for p in sweep.points), 2), "table": "robustness.csv"}
    write_table(out_dir / "per_video.csv", as_table(video_rows, VIDEO_COLUMNS))
    write_table(out_dir / "per_face.csv", as_table(face_rows, FACE_COLUMNS))
    write_text_atomic(out_dir / "metrics.json", json.dumps(document, indent=2, default=str) + "\n")
    report, outputs = report_markdown(document, plots), "report.md, metrics.json, per_video.csv, per_face.csv, plots"
    if sweep is not None:
        from deepfake_detect.evaluation.robustness import write_sweep

        section, files = write_sweep(out_dir, sweep)
        report, outputs = report.rstrip("\n") + "\n\n" + section, outputs + ", " + ", ".join(files)
    write_text_atomic(out_dir / "report.md", report)
    settings.save_settings(cfg, out_dir, "05")

    print(f"stage 05 finished in {timer.seconds:,.1f} s: {len(models)} run{'s' * (len(models) != 1)} x "
          f"{len(datasets)} dataset{'s' * (len(datasets) != 1)}")
    for dataset_name, info in described.items():
        lost = sum(len(v) for v in next(iter(results.values()))[dataset_name]["videos_without_score"].values())
        print(f"  {dataset_name}: {info['videos']:,} videos ({info['real']:,} real, {info['fake']:,} fake), "
              f"{info['extracted']:,} extracted, {info['reused']:,} from the cache, {lost:,} without a score")
    print(matrix_text(document))
    if sweep is not None:
        from deepfake_detect.evaluation.robustness import summary_lines

        print("\n".join(summary_lines(sweep)))
    print(f"  output: {out_dir} ({outputs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
