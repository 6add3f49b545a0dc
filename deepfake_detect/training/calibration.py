"""Temperature scaling of P(real): one number that makes a model's probabilities honest.

Guo et al. 2017 ("On Calibration of Modern Neural Networks", ICML) divide a network's logit by
one temperature T > 0 fitted on held-out data by minimising the negative log-likelihood. Here the
network ends in a sigmoid, so its logit is logit(P(real)) and

    calibrated P(real) = sigmoid(logit(raw P(real)) / T)

T > 1 pulls over-confident scores towards 0.5, T < 1 pushes them out. The order of scores (so
ROC AUC, AP, EER) and every decision at THRESHOLD = 0.5 stay exactly as they were; log loss and
calibration error change. Stage 03 fits T on the val split and writes `calibration.json` beside
model.keras; stages 04 and 05 apply it when CALIBRATE is True. A run without that file (trained
before calibration existed) still loads, and its raw scores are used.
"""

import json
from pathlib import Path

import numpy as np

from deepfake_detect.files import write_text_atomic
# Guo et al. minimise the "negative log-likelihood": the very log loss every stage reports.
from deepfake_detect.metrics import LOG_LOSS_EPSILON, log_loss

CALIBRATION_FILE = "calibration.json"  # beside model.keras
# The search range of T: far wider than any sensible model needs (Guo et al. report 1-3).
TEMPERATURE_RANGE = (0.01, 100.0)


def logit(p_real):
    """log(p / (1 - p)), with p clipped away from 0 and 1 as the log loss clips it."""
    p = np.clip(np.asarray(p_real, dtype=np.float64), LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    return np.log(p) - np.log1p(-p)


def apply_temperature(p_real, temperature):
    """Calibrated P(real) for an array (or list) of raw P(real); unchanged when temperature is None."""
    p_real = np.asarray(p_real, dtype=np.float64)
    if temperature is None:
        return p_real
    return 1.0 / (1.0 + np.exp(-logit(p_real) / float(temperature)))


def fit_temperature(labels, p_real):
    """The T in TEMPERATURE_RANGE minimising the log loss of sigmoid(logit(p) / T) on these scores.

    A 1-D bounded search over log T (scipy's Brent method), so T stays positive. Raises
    ValueError when the labels hold one class only: T would then run to a bound, not to an answer.
    """
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=np.float64)
    if len(set(labels.tolist())) < 2:
        raise ValueError("temperature scaling needs both real and fake scores")
    logits = logit(p_real)

    def loss(log_t):
        return log_loss(labels, 1.0 / (1.0 + np.exp(-logits / np.exp(log_t))))

    low, high = np.log(TEMPERATURE_RANGE)
    found = minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(found.x))


def calibrate_run(run_dir, val_labels, val_scores, test_labels, test_scores):
    """Fit T on the val scores, write RUN_DIR/calibration.json and return its content:
    {"temperature", "fitted_on", "val_crops", "val_log_loss_raw", "val_log_loss_calibrated",
    "test_log_loss_raw", "test_log_loss_calibrated"}. Raises ValueError (one-class val split)."""
    temperature = fit_temperature(val_labels, val_scores)
    info = {
        "temperature": temperature,
        "method": "temperature scaling of logit(P(real)) (Guo et al. 2017), fitted on the val split by log loss",
        "fitted_on": "val", "val_crops": int(len(val_labels)),
        "val_log_loss_raw": log_loss(val_labels, val_scores),
        "val_log_loss_calibrated": log_loss(val_labels, apply_temperature(val_scores, temperature)),
        "test_log_loss_raw": log_loss(test_labels, test_scores),
        "test_log_loss_calibrated": log_loss(test_labels, apply_temperature(test_scores, temperature)),
    }
    write_text_atomic(Path(run_dir) / CALIBRATION_FILE, json.dumps(info, indent=2) + "\n")
    return info


def read_temperature(model_path):
    """(temperature or None, one sentence saying which) for the model at `model_path`.

    Looks for calibration.json beside it; a missing or unreadable file means raw scores.
    """
    path = Path(model_path).parent / CALIBRATION_FILE
    if not path.is_file():
        return None, f"no {CALIBRATION_FILE} beside {Path(model_path).name} (a run trained before calibration): raw scores used"
    try:
        temperature = float(json.loads(path.read_text(encoding="utf-8"))["temperature"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, f"{path} cannot be read ({type(error).__name__}: {error}): raw scores used"
    if not np.isfinite(temperature) or temperature <= 0:
        return None, f"{path}: temperature {temperature} is not a positive number: raw scores used"
    return temperature, f"calibrated with temperature {temperature:.4f} ({path})"


def run_temperature(model_path, cfg):
    """(temperature or None, sentence): read_temperature, or None when CALIBRATE is off."""
    if not cfg.CALIBRATE:
        return None, "CALIBRATE = False: raw scores used"
    return read_temperature(model_path)


def model_card_section(info):
    """MODEL_CARD.md's calibration section from calibrate_run's dict (or None: not calibrated)."""
    if info is None:
        return ("\n## Calibration\nNot calibrated (the val split held one class): "
                "stages 04 and 05 use the raw scores.\n")
    return f"""
## Calibration
Temperature scaling (Guo et al. 2017), fitted on the val split ({info['val_crops']:,} crops):
**T = {info['temperature']:.4f}**, calibrated P(real) = sigmoid(logit(score) / T). Stored in
`{CALIBRATION_FILE}`; stages 04 and 05 apply it when CALIBRATE is True. It changes no ranking and
no decision at threshold 0.5, only how far from 0.5 the scores sit.

| split | log loss, raw | log loss, calibrated |
|---|---:|---:|
| val | {info['val_log_loss_raw']:.4f} | {info['val_log_loss_calibrated']:.4f} |
| test | {info['test_log_loss_raw']:.4f} | {info['test_log_loss_calibrated']:.4f} |
"""
