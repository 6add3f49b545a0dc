"""Stage 05's scores: a run's model on a dataset's cached faces -> per-video and per-face rows and metrics.

The faces come from the cache that extract.py fills; each run scores them with its own model and
temperature (calibration.run_temperature), so a second run costs only its own time. The rows are
per_video.csv's and per_face.csv's (PER_VIDEO_COLUMNS, PER_FACE_COLUMNS); the metrics are
metrics.dataset_metrics of those tables, plus "videos_without_score" (unscored_videos), the video
AUC of every VIDEO_SCORE rule on the same faces ("rules") and, where the metadata gives LAV-DF's
`fake_periods`, temporal localization of the fake segments ("localization": AP at IoU 0.5 / 0.75
/ 0.95, AR@10). Faces are grouped into persons and segments found as stage 04 does
(inference.verdicts.judge_faces), timed by the video's own frame rate. A video
without a face, unreadable, or whose extraction failed gets a row with its status (SCORED,
NO_FACE, UNREADABLE, FAILED of inference/results.py) and reason, and no score.

A video the run trained or validated on (read_seen_videos, flag_seen) is left out
of its scores, unless EVAL_KEEP_SEEN: then it is scored and per_video.csv marks it (`seen`).
"""

import csv
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from deepfake_detect.training.calibration import apply_temperature, run_temperature
from deepfake_detect.datasets.discovery import source_group
from deepfake_detect.evaluation.extract import load_crops, read_video_record
from deepfake_detect.evaluation.report import plot_run_on_dataset
from deepfake_detect.files import write_text_atomic
from deepfake_detect.media.reading import video_frame_rate
from deepfake_detect.inference.records import flat_cell, segment_record
from deepfake_detect.inference.results import FAILED, FaceScore
from deepfake_detect.inference.verdicts import judge_faces
from deepfake_detect.metrics import dataset_metrics, localization_metrics, point_metrics
from deepfake_detect.settings import CHOICES
from deepfake_detect.training.model_card import describe_training_fakes

SCORE_CHUNK_FACES = 256  # faces held in memory and scored together (~30 KB each before resizing)
RULES = CHOICES["VIDEO_SCORE"]  # every video score rule, measured side by side on the same faces
PER_VIDEO_COLUMNS = ("run", "dataset", "video", "label", "method", "status", "frames", "faces", "p_real",
                 "p_real_raw", "verdict", "reason", "seen", *(f"p_real_{rule}" for rule in RULES), "persons",
                 "segments", "fake_periods")
PER_FACE_COLUMNS = ("run", "dataset", "video", "label", "method", "frame", "face", "person", "x", "y", "width", "height",
                "detector_confidence", "p_real", "p_real_raw")


@dataclass
class Scores:
    """Every run's scores on every dataset, as stage 05 writes them."""

    video_rows: list = field(default_factory=list)  # per_video.csv's rows, run after run
    face_rows: list = field(default_factory=list)   # per_face.csv's rows
    results: dict = field(default_factory=dict)     # {run: {dataset: metrics (measure_scores)}}
    runs: dict = field(default_factory=dict)        # {run: {"model", "temperature", "calibration", "overlap"}}
    plots: dict = field(default_factory=dict)       # {(run, dataset): its plot's file name}


def score_runs(models, datasets, extractions, cfg, out_dir):
    """Score every run of `models` ({run: model path}) on every dataset; return Scores.

    `extractions`: {dataset name: extract.Extraction}. Each pair's plot is written into
    `out_dir`. Raises ModelError when a model cannot be loaded.
    """
    scores = Scores()
    for run, model_path in models.items():
        videos, faces, scores.results[run], scores.runs[run], plots = score_run_on_datasets(
            run, model_path, datasets, extractions, cfg, out_dir)
        scores.video_rows, scores.face_rows = scores.video_rows + videos, scores.face_rows + faces
        scores.plots.update(plots)
    return scores


