"""Stage 04 command line: rows, CSV/JSON files, exit codes, bad inputs and annotation, on
generated media (real portraits as PNG/JPEG/mp4, plain-colour and broken files) scored with a
tiny EfficientNet-B0 built fresh with a fixed seed (weights=None, nothing downloaded).

    .venv/bin/pytest tests/test_04_detect.py

The model and the MTCNN detector load once for the whole file (module fixture). The last test
scores a real DFDC clip when DFDC_SAMPLE_DIR is set and is skipped otherwise.
"""

import csv
import importlib
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_detect.media.kinds import SNIFF_BYTES, sniff_media_kind
from deepfake_detect.inference.records import SCHEMA_VERSION
from deepfake_detect.inference.results import IMAGE, VIDEO
from deepfake_detect.inference.scoring import Scorer, find_run_model
from deepfake_detect.models.predictors import ModelError
from deepfake_detect.inference.verdicts import combine_face_scores, confident_score, score_meaning, verdict_of
from deepfake_detect.faces.crops import crop_face, keep_faces
from deepfake_detect.media.frames import resize_frame
from deepfake_detect.models.network import prepare_faces
from deepfake_detect.settings import load_config
from conftest import write_config, write_test_video

stage04 = importlib.import_module("04-detect_deepfakes")

TEST_INPUT_SIZE = 64
MODEL_SEED = 1234


# ------------------------------------------------------------ helpers (also used by test_04_web)

def build_test_model(path, input_size=TEST_INPUT_SIZE, seed=MODEL_SEED):
    """Save a freshly built, untrained B0 model (fixed seed, no download) at `path`."""
    import keras

    from deepfake_detect.models.network import build_model

    keras.utils.set_random_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    build_model(input_size=input_size, weights=None).save(path)
    return path


def write_portrait_video(path, image_rgb, fps=10, seconds=2):
    """An mp4v video showing `image_rgb` for `seconds`, gently panning so frames differ."""
    frame = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    height, width = frame.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    try:
        for index in range(fps * seconds):
            writer.write(np.roll(frame, index, axis=1))
    finally:
        writer.release()
    return path


