"""deepfake_detect/metrics.py: one ROC AUC, log loss, EER and ECE for stages 03 and 05.

    .venv/bin/pytest tests/test_metrics.py

The same per-crop scores go through stage 03's path (evaluate_scores, as 03-train_cnn.py calls
it) and stage 05's (dataset_metrics on per_face / per_video tables built as
evaluation/scores.py builds them) and must give identical numbers; the single metrics are checked
against hand computations with ties, and calibration's fit objective against metrics' log loss.
No model, no files but one calibration.json in tmp_path; a second or two.
"""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from deepfake_detect import metrics
from deepfake_detect.training import calibration
from deepfake_detect.evaluation.scores import PER_FACE_COLUMNS, PER_VIDEO_COLUMNS, as_table
from deepfake_detect.inference.verdicts import combine_face_scores
from deepfake_detect.metrics import evaluate_scores
from deepfake_detect.settings import load_config

SHARED_KEYS = ("count", "accuracy", "roc_auc", "log_loss", "confusion_matrix")


def crop_scores():
    """[(video, label "REAL"/"FAKE", method, [face P(real)])] of 24 videos, 1 to 5 faces each.

    Scores are float32 (as the network gives them) rounded to 2 decimals, so many tie, across
    classes too; some sit exactly on THRESHOLD 0.5 and at 0 and 1, where the log loss clips.
    """
    rng = np.random.default_rng(16)
    videos = []
    for i in range(24):
        label, method = ("REAL", "") if i % 3 == 0 else ("FAKE", ("Deepfakes", "FaceSwap")[i % 2])
        centre = 0.65 if label == "REAL" else 0.4
        faces = np.clip(np.round(rng.normal(centre, 0.25, rng.integers(1, 6)), 2), 0, 1).astype(np.float32)
        videos.append((f"video_{i:02d}", label, method, faces.tolist()))
    videos[0][3][0], videos[1][3][0], videos[2][3][0] = 1.0, 0.0, 0.5
    return videos


def stage05_tables(videos, cfg):
    """(per_video, per_face) DataFrames with extract.py's columns, as score_dataset fills them for
    a run without calibration (p_real = p_real_raw), plus one video where no face was found."""
    video_rows, face_rows = [], []
    for name, label, method, faces in videos:
        base = {"run": "run", "dataset": "shared", "video": name, "label": label, "method": method}
        face_rows += [{**base, "frame": k, "face": 0, "x": 0, "y": 0, "width": 64, "height": 64,
                       "detector_confidence": 0.99, "p_real": p, "p_real_raw": p} for k, p in enumerate(faces)]
        p_video = combine_face_scores(faces, cfg.VIDEO_SCORE)
        video_rows.append({**base, "status": "scored", "frames": len(faces), "faces": len(faces),
                           "p_real": p_video, "p_real_raw": p_video, "verdict": "", "reason": ""})
    video_rows.append({"run": "run", "dataset": "shared", "video": "video_no_face", "label": "FAKE",
                       "method": "Deepfakes", "status": "no face", "frames": 20, "faces": 0, "p_real": None,
                       "p_real_raw": None, "verdict": "", "reason": "no face found in 20 frames"})
    return as_table(video_rows, PER_VIDEO_COLUMNS), as_table(face_rows, PER_FACE_COLUMNS)


def test_stage03_and_stage05_give_identical_metrics_for_the_same_scores():
    cfg = load_config()
    cfg.BOOTSTRAP_SAMPLES = 20  # intervals are stage 05's alone; they are not compared here
    assert cfg.VIDEO_SCORE == "mean", "stage 03 scores a video by the mean of its crops"
    videos = crop_scores()
    crop_videos = [name for name, _, _, faces in videos for _ in faces]
    crop_labels = [int(label == "REAL") for _, label, _, faces in videos for _ in faces]
    crop_p_real = [p for _, _, _, faces in videos for p in faces]

    stage03 = evaluate_scores(crop_videos, crop_labels, crop_p_real, cfg.THRESHOLD)
    stage05 = metrics.dataset_metrics(*stage05_tables(videos, cfg), cfg)

    for level03, level05 in (("frame", "face"), ("video", "video")):
        for key in SHARED_KEYS:
            assert stage03[level03][key] == stage05[level05][key], (level05, key)
    assert stage05["video"]["count"] == len(videos), "the video without a face has no score to judge"
    # The shared numbers are real ones: ties across classes, both classes called, scores clipped.
    assert 0.5 < stage03["frame"]["roc_auc"] < 1 and 0 < stage03["video"]["accuracy"] < 1
    assert stage03["frame"]["roc_auc"] == pytest.approx(roc_auc_score(crop_labels, crop_p_real), abs=1e-12)