def score_run_on_datasets(name, model_path, datasets, extractions, cfg, out_dir):
    """Score one run on every dataset: (video rows, face rows, {dataset: metrics}, run info, plots)."""
    from deepfake_detect.models.predictors import load_predictor

    predictor = load_predictor(model_path)  # a model.keras, or an export (.tflite, SavedModel folder)
    temperature, note = run_temperature(model_path, cfg)
    print(f"run {name}: {model_path}; {note}")
    seen, no_check = read_seen_videos(model_path)
    video_rows, face_rows, results, plots, overlap = [], [], {}, {}, {}
    for dataset in datasets:
        flagged = flag_seen(dataset.videos, seen)
        overlap[dataset.name] = describe_overlap(name, dataset, flagged, seen, no_check, cfg.EVAL_KEEP_SEEN)
        print(f"run {name} on {dataset.name}: {overlap[dataset.name]['note']}")
        scored = videos_to_score(dataset, flagged, cfg.EVAL_KEEP_SEEN)
        videos, faces = score_dataset(predictor, temperature, scored, extractions[dataset.name], cfg, name)
        for row in videos:
            row["seen"] = row["video"] in flagged
        video_table, face_table, results[dataset.name] = measure_scores(videos, faces, cfg)
        plots[(name, dataset.name)] = f"plots-{name}-{dataset.name}.png"
        plot_run_on_dataset(face_table, video_table, out_dir / plots[(name, dataset.name)],
                            f"{name} on {dataset.name}", cfg.CALIBRATION_BINS)
        video_rows += videos
        face_rows += faces
    info = {"model": str(model_path), "temperature": temperature, "calibration": note, "overlap": overlap,
            "trained_on": read_training_fakes(model_path)}
    return video_rows, face_rows, results, info, plots


def videos_to_score(dataset, flagged, keep_seen):
    """The dataset as a run is scored on it: without the `flagged` videos (those it trained or
    validated on, flag_seen) unless `keep_seen` (EVAL_KEEP_SEEN). The clean evaluation and every
    point of the robustness sweep score the same videos, so their AUCs compare."""
    return dataset if keep_seen else replace(dataset, videos=tuple(v for v in dataset.videos if v.name not in flagged))


def describe_overlap(run, dataset, flagged, seen, no_check, keep):
    """metrics.json's record of one run's overlap with one dataset, with the sentence the report
    and the console show ("36 of 60 videos were in run sample's train/val split ...")."""
    if seen is None:
        note = f"no overlap check: {no_check}"
    else:
        note = (f"{len(flagged):,} of {len(dataset.videos):,} videos were in run {run}'s train/val split "
                f"(by name or source group, per {seen.source})")
        if flagged:
            note += (": scored all the same, marked seen in per_video.csv (EVAL_KEEP_SEEN = True)" if keep else
                     ": left out of its scores (EVAL_KEEP_SEEN = True scores them, marked)")
    return {"checked": seen is not None, "seen": len(flagged), "videos": len(dataset.videos),
            "left_out": bool(flagged) and not keep, "source": str(seen.source) if seen else None,
            "seen_videos": sorted(flagged), "note": note}


def score_dataset(predictor, temperature, dataset, extraction, cfg, run_name, progress=True):
    """Score every cached face of `dataset` with `predictor` (models.predictors.load_predictor); return
    (video rows, face rows) as lists of dicts (the columns of per_video.csv and per_face.csv).

    p_real is calibrated with `temperature` (None: raw); p_real_raw is the network's output.
    A video's scores combine its faces' by VIDEO_SCORE (inference.verdicts.combine_face_scores). Videos
    without a face or unreadable get a row with their status and reason and no score. Faces of
    several videos go through the model together (SCORE_CHUNK_FACES at a time), so small videos
    do not each pay for a half-empty batch. `progress=False`: no progress bar.
    """
    from tqdm import tqdm

    video_rows, face_rows, pending = [], [], []
    bar = tqdm(total=len(dataset.videos), desc=f"stage 05 scoring {run_name} on {dataset.name}", unit="video",
               dynamic_ncols=True, disable=not progress)
    try:
        for video in dataset.videos:
            record = read_video_record(extraction.cache_dir, video.name)
            if record is None:
                outcome = next((o for o in extraction.outcomes if o.name == video.name), None)
                record = {"status": FAILED, "frames": None, "faces": [],
                          "reason": outcome.reason if outcome else "not extracted"}
            pending.append((video, record, load_crops(extraction.cache_dir, record) if record["faces"] else []))
            if sum(len(crops) for _, _, crops in pending) >= SCORE_CHUNK_FACES:
                _score_pending(pending, predictor, temperature, cfg, run_name, dataset.name, video_rows, face_rows)
                bar.update(len(pending))
                pending = []
        _score_pending(pending, predictor, temperature, cfg, run_name, dataset.name, video_rows, face_rows)
        bar.update(len(pending))
    finally:
        bar.close()
    return video_rows, face_rows