def write_media(folder):
    """Real faces and bad inputs in `folder`; returns {name: path}."""
    from deepfake_detect.sample import portrait_images

    folder.mkdir(parents=True, exist_ok=True)
    portraits = portrait_images()
    paths = {
        "astronaut.png": folder / "astronaut.png",
        "hopper.jpg": folder / "hopper.jpg",
        "astronaut.mp4": folder / "astronaut.mp4",
        "plain.png": folder / "plain.png",
        "plain.mp4": folder / "plain.mp4",
        "text.mp4": folder / "text.mp4",
        "text.png": folder / "text.png",
        "notes.txt": folder / "notes.txt",
        "empty.jpg": folder / "empty.jpg",
    }
    cv2.imwrite(str(paths["astronaut.png"]), cv2.cvtColor(portraits["astronaut"], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(paths["hopper.jpg"]), cv2.cvtColor(portraits["hopper"], cv2.COLOR_RGB2BGR))
    write_portrait_video(paths["astronaut.mp4"], portraits["astronaut"])
    cv2.imwrite(str(paths["plain.png"]), np.full((200, 200, 3), 128, np.uint8))
    write_test_video(paths["plain.mp4"], frame_count=20, fps=10)  # a moving square, no face
    paths["text.mp4"].write_text("this is not a video\n")
    paths["text.png"].write_text("this is not an image\n")
    paths["notes.txt"].write_text("notes\n")
    paths["empty.jpg"].write_bytes(b"")
    return paths


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage04")
    model_path = build_test_model(root / "runs" / "test" / "model.keras")
    return {"root": root, "model": model_path, "media": write_media(root / "media"),
            "config": write_config(root / "config.py", RUNS_DIR=root / "runs")}


@pytest.fixture(scope="module")
def scorer(workspace):
    return Scorer(workspace["model"])


@pytest.fixture(scope="module")
def cfg(workspace):
    return load_config(workspace["config"])


def run_cli(workspace, scorer, *args):
    return stage04.main(["--config", str(workspace["config"]), *map(str, args)], scorer=scorer)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------- pure rules

def dfdc_winner_confident_strategy(pred, t=0.8):
    """selimsef/dfdc_deepfake_challenge kernel_utils.confident_strategy, on P(fake), as published."""
    pred = np.array(pred)
    sz = len(pred)
    fakes = np.count_nonzero(pred > t)
    if fakes > sz // 2.5 and fakes > 11:
        return np.mean(pred[pred > t])
    elif np.count_nonzero(pred < 0.2) > 0.9 * sz:
        return np.mean(pred[pred < 0.2])
    else:
        return np.mean(pred)


@pytest.mark.parametrize("p_real", [
    [0.05] * 14 + [0.9] * 6,          # 14 confidently fake faces out of 20: the fake branch
    [0.05] * 5 + [0.9] * 15,          # too few confident fakes (5 <= 11): plain mean
    [0.95] * 19 + [0.5],              # over 90% confidently real: the real branch
    [0.95] * 8 + [0.5] * 2,           # 80% confident real: plain mean
    [0.1] * 12 + [0.6] * 20,          # 12 > 11 but 12 <= 32 // 2.5 = 12: plain mean
    [0.3],
])
def test_confident_score_is_the_dfdc_winner_rule_in_p_real_terms(p_real):
    expected_p_fake = dfdc_winner_confident_strategy([1 - p for p in p_real])
    assert confident_score(p_real) == pytest.approx(1 - expected_p_fake, abs=1e-9)


def test_confident_score_matches_the_winner_on_random_scores():
    generator = np.random.default_rng(0)
    for size in (1, 5, 12, 13, 30, 64):
        for _ in range(50):
            p_real = generator.beta(0.3, 0.3, size)  # many near 0 and 1, like a trained model
            expected = 1 - dfdc_winner_confident_strategy(1 - p_real)
            assert confident_score(p_real) == pytest.approx(expected, abs=1e-9)


def test_combine_and_verdict():
    assert combine_face_scores([0.2, 0.4, 0.9], "mean") == pytest.approx(0.5)
    assert combine_face_scores([], "mean") is None  # never a silent 0.5
    assert verdict_of(0.49, 0.5) == "FAKE"
    assert verdict_of(0.5, 0.5) == "REAL"
    assert verdict_of(None, 0.5) is None
    with pytest.raises(ValueError):
        combine_face_scores([0.3], "median")


@pytest.mark.parametrize("p_real, verdict", [
    (0.39, "FAKE"), (0.4, "FAKE"), (0.41, "UNCERTAIN"), (0.5, "UNCERTAIN"), (0.599, "UNCERTAIN"),
    (0.6, "REAL"), (0.95, "REAL"), (None, None)])
def test_scores_within_the_margin_of_the_threshold_are_uncertain(p_real, verdict):
    assert verdict_of(p_real, 0.5, 0.1) == verdict


def test_a_zero_margin_turns_uncertain_off_and_the_meaning_says_so():
    assert [verdict_of(p, 0.5, 0.0) for p in (0.4999, 0.5, 0.5001)] == ["FAKE", "REAL", "REAL"]
    cfg = load_config()
    assert "UNCERTAIN when 0.4 < P(real) < 0.6" in score_meaning(cfg)
    cfg.UNCERTAIN_MARGIN = 0
    assert "UNCERTAIN" not in score_meaning(cfg)


@pytest.mark.parametrize("margin", [-0.1, 0.5])
def test_an_uncertain_margin_out_of_range_is_a_config_error(tmp_path, margin):
    from deepfake_detect.settings import ConfigError

    with pytest.raises(ConfigError, match="UNCERTAIN_MARGIN"):
        load_config(write_config(tmp_path / "margin.py", UNCERTAIN_MARGIN=margin))


def test_uncertain_verdict_in_table_csv_and_json_and_exit_status_unchanged(workspace, scorer, tmp_path, capsys):
    """The test model scores near 0.5, so a wide margin makes the verdict UNCERTAIN; the input
    still counts as scored (exit status 0)."""
    config = write_config(tmp_path / "wide.py", RUNS_DIR=workspace["model"].parent.parent, UNCERTAIN_MARGIN=0.45)
    csv_path, json_path = tmp_path / "scores.csv", tmp_path / "scores.json"
    status = stage04.main(["--config", str(config), str(workspace["media"]["astronaut.png"]),
                           "--csv", str(csv_path), "--json", str(json_path)], scorer=scorer)
    assert status == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if "astronaut.png" in line)
    assert row.split()[-1] == "UNCERTAIN"
    assert "UNCERTAIN when 0.05 < P(real) < 0.95" in table
    assert read_csv(csv_path)[0]["verdict"] == "UNCERTAIN"
    document = json.loads(json_path.read_text())
    assert document["inputs"][0]["verdict"] == "UNCERTAIN" and "UNCERTAIN" in document["score_meaning"]


