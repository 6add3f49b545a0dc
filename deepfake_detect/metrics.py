"""Metrics of P(real) scores against labels (1 = real, 0 = fake), for stage 03's test split and
stage 05's evaluations: one implementation of each metric, so a number named alike means the same
in both stages' metrics.json.

One convention for both stages:
- ROC AUC is the Mann-Whitney rank sum (ties count half), the same number whichever class is
  called positive; None when the labels hold one class only.
- Average precision (AP) and the equal error rate (EER) treat FAKE as the positive class, scored
  by P(fake) = 1 - P(real): AP is the area under the precision-recall curve of catching fakes; the
  EER is where the share of fakes missed equals the share of reals called fake, linearly
  interpolated between the two ROC points around that crossing.
- Accuracy, balanced accuracy and the confusion matrix call a score REAL when it is >= THRESHOLD
  (as stage 04 does). The matrix's rows are true classes, its columns predicted ones, both in
  (fake, real) order.
- Log loss clips scores to [1e-7, 1 - 1e-7], as Keras' binary cross-entropy does; calibration's
  temperature fit minimises this same log loss.
- ECE (expected calibration error): equal-width bins of P(real) (CALIBRATION_BINS); the mean over
  bins, weighted by their share of scores, of |share of reals in the bin - mean P(real) in the bin|.
- A video's score is the mean of its faces' (crops') scores (stage 05 may use VIDEO_SCORE's other rule).
- 95% intervals (stage 05): percentile bootstrap over videos (a face-level interval resamples whole
  videos with all their faces, because faces of one video are not independent), seeded.

Stage 03 reports a subset of point_metrics per crop and per video (score_metrics, evaluate_scores);
stage 05 reports all of it, with intervals, per face, per video and per method (dataset_metrics).
"""

from collections import defaultdict

import numpy as np

# Clip scores away from 0 and 1 before the log loss, as Keras' binary cross-entropy does.
LOG_LOSS_EPSILON = 1e-7
ONE_CLASS = "one class only"
# The keys of point_metrics that stage 03 writes into metrics.json, per crop and per video.
TEST_SPLIT_KEYS = ("count", "accuracy", "roc_auc", "log_loss", "confusion_matrix")


# ------------------------------------------------------------------ per-item primitives

def per_item_log_loss(labels, p_real):
    """Each score's own binary log loss, in nats (their mean is the log loss)."""
    labels = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(p_real, dtype=np.float64), LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    return -(labels * np.log(p) + (1 - labels) * np.log1p(-p))


def confusion(labels, predicted_real):
    """[[fake called FAKE, fake called REAL], [real called FAKE, real called REAL]]."""
    labels = np.asarray(labels, dtype=int)
    predicted = np.asarray(predicted_real, dtype=int)
    return [[int(np.sum((labels == truth) & (predicted == guess))) for guess in (0, 1)] for truth in (0, 1)]


def calibration_bins(labels, p_real, bins=15):
    """[(low, high, count, mean P(real), share of reals)] per equal-width bin of P(real), empty bins
    included (count 0, NaNs). The reliability diagram plots these."""
    labels = np.asarray(labels, dtype=np.float64)
    p = np.asarray(p_real, dtype=np.float64)
    index = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        rows.append((b / bins, (b + 1) / bins, count,
                     float(p[inside].mean()) if count else float("nan"),
                     float(labels[inside].mean()) if count else float("nan")))
    return rows


# ------------------------------------------------------------------ point metrics

def log_loss(labels, p_real):
    """Mean binary log loss of P(real) against labels, in nats, scores clipped as Keras clips them."""
    return float(np.mean(per_item_log_loss(labels, p_real)))