def _score_pending(pending, predictor, temperature, cfg, run_name, dataset_name, video_rows, face_rows):
    """Score the crops of the pending [(video, record, crops)] in one go; append their rows."""
    from deepfake_detect.models.predictors import predict_p_real

    crops = [crop for _, _, video_crops in pending for crop in video_crops]
    raw_all = predict_p_real(predictor, crops, predictor.input_size) if crops else []
    start = 0
    for video, record, video_crops in pending:
        raw = raw_all[start:start + len(video_crops)]
        start += len(video_crops)
        calibrated = apply_temperature(raw, temperature).tolist()
        base = {"run": run_name, "dataset": dataset_name, "video": video.name, "label": video.label,
                "method": video.method or ""}
        faces = [FaceScore(entry["frame"], entry["face"], (entry["x"], entry["y"], entry["width"], entry["height"]),
                         entry["detector_confidence"], p_real, p_real_raw=p_raw)
                 for entry, p_raw, p_real in zip(record["faces"], raw, calibrated)]
        judged = judge_faces(faces, record["frames"] or [], video_frame_rate(video.path) if faces else None, cfg)
        for face in faces:
            x, y, width, height = face.box
            face_rows.append({**base, "frame": face.frame, "face": face.number, "person": face.person, "x": x, "y": y,
                              "width": width, "height": height, "detector_confidence": face.detector_confidence,
                              "p_real": face.p_real, "p_real_raw": face.p_real_raw})
        rule_scores = {f"p_real_{rule}": judged.by_rule.get(rule) for rule in RULES}
        video_rows.append({**base, "status": record["status"],
                           "frames": None if record["frames"] is None else len(record["frames"]),
                           "faces": None if record["frames"] is None else len(record["faces"]),
                           "p_real": judged.p_real, "p_real_raw": judged.p_real_raw,
                           "verdict": judged.verdict, "reason": record["reason"],
                           **rule_scores, "persons": len(judged.persons),
                           "segments": flat_cell("segments", [segment_record(s) for s in judged.segments]),
                           "fake_periods": periods_text(video.fake_periods)})


def measure_scores(video_rows, face_rows, cfg):
    """(video table, face table, metrics) of one run's rows on one dataset: metrics.dataset_metrics
    plus "videos_without_score" ({status: [(video, reason)]}), "rules" (rule_metrics) and
    "localization" (localization_of)."""
    video_table, face_table = as_table(video_rows, PER_VIDEO_COLUMNS), as_table(face_rows, PER_FACE_COLUMNS)
    result = dataset_metrics(video_table, face_table, cfg)
    result["videos_without_score"] = unscored_videos(video_table)
    result["rules"] = rule_metrics(video_table, cfg)
    result["localization"] = localization_of(video_table)
    return video_table, face_table, result


def rule_metrics(video_table, cfg):
    """{rule: {"roc_auc", "average_precision", "accuracy"}} of the scored videos under every
    VIDEO_SCORE rule, computed on the same faces, so the rules compare on one footing."""
    scored = video_table[video_table["p_real"].notna()]
    labels = (scored["label"] == "REAL").astype(int).to_numpy()
    rules = {}
    for rule in RULES:
        if scored.empty:
            rules[rule] = None
            continue
        metrics = point_metrics(labels, scored[f"p_real_{rule}"].to_numpy(float), cfg.THRESHOLD, cfg.CALIBRATION_BINS)
        rules[rule] = {key: metrics[key] for key in ("roc_auc", "average_precision", "accuracy")}
    return rules


def periods_text(periods):
    """A video's true fake periods as per_video.csv writes them: "4.0-10.0" (";" between periods,
    "@2" after one that names its person), "-" for a video known to have none, None when unknown."""
    if periods is None:
        return None
    if not periods:
        return "-"
    return ";".join(f"{float(p[0]):g}-{float(p[1]):g}" + (f"@{int(p[2])}" if len(p) > 2 and p[2] else "")
                    for p in periods)