def test_sniff_media_kind_reads_content_not_names(workspace):
    media = workspace["media"]

    def kind(name):
        return sniff_media_kind(media[name].read_bytes()[:SNIFF_BYTES])

    assert kind("astronaut.png") == IMAGE
    assert kind("hopper.jpg") == IMAGE
    assert kind("astronaut.mp4") == VIDEO
    assert kind("text.mp4") is None
    assert kind("text.png") is None
    ok, webp = cv2.imencode(".webp", np.zeros((16, 16, 3), np.uint8))
    assert sniff_media_kind(webp.tobytes()[:16]) == IMAGE


# ------------------------------------------------------------------ the CLI

def test_portraits_are_scored_with_the_training_pipeline(workspace, scorer, cfg, tmp_path, capsys):
    media = workspace["media"]
    csv_path, json_path = tmp_path / "scores.csv", tmp_path / "out" / "scores.json"
    status = run_cli(workspace, scorer, media["astronaut.png"], media["hopper.jpg"], media["astronaut.mp4"],
                     "--csv", csv_path, "--json", json_path)
    assert status == 0
    output = capsys.readouterr().out
    assert "P(real)" in output and "P(fake)" in output and "P(fake) = 1 - P(real)" in output

    rows = {Path(r["input"]).name: r for r in read_csv(csv_path)}
    assert set(rows) == {"astronaut.png", "hopper.jpg", "astronaut.mp4"}
    for row in rows.values():
        assert row["status"] == "scored" and int(row["faces"]) >= 1
        p_real, p_fake = float(row["p_real"]), float(row["p_fake"])
        assert p_real + p_fake == pytest.approx(1, abs=1e-5)
        assert row["verdict"] == verdict_of(p_real, cfg.THRESHOLD, cfg.UNCERTAIN_MARGIN)
        assert row["score_rule"] == "mean"
    assert rows["astronaut.png"]["type"] == "image" and rows["astronaut.mp4"]["type"] == "video"
    assert int(rows["astronaut.mp4"]["frames"]) == 2  # 2 s at 10 fps, one frame per second kept

    # The image's score is what the shared stage 00/01a/03 functions give, step by step.
    image_bgr = resize_frame(cv2.imread(str(media["astronaut.png"])), cfg.RESIZE_RULES)
    image_rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    faces = keep_faces(scorer.detector([image_rgb])[0], cfg.MULTI_FACE_MIN_CONFIDENCE)
    crops = [crop_face(image_rgb, face, cfg.FACE_MARGIN) for face in faces]
    expected = scorer.model.predict_on_batch(prepare_faces(crops, TEST_INPUT_SIZE)).reshape(-1)
    assert float(rows["astronaut.png"]["p_real"]) == pytest.approx(float(np.mean(expected)), abs=1e-5)

    document = json.loads(json_path.read_text())
    assert document["schema"] == SCHEMA_VERSION and document["model"] == str(workspace["model"])
    assert "P(fake) = 1 - P(real)" in document["score_meaning"]
    assert [Path(i["input"]).name for i in document["inputs"]] == ["astronaut.png", "hopper.jpg", "astronaut.mp4"]
    assert document["inputs"][0]["p_real"] == pytest.approx(float(rows["astronaut.png"]["p_real"]), abs=1e-5)


