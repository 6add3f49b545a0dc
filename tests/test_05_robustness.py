"""Stage 05's robustness sweep end to end (05-evaluate_model.py --robustness, robustness.run_sweep)
on the built-in sample with untrained models.

    .venv/bin/python -m pytest tests/test_05_robustness.py -x -q

The dataset is the built-in sample (python -m deepfake_detect.sample, 2 videos per person, 2 s:
8 videos); the models are test_05_evaluate's untrained EfficientNet-B0s at 32 px (one of them
calibrated). To stay fast the sweep runs three types (noise, blur, and video compression, which
re-encodes with imageio-ffmpeg's ffmpeg) at levels 1 and 5. Checked: level 0 is the clean
evaluation's metrics, robustness.csv / robustness.png / the report section agree, perturbed faces
are cached and a second model extracts nothing, several runs give a run x dataset CSV and a plot
per pair, and a missing encoder gives one clear error line while the other types still run.
"""

import contextlib
import csv
import importlib
import io
import json

import cv2
import numpy as np
import pytest

from conftest import write_config
from deepfake_detect.evaluation.perturb import INSTALL_HINT
from deepfake_detect.evaluation.robustness import first_costly_level
from test_05_evaluate import TEMPERATURE, build_run

stage05 = importlib.import_module("05-evaluate_model")

SWEEP = ["--robustness", "--robustness-types", "noise,blur,video", "--robustness-levels", "1,5"]
POINTS = [("noise", "1"), ("noise", "5"), ("blur", "1"), ("blur", "5"), ("video", "1"), ("video", "5")]


def run_stage05(config, *arguments):
    """(exit code, stdout, stderr) of one stage 05 call."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = stage05.main(["--config", str(config), *arguments])
    return code, out.getvalue(), err.getvalue()


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def cache_state(cache_root):
    """{relative path: modification time} of every file in the stage 05 cache."""
    return {str(p.relative_to(cache_root)): p.stat().st_mtime_ns for p in cache_root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The sample (8 videos), two untrained runs, a config; and the first sweep, run with `plain`."""
    from deepfake_detect.sample import main as make_sample

    root = tmp_path_factory.mktemp("robustness")
    videos = root / "sample"
    assert make_sample([str(videos), "--videos-per-person", "2", "--seconds", "2"]) == 0
    build_run(root / "runs" / "plain", seed=1)
    build_run(root / "runs" / "calibrated", seed=2, temperature=TEMPERATURE)
    config = write_config(root / "cfg.py", RUNS_DIR=root / "runs", EVALS_DIR=root / "evals",
                          OUTPUT_DIR=root / "data", MTCNN_WORKERS=1, BOOTSTRAP_SAMPLES=100)
    first = run_stage05(config, "--run", "plain", "--dataset", f"sample={videos}", "--name", "first", *SWEEP)
    return {"root": root, "videos": videos, "config": config, "first": first, "cache": root / "data" / "eval_cache"}


def test_level_0_is_the_clean_evaluation_and_every_point_is_reported(workspace):
    code, out, err = workspace["first"]
    assert code == 0, err
    folder = workspace["root"] / "evals" / "first"
    rows = read_csv(folder / "robustness.csv")
    assert "run" not in rows[0] and "dataset" not in rows[0]  # one pair: no run/dataset columns
    assert [(r["type"], r["level"]) for r in rows] == [("none", "0")] + POINTS
    assert [r["parameter"] for r in rows] == ["", "0.001", "0.05", "7", "21", "30", "40"]
    document = json.loads((folder / "metrics.json").read_text())
    clean = document["results"]["plain"]["sample"]
    assert document["robustness"]["points"] == [f"{t}-{lvl}-s0" for t, lvl in POINTS]
    assert document["robustness"]["not_run"] == {}
    faces = read_csv(folder / "per_face.csv")
    level0 = rows[0]
    assert level0["video_auc"] == f"{clean['video']['roc_auc']:.4f}"
    assert level0["log_loss"] == f"{clean['video']['log_loss']:.4f}"
    assert level0["accuracy"] == f"{clean['video']['accuracy']:.4f}"
    assert int(level0["faces_found"]) == clean["face"]["count"] == len(faces)
    assert int(level0["videos"]) == clean["video"]["count"] == 8
    for row in rows:
        # auc_drop is rounded from the unrounded AUCs: it may differ from the rounded ones' difference
        # in the last digit
        assert abs(float(row["auc_drop"]) - (float(level0["video_auc"]) - float(row["video_auc"]))) <= 1.5e-4
        assert 0 < int(row["faces_found"]) and 0 < int(row["videos"]) <= 8
    # Every point printed once, with what it extracted: the first run extracted all 8 videos each time.
    point_lines = [line for line in out.splitlines() if line.startswith("  plain on sample, ")]
    assert [line.split(", ")[1].split(" (")[0] for line in point_lines] == [f"{t} {lvl}" for t, lvl in POINTS]
    assert all("; 8 extracted, 0 from the cache" in line for line in point_lines)
    assert "robustness sweep: 6 points (48 videos extracted, 0 from the cache" in out
    assert "robustness.csv, robustness.png" in out


