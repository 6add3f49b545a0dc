"""Stage 05 (05-evaluate_model.py, deepfake_detect/evaluation/, metrics.py,
training/calibration.py) on the built-in sample and the two real DFDC clips.

    .venv/bin/pytest tests/test_05_evaluate.py

The dataset is the built-in sample (python -m deepfake_detect.sample, 2 videos per person, 2 s)
with its fakes split between two named methods, plus a plain-colour video (no face) and a text
file named .mp4 (unreadable). The models are untrained EfficientNet-B0s at 32 px (weights=None,
fixed seeds, nothing downloaded); one run carries a calibration.json. Every metric is checked
against sklearn or a hand computation; the DFDC clips (both FAKE) are the real one-class case
and are skipped when DFDC_SAMPLE_DIR is unset.
"""

import importlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (average_precision_score, balanced_accuracy_score, confusion_matrix, log_loss,
                             roc_auc_score)

from conftest import write_config, write_test_video
from deepfake_detect import metrics
from deepfake_detect.training import calibration
from deepfake_detect.evaluation import extract
from deepfake_detect.settings import load_config

stage05 = importlib.import_module("05-evaluate_model")

INPUT_SIZE = 32
TEMPERATURE = 2.0  # the calibration.json of run "calibrated"
BIAS = 0.5         # added to the models' last bias, so raw P(real) ~ 0.62 and calibration shows


def build_run(run_dir, seed, temperature=None):
    """An untrained B0 at INPUT_SIZE saved as run_dir/model.keras (+ calibration.json)."""
    import keras

    from deepfake_detect.models.network import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(input_size=INPUT_SIZE, weights=None)
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel, bias + BIAS])
    run_dir.mkdir(parents=True)
    model.save(run_dir / "model.keras")
    if temperature:
        (run_dir / calibration.CALIBRATION_FILE).write_text(json.dumps({"temperature": temperature}))
    return run_dir


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The sample dataset (with methods, a no-face and an unreadable video), two runs, a config."""
    from deepfake_detect.sample import main as make_sample

    root = tmp_path_factory.mktemp("stage05")
    videos = root / "sample"
    assert make_sample([str(videos), "--videos-per-person", "2", "--seconds", "2"]) in (0, None)
    metadata = json.loads((videos / "metadata.json").read_text())
    fakes = sorted(name for name, entry in metadata.items() if entry["label"] == "FAKE")
    for number, name in enumerate(fakes):
        metadata[name]["method"] = ("swap-a", "swap-b")[number % 2]
    write_test_video(videos / "blank.mp4", frame_count=30, fps=15.0)
    metadata["blank.mp4"] = {"label": "FAKE", "method": "swap-a"}
    (videos / "broken.mp4").write_text("not a video")
    metadata["broken.mp4"] = {"label": "REAL"}
    (videos / "metadata.json").write_text(json.dumps(metadata))
    runs = root / "runs"
    build_run(runs / "plain", seed=1)
    build_run(runs / "calibrated", seed=2, temperature=TEMPERATURE)
    config = write_config(root / "cfg.py", RUNS_DIR=runs, EVALS_DIR=root / "evals", OUTPUT_DIR=root / "data",
                          MTCNN_WORKERS=1, BOOTSTRAP_SAMPLES=200)
    return {"root": root, "videos": videos, "metadata": metadata, "runs": runs, "config": config,
            "cfg": load_config(config), "fakes": fakes}


@pytest.fixture(scope="module")
def evaluated(workspace):
    """Stage 05 run once with both runs on the sample: (exit code, stdout, output folder)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = stage05.main(["--config", str(workspace["config"]), "--run", "plain", "--run", "calibrated",
                             "--dataset", f"sample={workspace['videos']}", "--name", "first"])
    return code, out.getvalue(), workspace["root"] / "evals" / "first"


# ------------------------------------------------------------------ metrics, by hand and sklearn