def test_inputs_without_a_score_say_why_and_carry_none(workspace, scorer, tmp_path, capsys):
    media = workspace["media"]
    inputs = [media[n] for n in ("astronaut.png", "plain.png", "plain.mp4", "text.mp4", "text.png",
                                 "notes.txt", "empty.jpg")] + [tmp_path / "missing.mp4"]
    json_path, csv_path = tmp_path / "scores.json", tmp_path / "scores.csv"
    assert run_cli(workspace, scorer, *inputs, "--json", json_path, "--csv", csv_path) == 1

    by_name = {Path(i["input"]).name: i for i in json.loads(json_path.read_text())["inputs"]}
    expected = {"astronaut.png": "scored", "plain.png": "no face", "plain.mp4": "no face",
                "text.mp4": "unreadable", "text.png": "unreadable", "notes.txt": "unsupported",
                "empty.jpg": "unreadable", "missing.mp4": "not found"}
    assert {name: i["status"] for name, i in by_name.items()} == expected
    for name, record in by_name.items():
        if name != "astronaut.png":
            assert record["p_real"] is None and record["p_fake"] is None and record["verdict"] is None
            assert record["reason"], f"{name} has no reason"
    assert by_name["plain.mp4"]["frames"] == 2 and by_name["plain.mp4"]["faces"] == 0
    assert "empty file" in by_name["empty.jpg"]["reason"]
    for row in read_csv(csv_path):
        if row["status"] != "scored":
            assert row["p_real"] == row["p_fake"] == row["verdict"] == ""

    table = capsys.readouterr().out
    for name, status in expected.items():
        line = next(line for line in table.splitlines() if name in line)
        assert status in line
        if status != "scored":
            assert "0.5" not in line.split(name, 1)[1]  # no stand-in score for what was not scored


def test_folder_mixing_good_and_bad_files(workspace, scorer, tmp_path, capsys):
    media = workspace["media"]
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    for name in ("astronaut.png", "plain.png", "text.mp4", "notes.txt"):
        (folder / name).write_bytes(media[name].read_bytes())
    (folder / "sub" / "hopper.jpg").write_bytes(media["hopper.jpg"].read_bytes())
    (folder / ".hidden.png").write_bytes(media["astronaut.png"].read_bytes())
    csv_path = tmp_path / "scores.csv"
    assert run_cli(workspace, scorer, folder, "--csv", csv_path) == 1
    rows = {Path(r["input"]).relative_to(folder).as_posix(): r["status"] for r in read_csv(csv_path)}
    assert rows == {"astronaut.png": "scored", "plain.png": "no face", "text.mp4": "unreadable",
                    "sub/hopper.jpg": "scored"}
    assert "ignored 1 file" in capsys.readouterr().err  # notes.txt: no row, one warning


def test_details_show_and_write_every_frame_and_face(workspace, scorer, tmp_path, capsys):
    media = workspace["media"]
    csv_path = tmp_path / "scores.csv"
    assert run_cli(workspace, scorer, media["astronaut.mp4"], media["plain.mp4"], "--details", "--csv", csv_path) == 1
    output = capsys.readouterr().out
    assert "frame 0 face 0" in output and "frame 10" in output and "no face" in output
    faces = read_csv(tmp_path / "scores-faces.csv")
    astronaut = [r for r in faces if r["input"].endswith("astronaut.mp4")]
    plain = [r for r in faces if r["input"].endswith("plain.mp4")]
    assert sorted({r["frame"] for r in astronaut}) == ["0", "10"]
    assert all(r["p_real"] and float(r["p_real"]) + float(r["p_fake"]) == pytest.approx(1, abs=1e-5)
               for r in astronaut)
    assert [(r["frame"], r["face"], r["p_real"]) for r in plain] == [("0", "", ""), ("10", "", "")]
    summary = {Path(r["input"]).name: r for r in read_csv(csv_path)}
    mean = np.mean([float(r["p_real"]) for r in astronaut])
    assert float(summary["astronaut.mp4"]["p_real"]) == pytest.approx(mean, abs=1e-5)