def test_report_section_and_plot_agree_with_the_csv(workspace):
    folder = workspace["root"] / "evals" / "first"
    rows = read_csv(folder / "robustness.csv")
    report = (folder / "report.md").read_text()
    section = report[report.index("## Robustness to perturbations"):]
    clean_auc = float(rows[0]["video_auc"])
    names = {"noise": "white Gaussian noise", "blur": "Gaussian blur", "video": "video compression (H.264 CRF)"}
    for kind, name in names.items():
        aucs = {int(r["level"]): float(r["video_auc"]) for r in rows if r["type"] == kind}
        line = next(line for line in section.splitlines() if line.startswith(f"| {name} |"))
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[1:3] == [rows_auc for rows_auc in (f"{aucs[1]:.4f}", f"{aucs[5]:.4f}")]
        costly = first_costly_level(clean_auc, aucs)
        assert cells[3] == (f"level {costly} (AUC {aucs[costly]:.4f})" if costly else "none up to level 5")
    assert "![video AUC against perturbation level](robustness.png)" in section
    plot = cv2.imread(str(folder / "robustness.png"))
    assert plot is not None and plot.shape[0] > 200 and plot.shape[1] > 300
    assert len(np.unique(plot.reshape(-1, 3), axis=0)) > 10  # lines and text drawn, not a blank image


def test_perturbed_faces_are_cached_apart_and_really_perturbed(workspace):
    folders = {p.name.split("-", 2)[-1] if p.name.count("-") >= 2 else "clean": p
               for p in workspace["cache"].iterdir() if p.is_dir()}
    assert set(folders) == {"clean", "noise-1-s0", "noise-5-s0", "blur-1-s0", "blur-5-s0", "video-1-s0",
                            "video-5-s0"}
    videos = sorted(p.stem for p in workspace["videos"].glob("*.mp4"))
    for folder in folders.values():
        assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == videos
        assert not list(folder.rglob("*.reencoded.mp4"))  # the re-encoded copies are not kept
    # The same video's first crop, clean and under heavy blur: the blurred one has lost detail.
    video = videos[0]
    clean = json.loads((folders["clean"] / video / "faces.json").read_text())
    blurred = json.loads((folders["blur-5-s0"] / video / "faces.json").read_text())
    sharpness = [cv2.Laplacian(cv2.imread(str(folder / video / record["faces"][0]["file"]), cv2.IMREAD_GRAYSCALE),
                               cv2.CV_64F).var() for folder, record in ((folders["clean"], clean),
                                                                        (folders["blur-5-s0"], blurred))]
    assert sharpness[1] < 0.5 * sharpness[0]


