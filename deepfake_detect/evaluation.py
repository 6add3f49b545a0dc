"""Scoring a trained detector on the test split: metrics at frame and video level, plots,
predictions.csv and the model card.

A score is the network's output, P(pristine): 1 = real, 0 = fake. A crop or video is called
real when its score is >= the threshold. A video's score is the mean of its crops' scores.
"""

import hashlib
import io
import math
import platform
from collections import defaultdict

import numpy as np

from deepfake_detect.files import write_bytes_atomic
from deepfake_detect.model import CLASS_NAMES

# Clip scores away from 0 and 1 before the log loss, as Keras' binary cross-entropy does.
LOG_LOSS_EPSILON = 1e-7


def score_metrics(labels, scores, threshold=0.5):
    """Accuracy, ROC AUC, log loss and confusion matrix of scores against 0/1 labels.

    Returns {"count", "accuracy", "roc_auc", "log_loss", "confusion_matrix"}; the matrix's rows
    are true classes and columns predicted ones, both in CLASS_NAMES order (fake, real).
    roc_auc is None when the labels hold one class only (AUC is undefined then).
    """
    from sklearn.metrics import confusion_matrix, log_loss, roc_auc_score

    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if not len(labels):
        raise ValueError("no scores to evaluate")
    predicted = (scores >= threshold).astype(int)
    clipped = np.clip(scores, LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    return {
        "count": int(len(labels)),
        "accuracy": float(np.mean(predicted == labels)),
        "roc_auc": float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else None,
        "log_loss": float(log_loss(labels, clipped, labels=[0, 1])),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
    }


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
    """{"frame": score_metrics per crop, "video": score_metrics per video (mean of its crops)}."""
    per_video = video_scores(videos, labels, scores)
    return {
        "threshold": threshold,
        "frame": score_metrics(labels, scores, threshold),
        "video": score_metrics([v[1] for v in per_video], [v[2] for v in per_video], threshold),
    }


PREDICTION_COLUMNS = ("file", "video", "label", "label_name", "score")


def prediction_rows(files, videos, labels, scores):
    """Rows of predictions.csv: file, video, true label (number and name), score = P(pristine).

    Scores are written with 9 significant digits, enough to give back every float32 exactly
    (read them as float32), so AUC and log loss recomputed from the file equal metrics.json's.
    """
    return [{"file": path, "video": video, "label": int(label), "label_name": CLASS_NAMES[int(label)],
             "score": f"{float(score):.9g}"} for path, video, label, score in zip(files, videos, labels, scores)]


def sha256_of(path):
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_figure(figure, path):
    """Save a matplotlib figure as PNG atomically; shared by every stage's plots (03, 04, 05)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


def plot_curves(history_rows, path):
    """curves.png: loss, accuracy and AUC per epoch, train against val."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    epochs = [row["epoch"] for row in history_rows]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for axis, (name, title) in zip(axes, [("loss", "loss (binary cross-entropy)"),
                                          ("accuracy", "accuracy"), ("auc", "AUC")]):
        for key, style, label in [(name, "-o", "train"), (f"val_{name}", "-s", "val")]:
            values = [row.get(key, math.nan) for row in history_rows]
            axis.plot(epochs, values, style, markersize=3, label=label)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def plot_roc(labels, scores, per_video, path):
    """roc.png: ROC curves of detecting fakes, per crop and per video (AUC in the legend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    figure, axis = plt.subplots(figsize=(5, 5))
    curves = [("crops", labels, scores), ("videos", [v[1] for v in per_video], [v[2] for v in per_video])]
    for name, level_labels, level_scores in curves:
        level_labels = np.asarray(level_labels)
        if len(set(level_labels.tolist())) < 2:
            continue
        # Fake is the positive class here, with 1 - P(pristine) as its score.
        false_positive, true_positive, _ = roc_curve(1 - level_labels, 1 - np.asarray(level_scores))
        area = np.trapezoid(true_positive, false_positive)
        axis.plot(false_positive, true_positive, label=f"{name} (AUC {area:.3f})")
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set_xlabel("real called fake (false positive rate)")
    axis.set_ylabel("fake caught (true positive rate)")
    axis.set_title("ROC on the test split")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="lower right")
    else:
        axis.text(0.5, 0.5, "one class only: no ROC", ha="center")
    save_figure(figure, path)
    plt.close(figure)


def library_versions():
    """{name: version} of what trained the model."""
    import cv2
    import efficientnet
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "efficientnet": efficientnet.__version__, "numpy": np.__version__, "opencv": cv2.__version__}


def _fmt(value):
    return "n/a (one class)" if value is None else f"{value:.4f}"


def metrics_table(metrics):
    """Markdown table: count, accuracy, ROC AUC, log loss and confusion counts per level."""
    rows = ["| level | count | accuracy | ROC AUC | log loss | fake called FAKE | fake called REAL "
            "| real called FAKE | real called REAL |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for level, name in (("frame", "crops"), ("video", "videos")):
        m = metrics[level]
        (fake_fake, fake_real), (real_fake, real_real) = m["confusion_matrix"]
        rows.append(f"| {name} | {m['count']:,} | {m['accuracy']:.4f} | {_fmt(m['roc_auc'])} | "
                    f"{m['log_loss']:.4f} | {fake_fake:,} | {fake_real:,} | {real_fake:,} | {real_real:,} |")
    return "\n".join(rows)


def model_card(info):
    """Text of MODEL_CARD.md from a dict with: run, backbone, input_size, weights, epochs_run,
    best_epoch, counts, metrics, threshold, versions, sha256, settings_file."""
    counts = info["counts"]
    count_rows = ["| split | fake crops (videos) | real crops (videos) |", "|---|---:|---:|"]
    for split, by_class in counts.items():
        cells = [f"{by_class[c]['crops']:,} ({by_class[c]['videos']:,})" for c in CLASS_NAMES]
        count_rows.append(f"| {split} | {' | '.join(cells)} |")
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    size = info["input_size"]
    return f"""# Model card: deepfake detector `{info['run']}`

