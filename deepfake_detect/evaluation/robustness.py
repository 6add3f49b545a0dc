"""Stage 05's robustness sweep: which perturbations to run, and how their results are reported.

The sweep evaluates one model on one dataset again for each DeeperForensics-1.0 perturbation
type and level (see deepfake_detect/evaluation/perturb.py). Its results are a list of dicts, one per
(type, level), with the evaluation's video-level metrics:

    {"type": "blur", "level": 3, "video_auc": 0.81, "log_loss": 0.52, "accuracy": 0.75,
     "faces_found": 118, "videos": 20, ...any other metric...}

plus one row with level 0: the clean evaluation, shared by every type (its "type" is ignored).
`write_robustness(folder, results)` writes, in the evaluation folder:

- robustness.csv: one row per (type, level), the clean row first as type "none", level 0;
  columns ROBUSTNESS_COLUMNS, then any other keys the rows carry; metrics with 4 decimals;
  `parameter` is DeeperForensics-1.0's parameter for the level, `auc_drop` = clean AUC - AUC.
- robustness.png: video AUC against level, one line per type, all starting at the clean AUC,
  with a dashed line AUC_DROP below it.

and returns a markdown section for report.md that names, per type, the first level at which the
video AUC falls more than AUC_DROP below level 0 ("none up to level N" otherwise).

How stage 05 drives it (05-evaluate_model.py --robustness, through evaluation/inputs.py and outputs.py):

    plan, skipped = runnable_plan(plan_sweep(types, levels, seed))   # no encoder: video skipped
    sweep = run_sweep(models, datasets, results, plan, cfg, skipped=skipped)  # results: the clean ones
    section, files = write_sweep(eval_folder, sweep)                 # appended to report.md
    for line in sweep_summary_lines(sweep): print(line)               # a line per sweep point

run_sweep reuses each run x dataset's clean metrics as its level-0 row, and for every point
extracts the perturbed faces (extract.extract_faces, cached per perturbation.cache_tag, so a
second model extracts nothing) and scores them as the clean evaluation does (scores.py).
"""

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from deepfake_detect.plots import save_figure
from deepfake_detect.files import write_csv
from deepfake_detect.evaluation.perturb import (PERTURBATION_TYPES, TYPE_NAMES, VIDEO_TYPES, CodecError, Perturbation, check_sweep,
                                               ffmpeg_executable)

AUC_DROP = 0.05  # a type "costs" AUC at the first level whose video AUC is more than this below clean
CLEAN_TYPE = "none"
ROBUSTNESS_COLUMNS = ("type", "level", "parameter", "video_auc", "auc_drop", "log_loss", "accuracy",
                      "faces_found", "videos")
CSV_NAME = "robustness.csv"
PLOT_NAME = "robustness.png"


def plan_sweep(types=None, levels=None, seed=0):
    """The perturbations to evaluate, type by type (PERTURBATION_TYPES order), level by level.

    `types`: names from PERTURBATION_TYPES (None: all seven); `levels`: 1-5 (None: all five).
    Level 0 is left out: it is the clean evaluation, run once and shared by every type.
    Raises ValueError naming the bad type or level.
    """
    types, levels = check_sweep(types, levels)
    return [Perturbation(kind, level, seed) for kind in PERTURBATION_TYPES if kind in types
            for level in sorted(set(levels)) if level != 0]


def runnable_plan(plan):
    """(the plan without what cannot run here, {type: reason}) for robustness_markdown's `skipped`.

    Only video compression can be unrunnable: without an ffmpeg with libx264 its levels are
    dropped with CodecError's message (what to install); the six frame types always run.
    """
    if not any(perturbation.applies_to_video for perturbation in plan):
        return list(plan), {}
    try:
        ffmpeg_executable()
    except CodecError as error:
        return ([p for p in plan if not p.applies_to_video],
                {kind: str(error) for kind in VIDEO_TYPES if any(p.kind == kind for p in plan)})
    return list(plan), {}


def split_results(results):
    """(clean row, {type: {level: row}}) from the sweep's result rows, checked.

    Raises ValueError when there is no level-0 row, two level-0 rows disagree, a type or level
    is unknown, or a (type, level) appears twice.
    """
    clean_rows = [row for row in results if row["level"] == 0]
    if not clean_rows:
        raise ValueError("the robustness results have no level-0 row (the clean evaluation)")
    clean = clean_rows[0]
    for row in clean_rows[1:]:
        if _metric(row, "video_auc") != _metric(clean, "video_auc"):
            raise ValueError("the robustness results have level-0 rows with different AUCs; "
                             "level 0 must be the one clean evaluation")
    by_type = {}
    for row in results:
        if row["level"] == 0:
            continue
        Perturbation(row["type"], row["level"])  # raises ValueError on an unknown type or level
        levels = by_type.setdefault(row["type"], {})
        if row["level"] in levels:
            raise ValueError(f"the robustness results hold {row['type']} level {row['level']} twice")
        levels[row["level"]] = row
    ordered = {kind: dict(sorted(by_type[kind].items())) for kind in PERTURBATION_TYPES if kind in by_type}
    return clean, ordered