def test_a_second_model_extracts_nothing_and_several_runs_get_a_plot_each(workspace):
    before = cache_state(workspace["cache"])
    code, out, err = run_stage05(workspace["config"], "--run", "plain", "--run", "calibrated",
                                 "--dataset", f"sample={workspace['videos']}", "--name", "both", *SWEEP)
    assert code == 0, err
    assert cache_state(workspace["cache"]) == before  # no crop written or rewritten
    point_lines = [line for line in out.splitlines() if " on sample, " in line]
    assert len(point_lines) == 12 and all("; 0 extracted, 8 from the cache" in line for line in point_lines)
    assert "sample: 8 videos (4 real, 4 fake), 0 extracted, 8 from the cache" in out

    folder = workspace["root"] / "evals" / "both"
    rows = read_csv(folder / "robustness.csv")
    assert list(rows[0])[:4] == ["run", "dataset", "type", "level"]
    assert [(r["run"], r["type"], r["level"]) for r in rows] == \
        [(run, t, lvl) for run in ("plain", "calibrated") for t, lvl in [("none", "0")] + POINTS]
    # The same model on the same cached faces gives the same numbers as in the first sweep.
    first = read_csv(workspace["root"] / "evals" / "first" / "robustness.csv")
    plain = [{k: v for k, v in r.items() if k not in ("run", "dataset")} for r in rows if r["run"] == "plain"]
    assert plain == first
    clean = json.loads((folder / "metrics.json").read_text())["results"]["calibrated"]["sample"]
    calibrated0 = next(r for r in rows if r["run"] == "calibrated" and r["level"] == "0")
    assert calibrated0["log_loss"] == f"{clean['video']['log_loss']:.4f}"
    for name in ("robustness-plain-sample.png", "robustness-calibrated-sample.png"):
        assert cv2.imread(str(folder / name)) is not None
    assert (folder / "robustness.png").read_bytes() == (folder / "robustness-plain-sample.png").read_bytes()
    report = (folder / "report.md").read_text()
    assert "## Robustness to perturbations: `plain` on `sample`" in report
    assert "## Robustness to perturbations: `calibrated` on `sample`" in report
    assert "(robustness-calibrated-sample.png)" in report


def test_missing_encoder_is_one_clear_error_and_the_other_types_still_run(workspace, monkeypatch):
    missing = workspace["root"] / "no-such-ffmpeg"
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(missing))
    code, out, err = run_stage05(workspace["config"], "--run", "plain", "--dataset", f"sample={workspace['videos']}",
                                 "--name", "no-codec", "--robustness", "--robustness-types", "noise,video",
                                 "--robustness-levels", "1")
    assert code == 0, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: robustness sweep: video compression (H.264 CRF) not run: ")
    assert str(missing) in errors[0] and INSTALL_HINT in errors[0]
    folder = workspace["root"] / "evals" / "no-codec"
    assert [(r["type"], r["level"]) for r in read_csv(folder / "robustness.csv")] == [("none", "0"), ("noise", "1")]
    report = (folder / "report.md").read_text()
    line = next(line for line in report.splitlines() if line.startswith("| video compression (H.264 CRF) |"))
    assert "not run: " in line and "pip install imageio-ffmpeg" in line
    assert "video compression (H.264 CRF): not run: " in out


def test_bad_sweep_flags_and_settings_are_refused(workspace, tmp_path):
    dataset = f"sample={workspace['videos']}"
    code, _, err = run_stage05(workspace["config"], "--run", "plain", "--dataset", dataset, "--robustness",
                               "--robustness-types", "noise,resize")
    assert code == 2 and "unknown perturbation type 'resize'" in err
    code, _, err = run_stage05(workspace["config"], "--run", "plain", "--dataset", dataset, "--robustness",
                               "--robustness-levels", "1,6")
    assert code == 2 and "perturbation levels are 1-5, got 6" in err
    with pytest.raises(SystemExit):
        run_stage05(workspace["config"], "--run", "plain", "--dataset", dataset, "--robustness-levels", "1")
    config = write_config(tmp_path / "bad.py", RUNS_DIR=workspace["root"] / "runs", ROBUSTNESS_TYPES=["noise", "zoom"])
    code, _, err = run_stage05(config, "--run", "plain", "--dataset", dataset)
    assert code == 2 and "ROBUSTNESS_TYPES" in err and "'zoom'" in err