## What the score means
`model.keras` maps one face crop to a single number, **P(pristine)**: 1 = a real face, 0 = a
deepfake (labels as the original DeepFake-Detect's flow_from_directory gave them: fake = 0,
real = 1). Read it as P(fake) = 1 - score. A crop, or a video (the mean of its crops' scores),
is called FAKE when its score is below the decision threshold **{info['threshold']}**.

## Input
An RGB face crop (a detected face box plus a margin, as stages 01a/01b cut them), resized to **{size} x {size}**
(cv2 INTER_AREA when shrinking, INTER_LINEAR when growing) and scaled to **[0, 1]** (pixel / 255),
as a float32 batch of shape (N, {size}, {size}, 3). No mean/std normalisation.

## Network and training
{info['backbone']} (efficientnet package, global max pooling; starting weights: {info['weights'] or 'none, trained from scratch'})
-> Dense 512 ReLU -> Dropout 0.5 -> Dense 128 ReLU -> Dense 1 sigmoid. Adam, binary cross-entropy,
augmentation of training crops as the original's ImageDataGenerator. Trained {info['epochs_run']} epoch(s);
this file holds the weights of epoch {info['best_epoch']}, the one with the lowest validation loss.

## Training data (face crops, with the number of videos they come from)
{chr(10).join(count_rows)}

## Test metrics (threshold {info['threshold']})
{metrics_table(info['metrics'])}

## Loading it without this repository
```python
import efficientnet.tfkeras  # registers the backbone's swish and FixedDropout layers
import keras
model = keras.models.load_model("model.keras", compile=False)
p_pristine = model.predict(faces)  # faces: float32 (N, {size}, {size}, 3) in [0, 1]
```

## Provenance
- Library versions: {versions}
- SHA-256 of model.keras: `{info['sha256']}`
- Settings used: `{info['settings_file']}`
"""