def test_point_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    p_real = np.clip(0.5 + 0.3 * (labels - 0.5) + rng.normal(0, 0.25, 200), 0, 1)
    p_real[:10] = 0.5  # ties
    got = metrics.point_metrics(labels, p_real, threshold=0.4, bins=15)
    predicted = (p_real >= 0.4).astype(int)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(labels, p_real), abs=1e-12)
    assert got["average_precision"] == pytest.approx(average_precision_score(1 - labels, 1 - p_real), abs=1e-12)
    assert got["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert got["log_loss"] == pytest.approx(log_loss(labels, np.clip(p_real, 1e-7, 1 - 1e-7)), abs=1e-9)
    assert got["confusion_matrix"] == confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    assert (got["count"], got["real"], got["fake"]) == (200, labels.sum(), 200 - labels.sum())


def test_eer_ece_and_ap_by_hand():
    # Fakes (label 0) score P(fake) 0.9, 0.8, 0.3; reals 0.7, 0.2. Along the ROC the gap
    # (fakes missed - reals called fake) goes 1/3 at (fpr 0, tpr 2/3), -1/6 at (1/2, 2/3):
    # it crosses 2/3 of the way, at fpr = 1/3, where fnr = 1/3 too.
    labels = np.array([0, 0, 0, 1, 1])
    p_real = 1 - np.array([0.9, 0.8, 0.3, 0.7, 0.2])
    assert metrics.equal_error_rate(labels, p_real) == pytest.approx(1 / 3)
    assert metrics.equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == pytest.approx(0.5)
    assert metrics.equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    # AP of catching fakes: ranked by P(fake) 0.9 F, 0.8 F, 0.7 R, 0.3 F, 0.2 R -> precision at
    # each fake: 1, 1, 3/4; AP = (1 + 1 + 3/4) / 3.
    assert metrics.point_metrics(labels, p_real, 0.5)["average_precision"] == pytest.approx(2.75 / 3)
    # One score per bin of 15: |1 - 0.05| + |0 - 0.1| + |1 - 0.95| + |1 - 0.9| = 1.2, over 4.
    assert metrics.expected_calibration_error([1, 0, 1, 1], [0.05, 0.1, 0.95, 0.9], 15) == pytest.approx(0.3)
    # Two scores in one bin: |share of reals 1/2 - mean P(real) 0.62| = 0.12.
    assert metrics.expected_calibration_error([1, 0], [0.6, 0.64], 15) == pytest.approx(0.12)


def test_one_class_leaves_ranking_metrics_null_with_the_reason():
    got = metrics.point_metrics([0, 0, 0], [0.2, 0.7, 0.4], 0.5)
    assert got["roc_auc"] is None and got["average_precision"] is None and got["eer"] is None
    assert got["null_reason"].startswith("one class only (0 real, 3 fake)")
    assert got["accuracy"] == pytest.approx(2 / 3) and got["balanced_accuracy"] == pytest.approx(2 / 3)
    assert got["log_loss"] == pytest.approx(log_loss([0, 0, 0], [0.2, 0.7, 0.4], labels=[0, 1]))
    assert got["confusion_matrix"] == [[2, 1], [0, 0]]
    intervals = metrics.bootstrap_intervals([0, 0, 0], [0.2, 0.7, 0.4], ["a", "b", "c"], samples=50)
    assert intervals["roc_auc"] is None and intervals["log_loss"][0] <= intervals["log_loss"][1]


def test_bootstrap_resamples_whole_videos_with_a_seed():
    rng = np.random.default_rng(1)
    videos = np.repeat([f"v{i}" for i in range(30)], 4)
    labels = np.repeat(rng.integers(0, 2, 30), 4)
    p_real = np.clip(0.3 + 0.4 * labels + rng.normal(0, 0.2, 120), 0.01, 0.99)
    got = metrics.bootstrap_intervals(labels, p_real, videos, samples=300, seed=7)
    assert got == metrics.bootstrap_intervals(labels, p_real, videos, samples=300, seed=7)
    assert got != metrics.bootstrap_intervals(labels, p_real, videos, samples=300, seed=8)
    # The same resamples by hand, with sklearn: draw 30 videos with replacement, take all their faces.
    draw = np.random.default_rng(7)
    members = [np.flatnonzero(videos == v) for v in np.unique(videos)]
    aucs, losses = [], []
    for _ in range(300):
        chosen = np.concatenate([members[g] for g in draw.integers(0, 30, 30)])
        losses.append(log_loss(labels[chosen], p_real[chosen], labels=[0, 1]))
        if len(set(labels[chosen])) == 2:
            aucs.append(roc_auc_score(labels[chosen], p_real[chosen]))
    assert got["roc_auc"] == pytest.approx(np.percentile(aucs, [2.5, 97.5]).tolist(), abs=1e-12)
    assert got["log_loss"] == pytest.approx(np.percentile(losses, [2.5, 97.5]).tolist(), abs=1e-9)
    assert got["roc_auc"][0] < roc_auc_score(labels, p_real) < got["roc_auc"][1]


def test_temperature_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, 20000)
    true_t = 2.5  # labels drawn from sigmoid(logit / 2.5): the raw sigmoid(logit) is over-confident
    labels = (rng.random(20000) < 1 / (1 + np.exp(-logits / true_t))).astype(int)
    raw = 1 / (1 + np.exp(-logits))
    fitted = calibration.fit_temperature(labels, raw)
    assert fitted == pytest.approx(true_t, rel=0.05)
    calibrated = calibration.apply_temperature(raw, fitted)
    assert metrics.log_loss(labels, calibrated) < metrics.log_loss(labels, raw)
    assert metrics.expected_calibration_error(labels, calibrated) < metrics.expected_calibration_error(labels, raw)
    np.testing.assert_allclose(calibration.apply_temperature([0.5, 0.88], None), [0.5, 0.88])
    assert calibration.apply_temperature([0.8], 2.0)[0] == pytest.approx(1 / (1 + math.exp(-math.log(4) / 2)))
    with pytest.raises(ValueError, match="both real and fake"):
        calibration.fit_temperature([1, 1], [0.3, 0.9])


