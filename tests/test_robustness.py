"""Robustness sweep reporting (deepfake_detect/evaluation/robustness.py) on a small hand-made result table:
the sweep plan, robustness.csv's exact content, the report section's levels and the plot.

    .venv/bin/python -m pytest tests/test_robustness.py -x -q
"""

import cv2
import numpy as np
import pytest

from deepfake_detect.evaluation.perturb import PERTURBATION_TYPES, Perturbation
from deepfake_detect.evaluation.robustness import (first_costly_level, plan_sweep, robustness_markdown, runnable_plan, write_robustness)


def result(kind, level, auc, log_loss, accuracy, faces, **extra):
    return {"type": kind, "level": level, "video_auc": auc, "log_loss": log_loss,
            "accuracy": accuracy, "faces_found": faces, "videos": 20, **extra}


# Shuffled on purpose: the outputs order them. Clean video AUC 0.90.
RESULTS = [
    result("blur", 3, 0.80, 0.5, 0.75, 35),
    result("noise", 2, 0.87, 0.35, 0.8, 39),
    result("clean", 0, 0.90, 0.3, 0.85, 40),
    result("video", 2, 0.84, 0.4, 0.75, 40, ece=0.12),
    result("blur", 1, 0.88, 0.33, 0.85, 40),
    result("noise", 1, 0.90, 0.31, 0.85, 40),
    result("jpeg", 1, 0.83, 0.45, 0.7, 40),
    result("noise", 3, None, 0.9, 0.5, 12),   # AUC undefined there (e.g. one class left)
    result("blur", 2, 0.85, 0.40, 0.8, 38),   # exactly 0.05 below clean: not "more than"
    result("video", 1, 0.86, 0.35, 0.8, 40),
]

EXPECTED_CSV = """\
type,level,parameter,video_auc,auc_drop,log_loss,accuracy,faces_found,videos,ece
none,0,,0.9000,0.0000,0.3000,0.8500,40,20,
noise,1,0.001,0.9000,0.0000,0.3100,0.8500,40,20,
noise,2,0.002,0.8700,0.0300,0.3500,0.8000,39,20,
noise,3,0.005,,,0.9000,0.5000,12,20,
blur,1,7,0.8800,0.0200,0.3300,0.8500,40,20,
blur,2,9,0.8500,0.0500,0.4000,0.8000,38,20,
blur,3,13,0.8000,0.1000,0.5000,0.7500,35,20,
jpeg,1,2,0.8300,0.0700,0.4500,0.7000,40,20,
video,1,30,0.8600,0.0400,0.3500,0.8000,40,20,
video,2,32,0.8400,0.0600,0.4000,0.7500,40,20,0.1200
"""


def test_plan_sweep_orders_types_and_levels_and_leaves_out_level_0():
    plan = plan_sweep(["video", "blur"], [3, 1, 0], seed=5)
    assert plan == [Perturbation("blur", 1, 5), Perturbation("blur", 3, 5),
                    Perturbation("video", 1, 5), Perturbation("video", 3, 5)]
    everything = plan_sweep(None, None)
    assert len(everything) == 35 and {p.kind for p in everything} == set(PERTURBATION_TYPES)
    assert len({p.cache_tag for p in everything}) == 35


def test_plan_sweep_names_bad_types_and_levels():
    with pytest.raises(ValueError, match="unknown perturbation type 'resize'"):
        plan_sweep(["blur", "resize"], [1])
    with pytest.raises(ValueError, match="levels are 1-5, got 6"):
        plan_sweep(["blur"], [1, 6])


def test_runnable_plan_drops_video_compression_without_an_encoder(tmp_path, monkeypatch):
    plan = plan_sweep(["blur", "video"], [1, 2])
    assert runnable_plan(plan) == (plan, {})
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-ffmpeg"))
    runnable, skipped = runnable_plan(plan)
    assert runnable == [Perturbation("blur", 1), Perturbation("blur", 2)]
    assert list(skipped) == ["video"] and "pip install imageio-ffmpeg" in skipped["video"]


def test_robustness_csv_exact_content(tmp_path):
    write_robustness(tmp_path, RESULTS)
    assert (tmp_path / "robustness.csv").read_text(encoding="utf-8") == EXPECTED_CSV


def test_report_names_the_first_level_costing_more_than_005_auc(tmp_path):
    section = write_robustness(tmp_path, RESULTS)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines() if line.startswith("| ")}
    assert rows["Gaussian blur"] == "| Gaussian blur | 0.8800 | 0.8500 | 0.8000 | level 3 (AUC 0.8000) |"
    assert rows["white Gaussian noise"] == "| white Gaussian noise | 0.9000 | 0.8700 | — | none up to level 2 |"
    assert rows["JPEG compression (down/up-scale)"].endswith("| level 1 (AUC 0.8300) |")
    assert rows["video compression (H.264 CRF)"].endswith("| level 2 (AUC 0.8400) |")
    assert "colour saturation" not in section  # not in the results: no row
    assert "level 0, video AUC 0.9000" in section and "![video AUC against perturbation level](robustness.png)" in section


def test_robustness_png_is_a_real_plot(tmp_path):
    write_robustness(tmp_path, RESULTS)
    path = tmp_path / "robustness.png"
    assert path.stat().st_size > 10_000
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 300 and image.shape[1] > 500
    # Coloured lines on white: some pixels are clearly neither white nor grey.
    saturation = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1]
    assert np.count_nonzero(saturation > 100) > 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["robustness.csv", "robustness.png"]


def test_first_costly_level_threshold_and_gaps():
    assert first_costly_level(0.90, {1: 0.86, 2: 0.85, 3: 0.849}) == 3
    assert first_costly_level(0.90, {1: None, 2: 0.70}) == 2
    assert first_costly_level(0.90, {1: 0.95, 2: 0.89}) is None
    assert first_costly_level(0.90, {1: 0.88}, auc_drop=0.01) == 1


def test_report_says_when_a_type_did_not_run_or_auc_is_undefined():
    results = [result("clean", 0, None, 0.3, 0.85, 40), result("blur", 1, None, 0.4, 0.8, 40)]
    section = robustness_markdown(results, skipped={"video": "no libx264 (pip install imageio-ffmpeg)"})
    assert "| Gaussian blur | — | not measurable: the clean AUC is undefined |" in section
    assert "| video compression (H.264 CRF) |  | not run: no libx264 (pip install imageio-ffmpeg) |" in section


def test_results_without_a_clean_row_or_with_duplicates_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no level-0 row"):
        write_robustness(tmp_path, [result("blur", 1, 0.8, 0.4, 0.8, 40)])
    with pytest.raises(ValueError, match="blur level 1 twice"):
        write_robustness(tmp_path, [result("clean", 0, 0.9, 0.3, 0.85, 40), result("blur", 1, 0.8, 0.4, 0.8, 40),
                                    result("blur", 1, 0.7, 0.4, 0.8, 40)])
    assert list(tmp_path.iterdir()) == []