def test_csv_and_json_are_one_record_under_the_same_names(workspace, scorer, tmp_path):
    """The CSV files are the flat view of the JSON's records: the same fields, the same values,
    plus the context a CSV row has no document for (and each face row's input)."""
    from deepfake_detect.inference.records import FACE_COLUMNS, INPUT_COLUMNS

    media = workspace["media"]
    csv_path, json_path = tmp_path / "scores.csv", tmp_path / "scores.json"
    run_cli(workspace, scorer, media["astronaut.mp4"], media["plain.mp4"], "--details", "--csv", csv_path,
            "--json", json_path)
    document = json.loads(json_path.read_text())
    context = {"threshold", "uncertain_margin", "score_rule"}
    assert document["schema"] == SCHEMA_VERSION and context <= set(document)
    for record, row in zip(document["inputs"], read_csv(csv_path)):
        assert set(record) - {"face_scores"} == set(INPUT_COLUMNS) - context == set(row) - context
        assert row["p_real"] == ("" if record["p_real"] is None else f"{record['p_real']:.9g}")
    json_faces = [face for record in document["inputs"] for face in record["face_scores"]]
    csv_faces = read_csv(tmp_path / "scores-faces.csv")
    assert len(json_faces) == len(csv_faces) == 4  # 2 frames with a face, 2 without
    for face, row in zip(json_faces, csv_faces):
        assert set(face) <= set(row) - {"input"} and list(row) == list(FACE_COLUMNS)
        assert row["x"] == ("" if face["x"] is None else str(face["x"]))
        assert face["verdict"] in (None, "REAL", "FAKE", "UNCERTAIN")


def run_python(code):
    """Run `code` in a fresh interpreter from the repository; returns its stdout."""
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_loads_neither_tensorflow_nor_flask():
    printed = run_python(
        "import importlib, sys\n"
        "stage04 = importlib.import_module('04-detect_deepfakes')\n"
        "try:\n    stage04.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('loaded:', [m for m in ('tensorflow', 'keras', 'flask') if m in sys.modules])\n")
    assert "--json PATH" in printed and "loaded: []" in printed


def test_writing_the_json_and_csv_never_imports_flask(tmp_path):
    """What 04 calls for --csv, --json and --details, on Results with crops and heatmaps: the
    web page's Flask stays unloaded on the command line."""
    printed = run_python(
        "import importlib, sys\nimport numpy as np\n"
        "from pathlib import Path\n"
        "from deepfake_detect.inference import records, table\n"
        "from deepfake_detect.inference.results import FaceScore, Result\n"
        "from deepfake_detect.settings import load_config\n"
        "importlib.import_module('04-detect_deepfakes')\n"
        "cfg = load_config()\n"
        "face = FaceScore(0, 0, (1, 2, 30, 40), 0.99, 0.3, np.zeros((8, 8, 3), np.uint8), np.eye(2), 0.3)\n"
        "results = [Result('a.png', 'image', frame_indices=[0], faces=[face], p_real=0.3, verdict='FAKE')]\n"
        f"out = Path({str(tmp_path)!r})\n"
        "document = records.results_document(results, cfg, 'model.keras', '', True, True)\n"
        "records.write_results_json(out / 'a.json', document)\n"
        "records.write_results_csv(out / 'a.csv', results, cfg, True)\n"
        "print(table.result_lines(results[0], 10, True))\n"
        "print('flask loaded:', 'flask' in sys.modules)\n")
    assert "flask loaded: False" in printed and "Grad-CAM peak" in printed
    face = json.loads((tmp_path / "a.json").read_text())["inputs"][0]["face_scores"][0]
    assert face["overlay"].startswith("data:image/jpeg;base64,") and face["heatmap_peak_x"] == 0.25
    assert read_csv(tmp_path / "a-faces.csv")[0]["heatmap_peak_x"] == "0.25"


def test_confident_rule_from_the_settings(workspace, scorer, tmp_path):
    config = write_config(tmp_path / "confident.py", RUNS_DIR=workspace["root"] / "runs", VIDEO_SCORE="confident")
    json_path = tmp_path / "scores.json"
    status = stage04.main(["--config", str(config), str(workspace["media"]["astronaut.mp4"]),
                           "--details", "--json", str(json_path)], scorer=scorer)
    assert status == 0
    document = json.loads(json_path.read_text())
    record = document["inputs"][0]
    assert document["score_rule"] == "confident"
    face_scores = [f["p_real"] for f in record["face_scores"]]
    assert record["p_real"] == pytest.approx(confident_score(face_scores))