def roc_auc(labels, p_real):
    """ROC AUC by the Mann-Whitney rank sum (ties count half); None with one class."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=int)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    ranks = rankdata(np.asarray(p_real, dtype=np.float64))
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def equal_error_rate(labels, p_real):
    """EER of catching fakes: where the fakes-missed rate equals the reals-called-fake rate,
    linearly interpolated between the two ROC points around the crossing. None with one class."""
    from sklearn.metrics import roc_curve

    labels = np.asarray(labels, dtype=int)
    if len(set(labels.tolist())) < 2:
        return None
    false_positive, true_positive, _ = roc_curve(1 - labels, 1 - np.asarray(p_real, dtype=np.float64))
    gap = (1 - true_positive) - false_positive  # falls from 1 to -1 along the curve
    crossing = int(np.argmax(gap <= 0))
    if gap[crossing] == 0 or crossing == 0:
        return float(false_positive[crossing])
    share = gap[crossing - 1] / (gap[crossing - 1] - gap[crossing])
    return float(false_positive[crossing - 1] + share * (false_positive[crossing] - false_positive[crossing - 1]))


def expected_calibration_error(labels, p_real, bins=15):
    """ECE over `bins` equal-width bins of P(real) (see the module docstring)."""
    total = len(labels)
    if not total:
        return None
    return float(sum(count / total * abs(real_share - mean_p)
                     for _, _, count, mean_p, real_share in calibration_bins(labels, p_real, bins) if count))


def point_metrics(labels, p_real, threshold, bins=15):
    """Every single-number metric of P(real) against labels; see the module docstring.

    Returns {"count", "real", "fake", "roc_auc", "average_precision", "eer", "accuracy",
    "balanced_accuracy", "log_loss", "ece", "confusion_matrix", "null_reason"}; the three
    ranking metrics are None, with null_reason saying why, when only one class is present.
    """
    from sklearn.metrics import average_precision_score

    labels = np.asarray(labels, dtype=int)
    p_real = np.asarray(p_real, dtype=np.float64)
    if not len(labels):
        raise ValueError("no scores to evaluate")
    real, fake = int(labels.sum()), int(len(labels) - labels.sum())
    two_classes = real > 0 and fake > 0
    predicted = (p_real >= threshold).astype(int)
    recalls = [float(np.mean(predicted[labels == c] == c)) for c in (0, 1) if np.any(labels == c)]
    return {
        "count": int(len(labels)), "real": real, "fake": fake,
        "roc_auc": roc_auc(labels, p_real),
        "average_precision": float(average_precision_score(1 - labels, 1 - p_real)) if two_classes else None,
        "eer": equal_error_rate(labels, p_real),
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(np.mean(recalls)),
        "log_loss": log_loss(labels, p_real),
        "ece": expected_calibration_error(labels, p_real, bins),
        "confusion_matrix": confusion(labels, predicted),
        "null_reason": None if two_classes else
        f"{ONE_CLASS} ({real:,} real, {fake:,} fake): ROC AUC, AP and EER are undefined",
    }


# ------------------------------------------------------------------ stage 03: the test split

def score_metrics(labels, scores, threshold=0.5):
    """Stage 03's metrics of scores against 0/1 labels: point_metrics' TEST_SPLIT_KEYS,
    {"count", "accuracy", "roc_auc", "log_loss", "confusion_matrix"}.

    roc_auc is None when the labels hold one class only (AUC is undefined then).
    Raises ValueError when there is no score.
    """
    metrics = point_metrics(labels, scores, threshold)
    return {key: metrics[key] for key in TEST_SPLIT_KEYS}


def video_scores(videos, labels, scores):
    """Per-crop (video, label, score) -> [(video, label, mean score, crops)], sorted by video.

    Videos are keyed by name and label, so a name that somehow occurs in both classes is
    counted as two videos rather than mixing their labels.
    """
    grouped = defaultdict(list)
    for video, label, score in zip(videos, labels, scores):
        grouped[(video, int(label))].append(float(score))
    return [(video, label, float(np.mean(values)), len(values))
            for (video, label), values in sorted(grouped.items())]


def evaluate_scores(videos, labels, scores, threshold=0.5):
    """{"threshold", "frame": score_metrics per crop, "video": score_metrics per video (the mean of
    its crops' scores)}: what stage 03 writes into metrics.json."""
    per_video = video_scores(videos, labels, scores)
    return {
        "threshold": threshold,
        "frame": score_metrics(labels, scores, threshold),
        "video": score_metrics([v[1] for v in per_video], [v[2] for v in per_video], threshold),
    }


# ------------------------------------------------------------------ stage 05: levels and datasets

def bootstrap_intervals(labels, p_real, groups, samples=1000, seed=1377, level=0.95):
    """Percentile bootstrap intervals of ROC AUC and log loss, resampling whole groups (videos).

    `groups[i]` names the video of score i; at video level each score is its own group.
    Returns {"roc_auc": [low, high] or None, "log_loss": [low, high], "samples", "seed"}.
    Resamples that draw one class only give no AUC and are left out of its interval.
    """
    labels = np.asarray(labels, dtype=int)
    p_real = np.asarray(p_real, dtype=np.float64)
    _, group_index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    members = [np.flatnonzero(group_index == g) for g in range(group_index.max() + 1)]
    # Each score's loss once; a resample's log loss is then the mean of the drawn ones.
    losses = per_item_log_loss(labels, p_real)
    rng = np.random.default_rng(seed)
    aucs, mean_losses = [], []
    two_classes = len(set(labels.tolist())) == 2
    for _ in range(samples):
        drawn = rng.integers(0, len(members), len(members))
        chosen = np.concatenate([members[g] for g in drawn])
        mean_losses.append(losses[chosen].mean())
        if two_classes:
            auc = roc_auc(labels[chosen], p_real[chosen])
            if auc is not None:
                aucs.append(auc)
    tail = (1 - level) / 2 * 100
    interval = lambda values: [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]  # noqa: E731
    return {"roc_auc": interval(aucs) if aucs else None, "log_loss": interval(mean_losses),
            "samples": samples, "seed": seed}


def level_metrics(labels, p_real, p_real_raw, groups, cfg):
    """point_metrics of the reported scores, plus the raw scores' log loss and ECE (before
    calibration) and the bootstrap intervals by video."""
    metrics = point_metrics(labels, p_real, cfg.THRESHOLD, cfg.CALIBRATION_BINS)
    metrics["log_loss_raw"] = log_loss(labels, p_real_raw)
    metrics["ece_raw"] = expected_calibration_error(labels, p_real_raw, cfg.CALIBRATION_BINS)
    intervals = bootstrap_intervals(labels, p_real, groups, cfg.BOOTSTRAP_SAMPLES, cfg.BOOTSTRAP_SEED)
    metrics["roc_auc_ci95"], metrics["log_loss_ci95"] = intervals["roc_auc"], intervals["log_loss"]
    return metrics


def dataset_metrics(per_video, per_face, cfg):
    """Metrics of one run on one dataset from stage 05's tables (pandas DataFrames with columns
    video, label, method, p_real, p_real_raw; per_video also status).

    Returns {"face": ..., "video": ..., "methods": {method: {"face", "video"}}}, each level a
    level_metrics dict, or None when that level has no score at all. Videos without a score (no
    face found, unreadable) are not in the video metrics: they have no P(real) to judge, and a
    stand-in score would be a made-up answer. Per method: that method's fakes against every real.
    """
    scored_videos = per_video[per_video["p_real"].notna()]
    result = {"face": _level(per_face, cfg), "video": _level(scored_videos, cfg), "methods": {}}
    for method in sorted(m for m in per_video["method"].dropna().unique() if m != ""):
        result["methods"][method] = {"face": _level(per_face[_real_or(per_face, method)], cfg),
                                     "video": _level(scored_videos[_real_or(scored_videos, method)], cfg)}
    return result


def _real_or(frame, method):
    """Rows of reals, and of fakes made by `method`."""
    return (frame["label"] == "REAL") | (frame["method"] == method)


def _level(frame, cfg):
    """level_metrics of the scored rows of one table (faces or videos); None when none is scored."""
    frame = frame[frame["p_real"].notna()]
    if frame.empty:
        return None
    labels = (frame["label"] == "REAL").astype(int).to_numpy()
    return level_metrics(labels, frame["p_real"].to_numpy(float), frame["p_real_raw"].to_numpy(float),
                         frame["video"].astype(str).to_numpy(), cfg)


# ------------------------------------------------------------ temporal localization (stage 05)
#
# As the temporal forgery localization papers on LAV-DF report it (BA-TFD, UMMAFormer), after
# ActivityNet's detection metrics: predicted fake segments of every video, pooled and ranked by
# their score, are matched greedily to the true fake periods of their own video (each true period
# at most once, a prediction to the unmatched period it overlaps most); AP at a temporal IoU is the
# area under the interpolated precision-recall curve of those matches. AR@N: per video, the share
# of true periods that one of its N best predictions overlaps by the IoU, averaged over the IoUs
# 0.50, 0.55, ..., 0.95 and over true periods. A period labelled with a person matches only that
# person's segments.

LOCALIZATION_IOUS = tuple(round(0.5 + 0.05 * step, 2) for step in range(10))


def temporal_iou(a, b):
    """Intersection over union of two (start, end) spans in seconds; 0 when they do not overlap."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def _may_match(prediction, truth):
    """A prediction (start, end, score, person) may match a truth (start, end[, person])."""
    return len(truth) < 3 or truth[2] is None or truth[2] == prediction[3]


def localization_ap(predictions, truths, iou):
    """AP at temporal IoU `iou`. predictions: {video: [(start, end, score, person)]}; truths:
    {video: [(start, end) or (start, end, person)]} for every video whose periods are known (a
    real video: []). Predictions on videos without known periods are ignored. None without any
    true period."""
    total = sum(len(periods) for periods in truths.values())
    if not total:
        return None
    ranked = sorted(((p[2], video, p) for video, found in predictions.items() if video in truths for p in found),
                    key=lambda item: -item[0])
    used = {video: [False] * len(periods) for video, periods in truths.items()}
    hits = []
    for _, video, prediction in ranked:
        best, best_iou = None, iou
        for number, truth in enumerate(truths[video]):
            overlap = temporal_iou(prediction[:2], truth[:2])
            if not used[video][number] and _may_match(prediction, truth) and overlap >= best_iou:
                best, best_iou = number, overlap
        if best is not None:
            used[video][best] = True
        hits.append(best is not None)
    if not hits:
        return 0.0
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(hits) + 1)
    recall = true_positives / total
    # Interpolated: precision at each recall is the best precision at that recall or beyond.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * precision))


def localization_ar(predictions, truths, top=10, ious=LOCALIZATION_IOUS):
    """AR@`top`: mean over `ious` of the share of true periods found by one of their video's `top`
    best predictions (same inputs as localization_ap). None without any true period."""
    total = sum(len(periods) for periods in truths.values())
    if not total:
        return None
    recalls = []
    for threshold in ious:
        found = 0
        for video, periods in truths.items():
            best = sorted(predictions.get(video, []), key=lambda p: -p[2])[:top]
            found += sum(any(_may_match(p, truth) and temporal_iou(p[:2], truth[:2]) >= threshold for p in best)
                         for truth in periods)
        recalls.append(found / total)
    return float(np.mean(recalls))


def localization_metrics(predictions, truths):
    """{"videos", "fake_periods", "ap_0.5", "ap_0.75", "ap_0.95", "ar_10"}: see localization_ap
    and localization_ar; None when no video has its fake periods."""
    if not truths:
        return None
    return {"videos": len(truths), "fake_periods": sum(len(periods) for periods in truths.values()),
            **{f"ap_{iou}": localization_ap(predictions, truths, iou) for iou in (0.5, 0.75, 0.95)},
            "ar_10": localization_ar(predictions, truths)}