def test_calibration_file_round_trip(tmp_path):
    val = ([0, 0, 1, 1, 1, 0], [0.1, 0.45, 0.9, 0.6, 0.95, 0.7])
    info = calibration.calibrate_run(tmp_path, *val, [0, 1], [0.2, 0.8])
    assert calibration.read_temperature(tmp_path / "model.keras")[0] == pytest.approx(info["temperature"])
    assert info["val_log_loss_calibrated"] <= info["val_log_loss_raw"] + 1e-12
    missing, note = calibration.read_temperature(tmp_path / "elsewhere" / "model.keras")
    assert missing is None and "raw scores used" in note
    (tmp_path / calibration.CALIBRATION_FILE).write_text('{"temperature": -1}')
    assert calibration.read_temperature(tmp_path / "model.keras")[0] is None


def test_methods_from_metadata_and_fake_subfolders(tmp_path):
    for path in ("real/a.mp4", "fake/b.mp4", "fake/Deepfakes/000_003.mp4", "fake/Face2Face/000_003.mp4"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x")
    cfg = load_config()
    dataset = extract.load_dataset("ff", tmp_path, cfg)
    assert {(v.name, v.label, v.method) for v in dataset.videos} == {
        ("a", "REAL", None), ("b", "FAKE", None), ("Deepfakes_000_003", "FAKE", "Deepfakes"),
        ("Face2Face_000_003", "FAKE", "Face2Face")}


# ------------------------------------------------------------------ the stage

def test_stage_writes_every_output_and_the_matrix(evaluated, workspace):
    code, out, folder = evaluated
    assert code == 0
    for name in ("metrics.json", "per_video.csv", "per_face.csv", "report.md", "settings-05.json",
                 "plots-plain-sample.png", "plots-calibrated-sample.png"):
        assert (folder / name).is_file(), name
    document = json.loads((folder / "metrics.json").read_text())
    videos = len(workspace["metadata"])
    assert document["datasets"]["sample"]["videos"] == videos
    assert document["datasets"]["sample"]["extracted"] == videos and document["datasets"]["sample"]["reused"] == 0
    assert "video ROC AUC / log loss (runs x datasets):" in out
    for run in ("plain", "calibrated"):
        video = document["results"][run]["sample"]["video"]
        assert f"{video['roc_auc']:.3f} / {video['log_loss']:.3f}" in out
        # Every VIDEO_SCORE rule side by side; "mean" is the rule these videos were scored by.
        rules = document["results"][run]["sample"]["rules"]
        assert set(rules) == {"mean", "confident", "person_max", "segment"}
        assert rules["mean"]["roc_auc"] == video["roc_auc"]
        assert f"{run} on sample: video AUC by rule: mean {video['roc_auc']:.3f}, confident" in out
    report = (folder / "report.md").read_text()
    assert "## `calibrated` on `sample`" in report and "![plain on sample](plots-plain-sample.png)" in report
    assert f"calibrated with temperature {TEMPERATURE:.4f}" in report and "raw scores used" in report
    image = cv2.imread(str(folder / "plots-plain-sample.png"))
    assert image is not None and image.shape[0] > 500


def test_metrics_json_agrees_with_the_csv_tables(evaluated, workspace):
    _, _, folder = evaluated
    document = json.loads((folder / "metrics.json").read_text())
    per_video, per_face = pd.read_csv(folder / "per_video.csv"), pd.read_csv(folder / "per_face.csv")
    cfg = workspace["cfg"]
    for run in ("plain", "calibrated"):
        faces = per_face[per_face["run"] == run]
        videos = per_video[(per_video["run"] == run) & per_video["p_real"].notna()]
        for level, table in (("face", faces), ("video", videos)):
            got = document["results"][run]["sample"][level]
            labels = (table["label"] == "REAL").astype(int)
            assert got["count"] == len(table)
            assert got["roc_auc"] == pytest.approx(roc_auc_score(labels, table["p_real"]), abs=1e-9)
            assert got["log_loss"] == pytest.approx(log_loss(labels, table["p_real"]), abs=1e-9)
            assert got["log_loss_raw"] == pytest.approx(log_loss(labels, table["p_real_raw"]), abs=1e-9)
            predicted = (table["p_real"] >= cfg.THRESHOLD).astype(int)
            assert got["confusion_matrix"] == confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
            assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
            assert got["ece_raw"] == pytest.approx(metrics.expected_calibration_error(labels, table["p_real_raw"]))
            low, high = got["roc_auc_ci95"]
            assert 0 <= low <= high <= 1


def test_video_scores_combine_faces_and_apply_the_run_temperature(evaluated):
    _, _, folder = evaluated
    per_video, per_face = pd.read_csv(folder / "per_video.csv"), pd.read_csv(folder / "per_face.csv")
    for run, temperature in (("plain", None), ("calibrated", TEMPERATURE)):
        faces = per_face[per_face["run"] == run]
        expected = calibration.apply_temperature(faces["p_real_raw"], temperature)
        np.testing.assert_allclose(faces["p_real"], expected, atol=1e-9)
        if temperature:
            assert (faces["p_real"] < faces["p_real_raw"] - 0.03).all(), "T = 2 pulls P(real) ~0.62 towards 0.5"
        mean_by_video = faces.groupby("video")["p_real"].mean()
        scored = per_video[(per_video["run"] == run) & per_video["p_real"].notna()].set_index("video")
        np.testing.assert_allclose(scored["p_real"], mean_by_video[scored.index], atol=1e-9)
        assert (scored["faces"] == faces.groupby("video").size()[scored.index]).all()


def test_every_metric_per_method(evaluated, workspace):
    _, _, folder = evaluated
    document = json.loads((folder / "metrics.json").read_text())
    per_video = pd.read_csv(folder / "per_video.csv", keep_default_na=False, na_values=[""])
    result = document["results"]["plain"]["sample"]
    assert set(result["methods"]) == {"swap-a", "swap-b"}
    videos = per_video[(per_video["run"] == "plain") & per_video["p_real"].notna()]
    reals = videos[videos["label"] == "REAL"]
    for method, levels in result["methods"].items():
        subset = pd.concat([reals, videos[videos["method"] == method]])
        labels = (subset["label"] == "REAL").astype(int)
        assert levels["video"]["count"] == len(subset) and levels["video"]["real"] == len(reals)
        assert levels["video"]["roc_auc"] == pytest.approx(roc_auc_score(labels, subset["p_real"]), abs=1e-9)
        assert levels["video"]["average_precision"] == pytest.approx(
            average_precision_score(1 - labels, 1 - subset["p_real"]), abs=1e-9)
        assert levels["face"]["count"] > levels["video"]["count"]
    report = (folder / "report.md").read_text()
    assert "| swap-a |" in report and "| swap-b |" in report


def test_videos_without_a_score_are_counted_listed_and_left_out(evaluated):
    _, out, folder = evaluated
    per_video = pd.read_csv(folder / "per_video.csv")
    plain = per_video[per_video["run"] == "plain"].set_index("video")
    assert plain.loc["blank", "status"] == "no face" and math.isnan(plain.loc["blank", "p_real"])
    assert plain.loc["broken", "status"] == "unreadable" and math.isnan(plain.loc["broken", "p_real"])
    assert "OpenCV cannot open it" in plain.loc["broken", "reason"]
    document = json.loads((folder / "metrics.json").read_text())
    result = document["results"]["plain"]["sample"]
    assert result["video"]["count"] == len(plain) - 2
    assert [v for v, _ in result["videos_without_score"]["no face"]] == ["blank"]
    assert [v for v, _ in result["videos_without_score"]["unreadable"]] == ["broken"]
    report = (folder / "report.md").read_text()
    assert "- no face: 1: blank" in report and "- unreadable: 1: broken" in report
    assert "left out of the video metrics" in report
    assert "2 without a score" in out


def test_second_model_reuses_the_cached_faces(evaluated, workspace, capsys):
    _, _, folder = evaluated
    cache = Path(json.loads((folder / "metrics.json").read_text())["datasets"]["sample"]["cache"])
    files = sorted(p for p in cache.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    assert stage05.main(["--config", str(workspace["config"]), "--run", str(workspace["runs"] / "plain"),
                         "--dataset", f"sample={workspace['videos']}", "--name", "second"]) == 0
    out = capsys.readouterr().out
    videos = len(workspace["metadata"])
    assert f"sample: {videos} videos" in out and f"0 extracted, {videos} from the cache" in out
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == before
    second = workspace["root"] / "evals" / "second"
    first_rows = pd.read_csv(folder / "per_face.csv").query("run == 'plain'").reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_csv(second / "per_face.csv"), first_rows)


class Brightness:
    """A trivial frame perturbation: adds `level` x 20 to every pixel, and counts its calls."""

    kind, applies_to_video = "brightness", False

    def __init__(self, level, seed=0):
        self.level, self.seed = level, seed
        self.cache_tag = f"brightness-{level}-seed{seed}"
        self.calls = 0

    def reencode(self, src_path, dst_path):
        raise AssertionError("a frame perturbation is never asked to re-encode")

    def apply(self, frame_bgr, frame_index, video_name):
        self.calls += 1
        return cv2.add(frame_bgr, np.full_like(frame_bgr, 20 * self.level))


class CopyVideo:
    """A trivial video perturbation: 're-encodes' by copying the file and noting its name."""

    kind, level, seed, applies_to_video, cache_tag = "copy", 1, 0, True, "copy-1"

    def __init__(self):
        self.seen = []

    def reencode(self, src_path, dst_path):
        self.seen.append(Path(src_path).name)
        shutil.copyfile(src_path, dst_path)

    def apply(self, frame_bgr, frame_index, video_name):
        raise AssertionError("a video perturbation is never applied to frames")


def test_perturbations_run_their_hook_and_are_cached_apart(evaluated, workspace):
    cfg = workspace["cfg"]
    names = sorted(workspace["fakes"])[:2]
    dataset = extract.load_dataset("sample", workspace["videos"], cfg)
    dataset = extract.EvalDataset(dataset.name, dataset.folder,
                                   tuple(v for v in dataset.videos if v.name + ".mp4" in names))
    clean = extract.extract_faces(dataset, cfg)
    assert clean.extracted == 0 and clean.reused == 2, "the clean crops come from the stage's cache"
    brighter = Brightness(level=3)
    perturbed = extract.extract_faces(dataset, cfg, perturbation=brighter)
    assert perturbed.cache_dir != clean.cache_dir and perturbed.cache_dir.name.endswith("-brightness-3-seed0")
    assert perturbed.extracted == 2 and brighter.calls > 0
    assert json.loads((perturbed.cache_dir / "key.json").read_text())["perturbation"] == "brightness-3-seed0"
    for video in dataset.videos:
        clean_record = extract.read_video_record(clean.cache_dir, video.name)
        bright_record = extract.read_video_record(perturbed.cache_dir, video.name)
        assert bright_record["frames"] == clean_record["frames"]
        clean_mean = np.mean([c.mean() for c in extract.load_crops(clean.cache_dir, clean_record)])
        bright_mean = np.mean([c.mean() for c in extract.load_crops(perturbed.cache_dir, bright_record)])
        assert bright_mean > clean_mean + 20
    again = Brightness(level=3)
    assert extract.extract_faces(dataset, cfg, perturbation=again).reused == 2 and again.calls == 0
    copier = CopyVideo()
    copied = extract.extract_faces(dataset, cfg, perturbation=copier)
    assert sorted(copier.seen) == names and copied.cache_dir not in (clean.cache_dir, perturbed.cache_dir)
    for video in dataset.videos:
        assert (extract.read_video_record(copied.cache_dir, video.name)["faces"]
                == extract.read_video_record(clean.cache_dir, video.name)["faces"])
        assert not (copied.cache_dir / video.name / ".reencoded.mp4").exists()


def test_bad_datasets_and_runs_are_refused(workspace, tmp_path, capsys):
    config = str(workspace["config"])
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    shutil.copy(workspace["videos"] / "blank.mp4", unlabelled / "clip.mp4")
    cases = [
        (["--run", "plain", "--dataset", f"plainfolder={unlabelled}"], "gives no labels"),
        (["--run", "plain", "--dataset", f"gone={tmp_path / 'gone'}"], "does not exist"),
        (["--run", "nosuchrun", "--dataset", f"sample={workspace['videos']}"], "no model.keras"),
        (["--run", "plain", "--dataset", f"a={workspace['videos']}", "--dataset", f"a={workspace['videos']}"], "must differ"),
    ]
    for arguments, message in cases:
        assert stage05.main(["--config", config, *arguments]) == 2
        assert message in capsys.readouterr().err
    assert not (workspace["root"] / "evals" / "plainfolder").exists()
    bad = write_config(tmp_path / "bad.py", BOOTSTRAP_SAMPLES=0)
    assert stage05.main(["--config", str(bad), "--dataset", f"sample={workspace['videos']}"]) == 2
    assert "BOOTSTRAP_SAMPLES must be a whole number >= 1" in capsys.readouterr().err


def test_real_dfdc_clips_one_class(workspace, dfdc_sample_dir, capsys):
    assert stage05.main(["--config", str(workspace["config"]), "--run", "calibrated",
                         "--dataset", f"dfdc={dfdc_sample_dir / 'videos'}", "--name", "dfdc"]) == 0
    out = capsys.readouterr().out
    folder = workspace["root"] / "evals" / "dfdc"
    result = json.loads((folder / "metrics.json").read_text())["results"]["calibrated"]["dfdc"]
    for level in ("face", "video"):
        got = result[level]
        assert got["roc_auc"] is None and got["average_precision"] is None and got["eer"] is None
        assert got["null_reason"].startswith("one class only (0 real") and got["real"] == 0
        assert got["accuracy"] is not None and got["log_loss"] > 0 and got["ece"] is not None
    assert result["video"]["count"] == 2 and result["face"]["count"] >= 10
    assert "   - / " in out, "the matrix shows no AUC for a one-class dataset"
    per_face = pd.read_csv(folder / "per_face.csv")
    assert set(per_face["video"]) == {"abofeumbvv", "abqwwspghj"}


def test_stage04_reports_calibrated_scores_and_keeps_the_raw(evaluated, workspace):
    from deepfake_detect.inference.scoring import Scorer
    from deepfake_detect.faces.mtcnn import load_worker_detector
    from deepfake_detect.sample import portrait_images

    cfg = workspace["cfg"]
    image = workspace["root"] / "astronaut.png"
    cv2.imwrite(str(image), cv2.cvtColor(portrait_images()["astronaut"], cv2.COLOR_RGB2BGR))
    scorer = Scorer(workspace["runs"] / "calibrated" / "model.keras", detector=load_worker_detector())
    assert scorer.temperature == TEMPERATURE
    result = scorer.score_file(image, cfg)
    face = result.faces[0]
    assert face.p_real == pytest.approx(calibration.apply_temperature([face.p_real_raw], TEMPERATURE)[0])
    assert result.p_real_raw == pytest.approx(face.p_real_raw) and result.p_real < result.p_real_raw
    cfg_raw = load_config(write_config(workspace["root"] / "raw.py", CALIBRATE=False,
                                       RUNS_DIR=workspace["runs"]))
    assert scorer.score_file(image, cfg_raw).p_real == pytest.approx(result.p_real_raw)


def test_a_killed_extraction_resumes_without_half_written_videos(evaluated, workspace):
    cfg = workspace["cfg"]
    full = extract.load_dataset("sample", workspace["videos"], cfg)
    dataset = extract.EvalDataset(full.name, full.folder, full.videos[:1])
    folder = extract.cache_folder(dataset, cfg)
    name = dataset.videos[0].name
    before = extract.read_video_record(folder, name)
    shutil.rmtree(folder / name)  # as if the run was killed while this video was being extracted
    killed = subprocess.Popen([sys.executable, "-c", "pass"])  # a process of this host that has ended
    killed.wait()
    stale = folder / f".{name}.partial-{socket.gethostname()}-{killed.pid}"
    stale.mkdir()
    (stale / "half.png").write_bytes(b"\x89PNG half")
    extraction = extract.extract_faces(dataset, cfg)
    assert extraction.extracted == 1 and not stale.exists()
    assert extract.read_video_record(folder, name) == before
    assert sorted(p.name for p in (folder / name).iterdir()) == sorted(
        [extract.VIDEO_RECORD] + [face["file"] for face in before["faces"]])


def test_a_run_evaluated_on_its_own_training_videos_reports_the_overlap_and_leaves_them_out(
        evaluated, workspace, capsys):
    """The run folder's split.csv is stage 02's, from a real stage 02 run on the sample's names
    (crops made directly): stage 03 will copy SPLIT_DIR/split.csv into the run folder."""
    from test_datasets import make_crops

    from deepfake_detect.datasets.discovery import discover_videos, source_group

    root = workspace["root"] / "overlap"
    cfg = load_config(workspace["config"])
    cfg.VIDEOS_DIR, cfg.METADATA_FILE = workspace["videos"], workspace["videos"] / "metadata.json"
    videos = discover_videos(cfg)[0]
    make_crops(root / "faces", [v.name for v in videos], count=3)
    config02 = write_config(root / "cfg02.py", VIDEOS_DIR=workspace["videos"], OUTPUT_DIR=root / "out",
                            FACES_DIR=root / "faces")
    assert importlib.import_module("02-prepare_fake_real_dataset").main(["--config", str(config02)]) == 0
    run = workspace["runs"] / "seen"
    shutil.copytree(workspace["runs"] / "plain", run)
    shutil.copyfile(root / "out" / "split_dataset" / "split.csv", run / "split.csv")
    rows = pd.read_csv(run / "split.csv", dtype=str)
    trained = rows[rows["split"].isin(["train", "val"])]
    flagged = {v.name for v in videos if v.name in set(trained["video"]) or source_group(v) in set(trained["group"])}
    assert 0 < len(flagged) < len(videos)
    capsys.readouterr()

    assert stage05.main(["--config", str(workspace["config"]), "--run", str(run),
                         "--dataset", f"sample={workspace['videos']}", "--name", "overlap"]) == 0
    out = capsys.readouterr().out
    note = f"{len(flagged)} of {len(videos)} videos were in run seen's train/val split"
    assert note in out
    folder = workspace["root"] / "evals" / "overlap"
    scored = set(pd.read_csv(folder / "per_video.csv")["video"])
    assert scored == {v.name for v in videos} - flagged
    report = (folder / "report.md").read_text()
    assert "## Splits and overlap" in report and note in report and "DFDC (metadata.json), all videos" in report
    overlap = json.loads((folder / "metrics.json").read_text())["runs"]["seen"]["overlap"]["sample"]
    assert (overlap["seen"], overlap["left_out"], set(overlap["seen_videos"])) == (len(flagged), True, flagged)
    # The robustness sweep scores the same videos at every level as the clean evaluation does.
    assert stage05.main(["--config", str(workspace["config"]), "--run", str(run), "--dataset",
                         f"sample={workspace['videos']}", "--name", "overlap-sweep", "--robustness",
                         "--robustness-types", "noise", "--robustness-levels", "1"]) == 0
    sweep = pd.read_csv(workspace["root"] / "evals" / "overlap-sweep" / "robustness.csv")
    assert sweep["videos"].tolist() == [len(videos) - len(flagged)] * 2  # level 0 and noise level 1
    kept = write_config(root / "keep.py", RUNS_DIR=workspace["runs"], EVALS_DIR=workspace["root"] / "evals",
                        OUTPUT_DIR=workspace["root"] / "data", MTCNN_WORKERS=1, BOOTSTRAP_SAMPLES=200,
                        EVAL_KEEP_SEEN=True)
    assert stage05.main(["--config", str(kept), "--run", str(run), "--dataset", f"sample={workspace['videos']}",
                         "--name", "overlap-kept"]) == 0
    marked = pd.read_csv(workspace["root"] / "evals" / "overlap-kept" / "per_video.csv")
    assert set(marked.loc[marked["seen"], "video"]) == flagged and len(marked) == len(videos)
    assert "scored all the same, marked seen in per_video.csv" in capsys.readouterr().out


def test_stage05_verdicts_equal_stage04s_on_the_same_videos(evaluated, workspace):
    """One verdict path (inference.verdicts): UNCERTAIN_MARGIN counts in per_video.csv as in stage 04.
    A margin of 0.15 puts this untrained model's P(real) ~0.62 in the UNCERTAIN band."""
    import contextlib
    import io

    from deepfake_detect.inference.scoring import Scorer
    from deepfake_detect.faces.mtcnn import load_worker_detector

    config = write_config(workspace["root"] / "margin.py", RUNS_DIR=workspace["runs"],
                          EVALS_DIR=workspace["root"] / "evals", OUTPUT_DIR=workspace["root"] / "data",
                          MTCNN_WORKERS=1, BOOTSTRAP_SAMPLES=20, UNCERTAIN_MARGIN=0.15)
    with contextlib.redirect_stdout(io.StringIO()):
        assert stage05.main(["--config", str(config), "--run", "plain", "--dataset",
                             f"sample={workspace['videos']}", "--name", "verdicts"]) == 0
    per_video = pd.read_csv(workspace["root"] / "evals" / "verdicts" / "per_video.csv")
    scored = per_video[per_video["p_real"].notna()].set_index("video")
    cfg = load_config(config)
    scorer = Scorer(workspace["runs"] / "plain" / "model.keras", detector=load_worker_detector())
    paths = {path.stem: path for path in workspace["videos"].glob("*.mp4")}
    stage04 = {name: scorer.score_file(paths[name], cfg) for name in scored.index}
    assert {name: result.verdict for name, result in stage04.items()} == scored["verdict"].to_dict()
    for name, result in stage04.items():
        assert result.p_real == pytest.approx(scored.loc[name, "p_real"], abs=1e-5)
    assert "UNCERTAIN" in set(scored["verdict"]), "the margin should catch some of these scores"


def test_a_replaced_video_is_extracted_again_and_the_others_reused(workspace, tmp_path):
    """The cache holds each video's size and modification time: a file replaced under the same
    name (another take, as a re-download would) gets fresh crops; the untouched one is reused."""
    cfg = workspace["cfg"]
    takes = [path for path in sorted(workspace["videos"].glob("*.mp4")) if path.stem not in ("blank", "broken")]
    real = [path for path in takes if workspace["metadata"].get(path.name, {}).get("label") == "REAL"]
    fake = [path for path in takes if path.name in workspace["fakes"]]
    folder = tmp_path / "ds"
    folder.mkdir()
    shutil.copyfile(real[0], folder / "a.mp4")
    shutil.copyfile(fake[0], folder / "b.mp4")
    (folder / "metadata.json").write_text(json.dumps({"a.mp4": {"label": "REAL"}, "b.mp4": {"label": "FAKE"}}))
    cache = tmp_path / "cache"
    first = extract.extract_faces(extract.load_dataset("ds", folder, cfg), cfg, cache_root=cache, workers=1)
    assert first.extracted == 2
    before = {name: extract.read_video_record(first.cache_dir, name) for name in ("a", "b")}

    shutil.copyfile(real[1], folder / "a.tmp")
    os.replace(folder / "a.tmp", folder / "a.mp4")  # replaced whole, under the same name
    second = extract.extract_faces(extract.load_dataset("ds", folder, cfg), cfg, cache_root=cache, workers=1)
    assert second.cache_dir == first.cache_dir and (second.extracted, second.reused) == (1, 1)
    after = {name: extract.read_video_record(second.cache_dir, name) for name in ("a", "b")}
    assert after["b"] == before["b"]
    fresh = extract.extract_faces(extract.load_dataset("ds", folder, cfg), cfg, cache_root=tmp_path / "fresh",
                                  workers=1)
    assert after["a"] == extract.read_video_record(fresh.cache_dir, "a") != before["a"]
    assert sorted(p.name for p in (second.cache_dir / "a").iterdir()) == sorted(
        [extract.VIDEO_RECORD] + [face["file"] for face in after["a"]["faces"]])
    assert not [p for p in second.cache_dir.iterdir() if p.name.startswith(".")]