def test_a_detector_failure_stays_in_its_own_row(workspace, scorer, tmp_path, monkeypatch):
    """A frame the detector raises on, or reports as unsearchable, fails only its own input;
    the inputs after it still get their own frames (the reading thread stays in step)."""
    from deepfake_detect.faces.detector import FrameDetectionError

    media = workspace["media"]
    cfg = load_config(write_config(tmp_path / "one.py", RUNS_DIR=workspace["root"] / "runs", MTCNN_BATCH_SIZE=1))
    inputs = [media["astronaut.mp4"], media["plain.mp4"], media["hopper.jpg"], media["plain.png"]]
    expected = list(scorer.score_files(inputs, cfg))
    real_detector = scorer.detector

    def flaky_detector(images_rgb):
        if images_rgb[0].shape[:2] == (240, 320):   # the frames of plain.mp4
            raise RuntimeError("detector broke")
        if images_rgb[0].shape[:2] == (400, 400):   # plain.png, doubled by RESIZE_RULES
            return [FrameDetectionError("could not search this frame")]
        return real_detector(images_rgb)

    monkeypatch.setattr(scorer, "detector", flaky_detector)
    results = list(scorer.score_files(inputs, cfg))
    assert [r.status for r in results] == ["scored", "failed", "scored", "failed"]
    assert "detector broke" in results[1].reason and results[1].p_real is None
    assert "could not be searched" in results[3].reason and results[3].p_real is None
    for got, want in ((results[0], expected[0]), (results[2], expected[2])):
        assert got.frame_indices == want.frame_indices
        assert got.p_real == pytest.approx(want.p_real, abs=1e-6)


def test_reading_ahead_changes_nothing_but_speed(workspace, scorer, cfg):
    media = workspace["media"]
    inputs = [media[n] for n in ("astronaut.mp4", "notes.txt", "plain.mp4", "hopper.jpg", "text.mp4")]
    ahead = list(scorer.score_files(inputs, cfg))
    inline = list(scorer.score_files(inputs, cfg, read_ahead=False))
    assert [(r.path, r.status, r.frame_indices, len(r.faces)) for r in ahead] == \
           [(r.path, r.status, r.frame_indices, len(r.faces)) for r in inline]
    assert [r.p_real for r in ahead] == pytest.approx([r.p_real for r in inline], abs=1e-6)


def test_ray_actors_find_their_job_by_name_and_score_as_here(workspace, scorer, cfg, monkeypatch):
    """What each Ray actor runs (batch.start_scorer once, then batch.score_input per input),
    here in this process: importable by name, and the same Result as the local scorer's."""
    from deepfake_detect.inference import batch
    from deepfake_detect.jobs.ray_cluster import function_spec, resolve_function

    assert function_spec(batch.score_input) == ("deepfake_detect.inference.batch", "score_input")
    assert resolve_function(function_spec(batch.start_scorer)) is batch.start_scorer
    monkeypatch.setattr(batch, "Scorer", lambda model_path: scorer)  # the model is already loaded
    monkeypatch.setattr(batch, "_scorer", None)  # restored, with the options, when the test ends
    monkeypatch.setattr(batch, "_explain", False)
    batch.start_scorer(str(workspace["model"]), False)
    path = workspace["media"]["hopper.jpg"]
    assert batch.score_input(path, cfg).p_real == pytest.approx(scorer.score_file(path, cfg).p_real, abs=1e-6)