def test_roc_auc_counts_ties_as_half_a_pair():
    # Reals (1) 0.5, 0.5, 0.9 against fakes (0) 0.5, 0.2: of the 6 real-fake pairs, 0.9 beats both
    # fakes (2), each real 0.5 beats 0.2 (2) and ties the fake 0.5 (2 x 1/2): 5 / 6.
    # The rank sum's numerator is exact (half-integers), so its one division gives the double
    # nearest 5/6; sklearn's trapezoids agree to within rounding (here 1 unit in the last place).
    labels, p_real = [0, 0, 1, 1, 1], [0.5, 0.2, 0.5, 0.5, 0.9]
    assert metrics.roc_auc(labels, p_real) == 5 / 6
    assert roc_auc_score(labels, p_real) == pytest.approx(5 / 6, abs=1e-15)
    assert metrics.score_metrics(labels, p_real)["roc_auc"] == metrics.roc_auc(labels, p_real)
    # Every score tied: every pair is half right.
    assert metrics.roc_auc([0, 1, 0, 1], [0.3] * 4) == 0.5
    assert metrics.roc_auc([1, 1], [0.3, 0.8]) is None


def test_log_loss_is_calibrations_objective_and_clips_like_keras(tmp_path):
    # A real at 0.8 and a fake at 0.4: -(ln 0.8 + ln 0.6) / 2.
    assert metrics.log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    # A real scored 0 costs -ln(1e-7), not infinity.
    assert metrics.log_loss([1], [0.0]) == pytest.approx(-math.log(1e-7))
    labels, p_real = [1, 0, 1, 1, 0, 0], [0.9, 0.35, 0.0, 0.62, 1.0, 0.5]
    loss = metrics.log_loss(labels, p_real)
    assert metrics.point_metrics(labels, p_real, 0.5)["log_loss"] == loss
    assert metrics.score_metrics(labels, p_real)["log_loss"] == loss
    info = calibration.calibrate_run(tmp_path, labels, p_real, labels[::-1], p_real)
    assert info["val_log_loss_raw"] == loss and info["test_log_loss_raw"] == metrics.log_loss(labels[::-1], p_real)
    assert info["val_log_loss_calibrated"] == metrics.log_loss(
        labels, calibration.apply_temperature(p_real, info["temperature"]))


def test_eer_and_ece_at_ties_and_edges():
    # One fake and one real, tied: the ROC goes straight from (0, 0) to (1, 1), and the crossing
    # of fakes missed (1 -> 0) and reals called fake (0 -> 1) is half way.
    assert metrics.equal_error_rate([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    # P(real) = 1.0 falls in the last of 15 bins, with 0.95: mean 0.975, all real: |1 - 0.975|.
    assert metrics.expected_calibration_error([1, 1], [1.0, 0.95], 15) == pytest.approx(0.025)
    # A fake at 0.0 is exactly calibrated (bin 1 of 15); a real at 0.5 is 0.5 off (bin 8): half
    # the scores, 0.5 off each.
    assert metrics.expected_calibration_error([0, 1], [0.0, 0.5], 15) == pytest.approx(0.25)


def test_importing_the_metrics_modules_loads_no_heavy_library():
    code = ("import sys\n"
            "import deepfake_detect.metrics, deepfake_detect.training.calibration, deepfake_detect.plots\n"
            "import deepfake_detect.training.model_card, deepfake_detect.evaluation.report\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "[]"