def robustness_table(results):
    """The CSV's rows (dicts of strings) and columns: clean first, then type by type, level by level."""
    clean, by_type = split_results(results)
    rows = [dict(clean, type=CLEAN_TYPE, level=0)]
    rows += [row for levels in by_type.values() for row in levels.values()]
    columns = list(ROBUSTNESS_COLUMNS)
    for row in rows:
        columns += [key for key in row if key not in columns]
    clean_auc = _metric(clean, "video_auc")
    table = []
    for row in rows:
        auc = _metric(row, "video_auc")
        values = dict(row)
        values["parameter"] = Perturbation(row["type"], row["level"]).parameter if row["level"] else None
        values["auc_drop"] = clean_auc - auc if clean_auc is not None and auc is not None else None
        table.append({key: _format(values.get(key), key) for key in columns})
    return table, columns


def first_costly_level(clean_auc, auc_by_level, auc_drop=AUC_DROP):
    """The first level whose AUC is more than `auc_drop` below `clean_auc`; None if there is none.

    Levels without an AUC (None: undefined, e.g. one class left) are passed over. The difference
    is rounded to 9 decimals first, so 0.90 -> 0.85 counts as exactly 0.05 (not more).
    """
    for level, auc in sorted(auc_by_level.items()):
        if auc is not None and round(clean_auc - auc, 9) > auc_drop:
            return level
    return None


def robustness_markdown(results, auc_drop=AUC_DROP, skipped=None, plot_name=PLOT_NAME, title=None):
    """report.md's robustness section: video AUC per type and level, and each type's first costly level.

    `skipped`: {type: reason} for types that could not run (e.g. video compression without an
    encoder); they get a row saying so. `title`: added to the heading (e.g. "`b0` on `dfdc`").
    """
    clean, by_type = split_results(results)
    skipped = dict(skipped or {})
    clean_auc = _metric(clean, "video_auc")
    levels = sorted({level for type_levels in by_type.values() for level in type_levels})
    clean_text = "undefined" if clean_auc is None else f"{clean_auc:.4f}"
    lines = [
        "## Robustness to perturbations" + (f": {title}" if title else ""),
        "",
        f"Video AUC under DeeperForensics-1.0's perturbations (Jiang et al. 2020) at levels 1-5, "
        f"against the clean evaluation (level 0, video AUC {clean_text}). The last column names the "
        f"first level at which a type costs more than {auc_drop:g} AUC. All metrics: `{CSV_NAME}`.",
        "",
        "| perturbation | " + " | ".join(f"level {level}" for level in levels)
        + f" | first level costing > {auc_drop:g} AUC |",
        "|---|" + "---:|" * len(levels) + "---|",
    ]
    for kind in PERTURBATION_TYPES:
        if kind in skipped:
            lines.append(f"| {TYPE_NAMES[kind]} | " + " | ".join("" for _ in levels)
                         + f" | not run: {skipped[kind]} |")
        if kind not in by_type:
            continue
        aucs = {level: _metric(row, "video_auc") for level, row in by_type[kind].items()}
        cells = [_format(aucs.get(level), "video_auc") or "—" for level in levels]
        lines.append(f"| {TYPE_NAMES[kind]} | " + " | ".join(cells) + f" | {_costly_text(clean_auc, aucs, auc_drop)} |")
    lines += ["", f"![video AUC against perturbation level]({plot_name})", ""]
    return "\n".join(lines)


def _costly_text(clean_auc, aucs, auc_drop):
    """The last table cell: "level 3 (AUC 0.8100)", "none up to level 5" or why it cannot be said."""
    if clean_auc is None:
        return "not measurable: the clean AUC is undefined"
    measured = [level for level, auc in aucs.items() if auc is not None]
    if not measured:
        return "not measurable: AUC undefined at every level"
    level = first_costly_level(clean_auc, aucs, auc_drop)
    if level is None:
        return f"none up to level {max(measured)}"
    return f"level {level} (AUC {aucs[level]:.4f})"


