"""Stage 05's output folder, EVALS_DIR/<name>/, and the summary it prints at the end.

    metrics.json                    settings, datasets (describe_dataset), runs, results, seconds[, robustness]
    per_video.csv, per_face.csv     every run's rows (scores.PER_VIDEO_COLUMNS, scores.PER_FACE_COLUMNS)
    report.md                       report.report_markdown with splits_markdown (each dataset's split and its
                                    source, each run's overlap) before the matrix[, the robustness sweep's sections]
    plots-<run>-<dataset>.png       written while scoring (scores.score_run_on_datasets)
    robustness.csv, robustness.png  with --robustness (robustness.write_sweep)
    settings-05.json                the settings used (settings.save_settings)
"""

import json

from deepfake_detect import settings
from deepfake_detect.evaluation.report import matrix_text, report_markdown, rules_text
from deepfake_detect.evaluation.scores import PER_FACE_COLUMNS, PER_VIDEO_COLUMNS, as_table, write_table
from deepfake_detect.files import write_text_atomic

OUTPUTS = "report.md, metrics.json, per_video.csv, per_face.csv, plots"  # as the summary names them


def describe_dataset(dataset, extraction):
    """metrics.json's entry for one dataset."""
    labels = [v.label for v in dataset.videos]
    return {"folder": str(dataset.folder), "videos": len(labels), "real": labels.count("REAL"),
            "fake": labels.count("FAKE"), "methods": sorted({v.method for v in dataset.videos if v.method}),
            "cache": str(extraction.cache_dir), "extracted": extraction.extracted, "reused": extraction.reused,
            "problems": list(dataset.problems), "layout": dataset.layout, "split": dataset.split or "all",
            "split_source": dataset.split_source}


def describe_split(info):
    """'the official test split (from /data/FF++/splits/test.json)', or 'all videos', of a dataset's entry."""
    if info["split"] == "all":
        return "all videos"
    return f"the official {info['split']} split (from {info['split_source']})"


def splits_markdown(document):
    """report.md's section naming each dataset's layout, split and its source, and each run's
    overlap with it, so a reader knows whether a number is comparable to a paper's."""
    parts = ["## Splits and overlap", ""]
    for name, info in document["datasets"].items():
        parts.append(f"- `{name}`: {info['layout']}, {describe_split(info)}: {info['videos']:,} videos")
    for run, info in document["runs"].items():
        for name, overlap in info.get("overlap", {}).items():
            parts.append(f"- `{run}` on `{name}`: {overlap['note']}")
    return "\n".join(parts) + "\n\n"


def build_metrics_document(name, cfg, datasets, extractions, scores, seconds, sweep=None, plan=()):
    """metrics.json's content. `extractions`: {dataset name: extract.Extraction}; `scores`:
    scores.Scores; `seconds`: {"extraction": s, "total": s}; `sweep` (robustness.Sweep) and its
    `plan` ([perturb.Perturbation]) only with --robustness."""
    document = {"name": name, "score": "P(real): 1 = real, 0 = fake", "settings": settings.public_settings(cfg),
                "datasets": {d.name: describe_dataset(d, extractions[d.name]) for d in datasets},
                "runs": scores.runs, "results": scores.results,
                "seconds": {part: round(value, 2) for part, value in seconds.items()}}
    if sweep is not None:
        document["robustness"] = {"points": [perturbation.cache_tag for perturbation in plan],
                                  "seed": cfg.ROBUSTNESS_SEED, "not_run": sweep.skipped,
                                  "seconds": round(sum(p.seconds for p in sweep.points), 2), "table": "robustness.csv"}
    return document


def write_outputs(out_dir, document, scores, cfg, sweep=None):
    """Write the tables, metrics.json, report.md (with the sweep's files and sections, if any) and
    settings-05.json into `out_dir`; return the files written, as the summary's output line names them."""
    write_table(out_dir / "per_video.csv", as_table(scores.video_rows, PER_VIDEO_COLUMNS))
    write_table(out_dir / "per_face.csv", as_table(scores.face_rows, PER_FACE_COLUMNS))
    write_text_atomic(out_dir / "metrics.json", json.dumps(document, indent=2, default=str) + "\n")
    report, outputs = report_markdown(document, scores.plots), OUTPUTS
    matrix_heading = "## Video ROC AUC"
    report = report.replace(matrix_heading, splits_markdown(document) + matrix_heading, 1)
    if sweep is not None:
        from deepfake_detect.evaluation.robustness import write_sweep

        section, files = write_sweep(out_dir, sweep)
        report, outputs = report.rstrip("\n") + "\n\n" + section, outputs + ", " + ", ".join(files)
    write_text_atomic(out_dir / "report.md", report)
    settings.save_settings(cfg, out_dir, "05")
    return outputs


def summary_lines(document, seconds, out_dir, outputs, sweep=None):
    """The summary stage 05 prints last: counts per dataset, the runs x datasets matrix, every
    video score rule's AUC and the fake segments' localization per run and dataset, the sweep's points (with --robustness) and the output folder."""
    runs, datasets = len(document["runs"]), len(document["datasets"])
    lines = [f"stage 05 finished in {seconds:,.1f} s: {runs} run{'s' * (runs != 1)} x "
             f"{datasets} dataset{'s' * (datasets != 1)}"]
    first_run = next(iter(document["results"].values()))
    for dataset_name, info in document["datasets"].items():
        lost = sum(len(v) for v in first_run[dataset_name]["videos_without_score"].values())
        lines.append(f"  {dataset_name}: {info['videos']:,} videos ({info['real']:,} real, {info['fake']:,} fake), "
                     f"{info['extracted']:,} extracted, {info['reused']:,} from the cache, {lost:,} without a score; "
                     f"{describe_split(info)}")
    lines += [f"  {run} on {name}: {overlap['note']}" for run, info in document["runs"].items()
              for name, overlap in info.get("overlap", {}).items() if overlap["seen"] or not overlap["checked"]]
    lines.append(matrix_text(document))
    for run, by_dataset in document["results"].items():
        for dataset_name, result in by_dataset.items():
            if result.get("rules"):
                lines.append(f"  {run} on {dataset_name}: {rules_text(result['rules'], result.get('localization'))}")
    if sweep is not None:
        from deepfake_detect.evaluation.robustness import sweep_summary_lines

        lines += sweep_summary_lines(sweep)
    lines.append(f"  output: {out_dir} ({outputs})")
    return lines
