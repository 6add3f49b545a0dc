"""Plots as PNG: save_figure, which writes every stage's plots (03, 04, 05) atomically, and stage
03's training curves and ROC. Stage 04's timeline and stage 05's panels live beside their stages'
other output (inference/timeline.py, evaluation/report.py).
"""

import io
import math

import numpy as np

from deepfake_detect.files import write_bytes_atomic
from deepfake_detect.metrics import roc_auc


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
    """roc.png: ROC curves of detecting fakes, per crop and per video (metrics.roc_auc in the legend,
    the number metrics.json holds)."""
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
        axis.plot(false_positive, true_positive, label=f"{name} (AUC {roc_auc(level_labels, level_scores):.3f})")
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