def plot_robustness(results, path, auc_drop=AUC_DROP, title=None):
    """robustness.png: video AUC against level, one line per type from the shared clean point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    clean, by_type = split_results(results)
    clean_auc = _metric(clean, "video_auc")
    clean_y = math.nan if clean_auc is None else clean_auc
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    markers = "osD^vPX"
    for number, (kind, levels) in enumerate(by_type.items()):
        xs = [0, *levels]
        ys = [clean_y] + [math.nan if _metric(row, "video_auc") is None else _metric(row, "video_auc")
                          for row in levels.values()]
        axis.plot(xs, ys, marker=markers[number % len(markers)], markersize=4, label=TYPE_NAMES[kind])
    if clean_auc is not None:
        axis.axhline(clean_auc - auc_drop, linestyle="--", color="grey", linewidth=1,
                     label=f"clean AUC - {auc_drop:g}")
    axis.set_xlabel("perturbation level (DeeperForensics-1.0; 0 = clean)")
    axis.set_ylabel("video AUC")
    axis.set_title("Robustness: video AUC under perturbation" + (f" ({title})" if title else ""))
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def write_robustness(folder, results, auc_drop=AUC_DROP, skipped=None):
    """Write robustness.csv and robustness.png into `folder`; return report.md's markdown section."""
    folder = Path(folder)
    table, columns = robustness_table(results)
    write_csv(folder / CSV_NAME, table, columns)
    plot_robustness(results, folder / PLOT_NAME, auc_drop)
    return robustness_markdown(results, auc_drop, skipped)


def _metric(row, key):
    """A metric of a result row as a float; None when missing, None or NaN."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _format(value, key):
    """A CSV/markdown cell: "" for missing, 4 decimals for float metrics, the value as text otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and key != "parameter":
        return f"{value:.4f}"
    return str(value)


# ------------------------------------------------------------------ running the sweep (stage 05 --robustness)

@dataclass
class SweepPoint:
    """One evaluated sweep point, for the summary: its row and what extraction and scoring cost."""

    run: str
    dataset: str
    perturbation: Perturbation
    row: dict
    extracted: int
    reused: int
    seconds: float


@dataclass
class Sweep:
    """What run_sweep did: {(run, dataset): result rows (level 0 first)}, the points, the types not run."""

    results: dict
    points: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)


def sweep_row(result, kind, level):
    """One result row from stage 05's metrics of a run on a dataset (scores.measure_scores: metrics.
    dataset_metrics + "videos_without_score"): the video metrics, the faces scored, the videos scored."""
    video, face = result["video"] or {}, result["face"] or {}
    return {"type": kind, "level": level, "video_auc": video.get("roc_auc"), "log_loss": video.get("log_loss"),
            "accuracy": video.get("accuracy"), "faces_found": face.get("count", 0), "videos": video.get("count", 0),
            "videos_without_score": sum(len(v) for v in result.get("videos_without_score", {}).values()),
            "balanced_accuracy": video.get("balanced_accuracy"), "ece": video.get("ece"),
            "face_auc": face.get("roc_auc")}


def run_sweep(models, datasets, clean_results, plan, cfg, workers=None, skipped=None):
    """Evaluate every run on every dataset at every point of `plan`; return a Sweep.

    models: {run: model path}; datasets: [extract.EvalDataset]; clean_results: stage 05's
    results[run][dataset] (the clean evaluation), reused as each pair's level-0 row exactly, never
    recomputed. Each point's faces come from extract.extract_faces with the perturbation, so they
    are cached by its cache_tag: the first run extracts them, every further run (and any later
    stage 05 on the same dataset and settings) reuses them. Scoring and metrics are the clean
    evaluation's own path (scores.score_dataset, scores.measure_scores), with each run's calibration,
    on the same videos (without those the run trained or validated on, scores.videos_to_score).
    """
    import time

    from tqdm import tqdm

    from deepfake_detect.training.calibration import run_temperature
    from deepfake_detect.models.predictors import load_predictor
    from deepfake_detect.evaluation.extract import extract_faces
    from deepfake_detect.evaluation.scores import (flag_seen, measure_scores, read_seen_videos, score_dataset,
                                                   videos_to_score)

    sweep = Sweep({(run, d.name): [sweep_row(clean_results[run][d.name], CLEAN_TYPE, 0)]
                   for run in models for d in datasets}, skipped=dict(skipped or {}))
    bar = tqdm(total=len(models) * len(datasets) * len(plan), desc="stage 05 robustness sweep", unit="point",
               dynamic_ncols=True)
    try:
        for run, model_path in models.items():
            predictor = load_predictor(model_path)
            temperature, _ = run_temperature(model_path, cfg)
            seen, _ = read_seen_videos(model_path)
            for dataset in datasets:
                dataset = videos_to_score(dataset, flag_seen(dataset.videos, seen), cfg.EVAL_KEEP_SEEN)
                for perturbation in plan:
                    bar.set_postfix_str(f"{run} on {dataset.name}: {perturbation.cache_tag}", refresh=True)
                    start = time.perf_counter()
                    extraction = extract_faces(dataset, cfg, perturbation=perturbation, workers=workers,
                                               progress=False)
                    videos, faces = score_dataset(predictor, temperature, dataset, extraction, cfg, run,
                                                  progress=False)
                    row = sweep_row(measure_scores(videos, faces, cfg)[2], perturbation.kind, perturbation.level)
                    sweep.results[(run, dataset.name)].append(row)
                    sweep.points.append(SweepPoint(run, dataset.name, perturbation, row, extraction.extracted,
                                                   extraction.reused, time.perf_counter() - start))
                    bar.update(1)
    finally:
        bar.close()
    return sweep