def parse_spans(text):
    """[(start, end, third, fourth)] of a "segments" cell ("2:3.5-9.5:0.920": person, span, P(fake))
    as (start, end, P(fake), person), or of a "fake_periods" cell ("4-10@2") as (start, end, person)."""
    spans = []
    for part in str(text).split(";"):
        if part.count(":") == 2:
            person, span, p_fake = part.split(":")
            start, end = span.split("-")
            spans.append((float(start), float(end), float(p_fake), int(person)))
        elif part not in ("", "-"):
            span, _, person = part.partition("@")
            start, end = span.split("-")
            spans.append((float(start), float(end), int(person) if person else None))
    return spans


def localization_of(video_table):
    """metrics.localization_metrics of the scored videos whose fake periods are known (a REAL
    video without any is taken as known to have none); None when no video has them."""
    predictions, truths = {}, {}
    for row in video_table[video_table["p_real"].notna()].itertuples():
        periods = row.fake_periods if isinstance(row.fake_periods, str) else ("-" if row.label == "REAL" else None)
        if periods is None:
            continue
        truths[row.video] = parse_spans(periods)
        predictions[row.video] = parse_spans(row.segments) if isinstance(row.segments, str) else []
    if not any(truths.values()):
        return None
    return localization_metrics(predictions, truths)


def as_table(rows, columns):
    """A pandas DataFrame of `rows` with exactly `columns`, in that order (empty rows allowed)."""
    import pandas as pd

    return pd.DataFrame(rows, columns=list(columns))


def write_table(path, table):
    """Write a DataFrame as CSV atomically (floats in full, None as an empty cell): the scores of an
    untrained or very confident model can differ only in the 7th decimal, and ranks must survive."""
    write_text_atomic(path, table.to_csv(index=False, lineterminator="\n"))


def unscored_videos(video_table):
    """{status: [(video, reason)]} of the videos without a score (no face, unreadable, failed)."""
    lost = {}
    for row in video_table[video_table["p_real"].isna()].itertuples():
        lost.setdefault(row.status, []).append((row.video, row.reason))
    return lost


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
    """The run folder a model comes from: the parent of <run>/model.keras; for an export
    (training/export.py), the run folder holding its export/ folder, else the parent of the model its
    sidecar JSON names ("source_model"); else None."""
    from deepfake_detect.inference.scoring import MODEL_FILE

    model_path = Path(model_path)
    if model_path.name == MODEL_FILE:
        return model_path.parent
    if (model_path.parent.parent / MODEL_FILE).is_file():
        return model_path.parent.parent
    sidecar = model_path.with_name(model_path.stem + ".json")
    try:
        source = json.loads(sidecar.read_text(encoding="utf-8")).get("source_model")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(source).parent if source else None


def read_training_fakes(model_path):
    """The sentence saying which fakes the run was trained on (TRAIN_FAKES in its settings-03.json),
    or why it is not known."""
    folder = find_run_folder(model_path)
    path = folder / "settings-03.json" if folder else None
    try:
        used = json.loads(path.read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        used = None
    if not isinstance(used, dict):
        return f"fakes trained on: unknown ({model_path} has no readable settings-03.json beside its run)"
    return "trained on " + describe_training_fakes(used.get("TRAIN_FAKES"), used.get("SELF_BLENDED_SHARE") or 0)


def read_seen_videos(model_path):
    """(SeenVideos, None) from the run's split.csv, or (None, why there is no overlap check)."""
    folder = find_run_folder(model_path)
    if folder is None:
        return None, f"{model_path} names no run folder (not a run's model.keras, no sidecar with its source model)"
    path = folder / RUN_SPLIT_FILE
    if not path.is_file():
        return None, f"{path} is missing (stage 03 copies stage 02's split.csv there)"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("split") in SEEN_SPLITS]
    return SeenVideos(path, frozenset(r["video"] for r in rows), frozenset(r["group"] for r in rows)), None


def flag_seen(videos, seen):
    """The names of the `videos` (dataset.Video) the run saw: in its train/val split by name, or
    sharing a source group with a video that was (datasets/split.py's source_group on both sides)."""
    if seen is None:
        return set()
    return {v.name for v in videos if v.name in seen.videos or source_group(v) in seen.groups}