def test_annotate_draws_boxes_on_images_and_videos(workspace, scorer, tmp_path):
    media = workspace["media"]
    small = tmp_path / "small.png"  # 256 px wide: RESIZE_RULES doubles it, as for video frames
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(media["astronaut.png"])), (256, 256)))
    out = tmp_path / "annotated"
    assert run_cli(workspace, scorer, media["astronaut.png"], small, media["astronaut.mp4"],
                   "--annotate", out) == 0
    original = cv2.imread(str(media["astronaut.png"]))
    drawn = cv2.imread(str(out / "astronaut-annotated.png"))
    assert drawn.shape == original.shape
    assert np.count_nonzero(np.any(drawn != original, axis=2)) > 500  # the box and its label
    assert cv2.imread(str(out / "small-annotated.png")).shape[:2] == (512, 512)
    capture = cv2.VideoCapture(str(out / "astronaut-annotated.mp4"))
    try:
        assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    finally:
        capture.release()
    assert (out / "settings-04.json").is_file()
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_default_run_is_the_newest_and_run_can_be_chosen(tmp_path):
    runs = tmp_path / "runs"
    for name, mtime in (("older", 1_000_000), ("newer", 2_000_000)):
        (runs / name).mkdir(parents=True)
        (runs / name / "model.keras").write_bytes(b"x")
        os.utime(runs / name / "model.keras", (mtime, mtime))
    (runs / "unfinished").mkdir()
    (runs / ".partial").mkdir()  # hidden folders are never a run, however new
    (runs / ".partial" / "model.keras").write_bytes(b"x")
    assert find_run_model(runs) == runs / "newer" / "model.keras"
    assert find_run_model(runs, "older") == runs / "older" / "model.keras"
    assert find_run_model(runs, str(runs / "older")) == runs / "older" / "model.keras"
    assert find_run_model(runs, str(runs / "older" / "model.keras")) == runs / "older" / "model.keras"
    with pytest.raises(ModelError, match="unfinished"):
        find_run_model(runs, "unfinished")
    with pytest.raises(ModelError, match="03-train_cnn.py"):
        find_run_model(tmp_path / "no_runs")


def test_usage_settings_and_model_errors_exit_2(workspace, scorer, tmp_path, capsys):
    astronaut = str(workspace["media"]["astronaut.png"])
    empty_runs = write_config(tmp_path / "empty.py", RUNS_DIR=tmp_path / "no_runs")
    assert stage04.main(["--config", str(empty_runs), astronaut]) == 2
    assert "no trained model" in capsys.readouterr().err
    assert stage04.main(["--config", str(workspace["config"]), "--run", "nope", astronaut]) == 2
    assert "--run nope" in capsys.readouterr().err
    broken = tmp_path / "runs" / "broken"
    broken.mkdir(parents=True)
    (broken / "model.keras").write_text("not a model")
    assert stage04.main(["--config", str(workspace["config"]), "--run", str(broken), astronaut]) == 2
    assert "cannot load the model" in capsys.readouterr().err
    bad_setting = tmp_path / "bad.py"
    bad_setting.write_text('VIDEO_SCORE = "median"\n')
    assert stage04.main(["--config", str(bad_setting), astronaut]) == 2
    only_text = tmp_path / "only_text"
    only_text.mkdir()
    (only_text / "notes.txt").write_text("x")
    assert run_cli(workspace, scorer, only_text) == 2
    with pytest.raises(SystemExit) as exit_info:
        stage04.main([])
    assert exit_info.value.code == 2


def test_main_loads_the_newest_run_by_itself(workspace, capsys):
    """The whole command as a user runs it: config, default run, model and detector loading."""
    status = stage04.main(["--config", str(workspace["config"]), str(workspace["media"]["hopper.jpg"])])
    assert status == 0
    output = capsys.readouterr().out
    assert f"model={workspace['model']}" in output
    assert "1 scored, 0 not scored" in output


def test_real_dfdc_clip(workspace, scorer, tmp_path, dfdc_sample_dir):
    clip = dfdc_sample_dir / "videos" / "abqwwspghj.mp4"
    json_path = tmp_path / "scores.json"
    assert run_cli(workspace, scorer, clip, "--details", "--json", json_path) == 0
    record = json.loads(json_path.read_text())["inputs"][0]
    assert record["frames"] == 11  # 300 frames at 29.97 fps, one kept per second
    assert record["faces"] >= 8 and record["status"] == "scored"
    widths = {face["width"] for face in record["face_scores"] if face["width"] is not None}
    assert max(widths) < 633  # boxes in the 633x356 frames stage 00 saves, not the 1920 px original


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