def plot_file_name(run, dataset):
    """robustness-<run>-<dataset>.png: the plot of one pair when a sweep has several."""
    return f"robustness-{run}-{dataset}.png"


def write_sweep(folder, sweep, auc_drop=AUC_DROP):
    """Write a Sweep's files into `folder`; return (report.md's markdown, [file names written]).

    One run x dataset pair: robustness.csv and robustness.png (write_robustness). Several pairs:
    robustness.csv with `run` and `dataset` as its first columns (pairs in order), one
    robustness-<run>-<dataset>.png each, robustness.png a copy of the first pair's plot, and
    one report section per pair.
    """
    folder = Path(folder)
    if len(sweep.results) == 1:
        return write_robustness(folder, next(iter(sweep.results.values())), auc_drop, sweep.skipped), \
            [CSV_NAME, PLOT_NAME]
    rows, columns, sections, names = [], ["run", "dataset"], [], [CSV_NAME]
    for (run, dataset), results in sweep.results.items():
        table, pair_columns = robustness_table(results)
        rows += [{"run": run, "dataset": dataset, **row} for row in table]
        columns += [column for column in pair_columns if column not in columns]
        title = f"`{run}` on `{dataset}`"
        plot_robustness(results, folder / plot_file_name(run, dataset), auc_drop, title=f"{run} on {dataset}")
        names.append(plot_file_name(run, dataset))
        sections.append(robustness_markdown(results, auc_drop, sweep.skipped, plot_file_name(run, dataset), title))
    write_csv(folder / CSV_NAME, rows, columns)
    first = next(iter(sweep.results))
    shutil.copyfile(folder / plot_file_name(*first), folder / f".{PLOT_NAME}.tmp")
    os.replace(folder / f".{PLOT_NAME}.tmp", folder / PLOT_NAME)
    return "\n".join(sections), names + [PLOT_NAME]


def point_line(point, clean_auc):
    """The summary's line for one sweep point."""
    row, p = point.row, point.perturbation
    auc = "-" if row["video_auc"] is None else f"{row['video_auc']:.3f}"
    change = "" if row["video_auc"] is None or clean_auc is None else f" ({row['video_auc'] - clean_auc:+.3f})"
    log_loss = "-" if row["log_loss"] is None else f"{row['log_loss']:.3f}"
    accuracy = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
    return (f"  {point.run} on {point.dataset}, {p.kind} {p.level} ({p.parameter}): video AUC {auc}{change}, "
            f"log loss {log_loss}, accuracy {accuracy}, {row['faces_found']:,} faces, {row['videos']:,} videos "
            f"scored; {point.extracted:,} extracted, {point.reused:,} from the cache, {point.seconds:,.1f} s")


def sweep_summary_lines(sweep):
    """The stage 05 summary's robustness part: a line per point, then the types not run."""
    lines = [f"robustness sweep: {len(sweep.points):,} points "
             f"({sum(p.extracted for p in sweep.points):,} videos extracted, "
             f"{sum(p.reused for p in sweep.points):,} from the cache, {sum(p.seconds for p in sweep.points):,.1f} s):"]
    for point in sweep.points:
        lines.append(point_line(point, sweep.results[(point.run, point.dataset)][0]["video_auc"]))
    lines += [f"  {TYPE_NAMES[kind]}: not run: {reason}" for kind, reason in sweep.skipped.items()]
    return lines
