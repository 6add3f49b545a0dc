"""MODEL_CARD.md: what a trained run's score means, its input, training data, test metrics and provenance.
"""

import platform

import numpy as np

from deepfake_detect.models.network import CLASS_NAMES


def library_versions():
    """{name: version} of what trained the model."""
    import cv2
    import efficientnet
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "efficientnet": efficientnet.__version__, "numpy": np.__version__, "opencv": cv2.__version__}


def _fmt(value):
    """A metric with 4 decimals; None (ROC AUC of a one-class split) said in words."""
    return "n/a (one class)" if value is None else f"{value:.4f}"


def metrics_table(metrics):
    """Markdown table of stage 03's test metrics (metrics.evaluate_scores' dict): count, accuracy,
    ROC AUC, log loss and confusion counts, a row per crop level and video level."""
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
