"""Tests of stage 03 (03-train_cnn.py; deepfake_detect/training/, metrics.py, plots.py, models/network.py).

    .venv/bin/pytest tests/test_03_train.py

Face crops are cut from the two real portraits of deepfake_detect.sample (astronaut = "real",
Grace Hopper = "fake", with small random shifts and brightness changes) and written as
<SPLIT_DIR>/{train,val,test}/{real,fake}/<video>-NNN-NN.png, as stage 02 lays them out. Training
runs use WEIGHTS = None and INPUT_SIZE = 32, so nothing is downloaded and the file takes about
a minute on a 2-core CPU. The multi-device run splits the CPU into two logical devices in a
subprocess (that must happen before TensorFlow starts).
"""

import hashlib
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_detect import settings
from deepfake_detect.training import epoch_end
from deepfake_detect.training.loop import build_training, make_steps
from deepfake_detect.training.pipeline import (affine_matrices, augment_batch, batch_dataset, decode_dataset, fill_cache,
                                                random_affine_matrices, warp_images)
from deepfake_detect.training.split_files import count_files, list_split, list_splits, SplitFolderError, video_of
from deepfake_detect.metrics import evaluate_scores, log_loss, video_scores
from deepfake_detect.files import write_png
from deepfake_detect.models.network import CLASS_NAMES, prepare_faces
from tests.conftest import TRAINING_TIMEOUT_S, write_config

pytestmark = pytest.mark.timeout(TRAINING_TIMEOUT_S)  # trains a model: longer than pytest.ini's limit

REPO_DIR = Path(__file__).resolve().parent.parent
SCRIPT = REPO_DIR / "03-train_cnn.py"
TEST_INPUT_SIZE = 32
# Each class's portrait: real crops show the astronaut, fake crops Grace Hopper.
PORTRAIT_OF_CLASS = {"real": "astronaut", "fake": "hopper"}


def face_box(landmarks):
    """(x0, y0, x1, y1) around five facial landmarks: a square of 2.6 eye distances."""
    points = np.array(landmarks, float)
    center = points.mean(axis=0)
    half = 1.3 * np.linalg.norm(points[1] - points[0])
    return center[0] - half, center[1] - half, center[0] + half, center[1] + half


def write_split_crops(split_dir, videos_per_class=None, crops_per_video=3, seed=0):
    """Write face crops as stage 02 does; return {split: [(path, label)]} in list_split order.

    `videos_per_class` maps split -> videos of each class (default train 4, val 2, test 2).
    Each video has its own offset and brightness; its crops vary a little around them.
    """
    from deepfake_detect.sample import LANDMARKS, portrait_images

    videos_per_class = videos_per_class or {"train": 4, "val": 2, "test": 2}
    rng = np.random.default_rng(seed)
    portraits = portrait_images()
    for split, count in videos_per_class.items():
        for class_name, person in PORTRAIT_OF_CLASS.items():
            folder = Path(split_dir) / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            image = portraits[person]
            x0, y0, x1, y1 = face_box(LANDMARKS[person])
            size = x1 - x0
            for video_index in range(count):
                video = f"{split}{class_name}{video_index}x"
                base_shift, base_gain = rng.uniform(-0.05, 0.05, 2) * size, rng.uniform(-20, 20)
                for frame in range(crops_per_video):
                    dx, dy = base_shift + rng.uniform(-0.03, 0.03, 2) * size
                    crop = image[int(y0 + dy):int(y1 + dy), int(x0 + dx):int(x1 + dx)]
                    crop = np.clip(crop.astype(np.float32) + base_gain + rng.uniform(-5, 5), 0, 255)
                    bgr = cv2.cvtColor(crop.astype(np.uint8), cv2.COLOR_RGB2BGR)
                    write_png(folder / f"{video}-{frame:03d}-00.png", bgr)
    return {split: list_split(split_dir, split) for split in videos_per_class}


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("split_dataset")
    write_split_crops(folder)
    (folder / "split.csv").write_text("file,split,class,video,group\n"  # as stage 02 writes it
                                      "train/fake/trainfake0x-000-00.png,train,fake,trainfake0x,trainfake0x\n")
    return folder


def train_config(path, split_dir, runs_dir, **overrides):
    """A config override for a tiny, offline training run."""
    values = dict(SPLIT_DIR=split_dir, RUNS_DIR=runs_dir, RUN_NAME="tiny", WEIGHTS=None,
                  INPUT_SIZE=TEST_INPUT_SIZE, BATCH_SIZE=8, EPOCHS=2, EARLY_STOPPING_PATIENCE=10)
    values.update(overrides)
    return write_config(path, **values)


def run_script(*args, timeout=900):  # a guard against a hang, not a speed test: loaded machines are slow
    """Run 03-train_cnn.py in a fresh Python (so TensorFlow's devices can be configured)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_DIR))
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO_DIR, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ model and labels

def test_model_shape_and_parameter_count():
    import keras

    from deepfake_detect.models.network import build_model

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("EfficientNetB0", 128, weights=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.input_shape == (None, 128, 128, 3)
    assert model.output_shape == (None, 1)
    # EfficientNet-B0 without its top (4,049,564) + Dense 512 + Dense 128 + Dense 1.
    assert model.count_params() == 4_049_564 + (1280 * 512 + 512) + (512 * 128 + 128) + (128 + 1)
    assert [layer.__class__.__name__ for layer in model.layers[1:]] == ["Dense", "Dropout", "Dense", "Dense"]
    assert model.layers[2].rate == 0.5
    assert model.layers[-1].activation.__name__ == "sigmoid"
    # Mixed precision computes in float16 but the probability leaves in float32.
    assert model.layers[1].compute_dtype == "float16"
    assert model.layers[-1].compute_dtype == "float32"


def test_batchnorm_momentum_setting_reaches_every_backbone_batchnorm():
    import keras

    from deepfake_detect.models.network import build_model

    def momenta(model):
        return {layer.momentum for layer in model.layers[0].layers
                if isinstance(layer, keras.layers.BatchNormalization)}

    assert momenta(build_model("EfficientNetB0", 32, weights=None)) == {0.99}  # the backbone's own
    assert momenta(build_model("EfficientNetB0", 32, weights=None, batchnorm_momentum=0.9)) == {0.9}


def test_labels_follow_flow_from_directory_fake_0_real_1(split_dir):
    assert CLASS_NAMES == ("fake", "real")
    files = list_splits(split_dir)
    for split, items in files.items():
        for path, label in items:
            assert path.parent.name == CLASS_NAMES[label]
    counts = count_files(files)
    assert counts["train"] == {"fake": {"crops": 12, "videos": 4}, "real": {"crops": 12, "videos": 4}}
    assert counts["test"]["real"] == {"crops": 6, "videos": 2}
    assert video_of("aabbccddee-007-01.png") == "aabbccddee"
    assert video_of("my-video-name-012-00.png") == "my-video-name"


def test_empty_or_one_class_split_is_a_clear_error(tmp_path, capsys):
    script = importlib.import_module("03-train_cnn")
    write_split_crops(tmp_path / "one_class", {"train": 1, "val": 1, "test": 1}, crops_per_video=1)
    for path in (tmp_path / "one_class" / "train" / "real").iterdir():
        path.unlink()
    with pytest.raises(SplitFolderError, match=r"train has no real crops"):
        list_splits(tmp_path / "one_class")

    write_split_crops(tmp_path / "empty", {"train": 1, "val": 1, "test": 1}, crops_per_video=1)
    for class_name in CLASS_NAMES:
        for path in (tmp_path / "empty" / "val" / class_name).iterdir():
            path.unlink()
    config = train_config(tmp_path / "empty.py", tmp_path / "empty", tmp_path / "runs")
    assert script.main(["--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "val has no face crops" in error and "02-prepare_fake_real_dataset.py" in error
    assert not (tmp_path / "runs").exists()

    config = train_config(tmp_path / "missing.py", tmp_path / "nowhere", tmp_path / "runs")
    assert script.main(["--config", str(config)]) == 2
    assert "run 02-prepare_fake_real_dataset.py first" in capsys.readouterr().err


def test_interrupted_run_with_another_input_size_is_refused(split_dir, tmp_path, capsys):
    script = importlib.import_module("03-train_cnn")
    run_dir = tmp_path / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    (run_dir / "settings-03.json").write_text(json.dumps({"BACKBONE": "EfficientNetB0", "INPUT_SIZE": 64}))
    config = train_config(tmp_path / "tiny.py", split_dir, tmp_path / "runs")
    assert script.main(["--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "was started with INPUT_SIZE = 64, not 32" in error and "--overwrite" in error
    (tmp_path / "runs" / "mine").mkdir()
    (tmp_path / "runs" / "mine" / "notes.txt").write_text("someone's notes")
    assert script.main(["--config", str(config), "--name", "mine"]) == 2
    assert "is not a training run" in capsys.readouterr().err
    assert (tmp_path / "runs" / "mine" / "notes.txt").is_file()


def test_imagenet_weights_without_network_say_what_to_set(split_dir, tmp_path):
    # The download goes to a proxy on a closed local port, so nothing can leave the machine,
    # into an empty Keras cache, so a weights file cached by an earlier download is not used.
    config = train_config(tmp_path / "imagenet.py", split_dir, tmp_path / "runs", WEIGHTS="imagenet")
    closed = "http://127.0.0.1:9"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_DIR), KERAS_HOME=str(tmp_path / "keras"),
               HTTPS_PROXY=closed, https_proxy=closed, HTTP_PROXY=closed, http_proxy=closed, NO_PROXY="", no_proxy="")
    result = subprocess.run([sys.executable, str(SCRIPT), "--config", str(config)], cwd=REPO_DIR, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "could not download the ImageNet weights of EfficientNetB0" in error[0]
    assert "set WEIGHTS = None" in error[0] and "_notop.h5" in error[0]
    assert not (tmp_path / "runs" / "tiny" / "model.keras").exists()


# ------------------------------------------------------------------ input pipeline

def test_pipeline_prepares_faces_exactly_as_detection_and_does_not_augment_val(split_dir):
    files = list_split(split_dir, "val")
    decoded = decode_dataset(files, TEST_INPUT_SIZE)
    assert fill_cache(decoded, len(files), "decoding val") == []
    dataset = batch_dataset(decoded, len(files), batch_size=5, training=False,
                                     augmentation={"rotation_range": 10, "horizontal_flip": True})
    first = np.concatenate([x.numpy() for x, _ in dataset])
    second = np.concatenate([x.numpy() for x, _ in dataset])
    labels = np.concatenate([y.numpy() for _, y in dataset])
    faces = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path, _ in files]
    np.testing.assert_array_equal(first, prepare_faces(faces, TEST_INPUT_SIZE))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(labels, [label for _, label in files])


def test_unreadable_crop_is_named_and_left_out(tmp_path):
    files = write_split_crops(tmp_path, {"val": 1}, crops_per_video=2)["val"]
    broken = files[1][0]
    broken.write_bytes(b"not a png")
    decoded = decode_dataset(files, TEST_INPUT_SIZE)
    assert fill_cache(decoded, len(files), "decoding val") == [1]
    dataset = batch_dataset(decoded, len(files) - 1, batch_size=8, training=False)
    assert sum(len(y) for _, y in dataset) == len(files) - 1


def test_augmentation_keeps_shape_and_range_and_varies_per_image(split_dir):
    import tensorflow as tf

    AUGMENTATION = settings.load_config().AUGMENTATION

    files = list_split(split_dir, "train")
    decoded = decode_dataset(files, TEST_INPUT_SIZE)
    fill_cache(decoded, len(files), "decoding train")
    crops = np.stack([image.numpy() for image, _, _ in decoded])          # uint8, as cached
    augmented = augment_batch(tf.constant(crops), AUGMENTATION).numpy()
    assert augmented.shape == crops.shape and augmented.dtype == np.uint8
    changed = np.abs(augmented.astype(int) - crops).reshape(len(files), -1).mean(axis=1)
    assert (changed > 1).all(), "every training image must be warped"

    trained = batch_dataset(decoded, len(files), 64, training=True, augmentation=AUGMENTATION)
    epoch1, labels1 = next(iter(trained))
    epoch2, labels2 = next(iter(trained))
    assert epoch1.shape == crops.shape and epoch1.dtype == tf.float32
    assert 0.0 <= epoch1.numpy().min() and epoch1.numpy().max() <= 1.0
    assert sorted(labels1.numpy()) == sorted(labels2.numpy())
    assert not np.array_equal(epoch1.numpy(), epoch2.numpy()), "a new shuffle and warp every epoch"

    # The warp's geometry: the identity keeps a batch, a flip mirrors it, a shift of 3 px moves it.
    zero, one = tf.zeros((len(files),)), tf.ones((len(files),))

    def warp(shift_x=0.0, flip=0.0):
        return warp_images(tf.constant(crops), affine_matrices(
            zero, shift_x * one, zero, zero, one, one, flip * one, TEST_INPUT_SIZE, TEST_INPUT_SIZE)).numpy()
    np.testing.assert_array_equal(warp(), crops)
    np.testing.assert_array_equal(warp(flip=1.0), crops[:, :, ::-1])
    np.testing.assert_array_equal(warp(shift_x=3.0)[:, :, :-3], crops[:, :, 3:])
    # Random warps agree with TensorFlow's own projective warp (on float32) given the same
    # matrices, up to OpenCV's 1/32-pixel interpolation steps and rounding to whole levels.
    matrices = random_affine_matrices(len(files), TEST_INPUT_SIZE, TEST_INPUT_SIZE, AUGMENTATION)
    reference = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(crops, tf.float32), transforms=tf.concat([tf.reshape(matrices, (-1, 6)),
                                                                 tf.zeros((len(files), 2))], 1),
        output_shape=[TEST_INPUT_SIZE, TEST_INPUT_SIZE], fill_value=0.0, interpolation="BILINEAR",
        fill_mode="NEAREST").numpy()
    difference = np.abs(warp_images(tf.constant(crops), matrices).numpy() - reference)
    assert difference.max() <= 4 and difference.mean() < 0.5


# ------------------------------------------------------------------ metrics

def test_metrics_match_hand_computed_values_at_frame_and_video_level():
    # Video a (fake): 0.2, 0.4 -> mean 0.3. Video b (fake): 0.6 -> 0.6.
    # Video c (real): 0.7, 0.9 -> 0.8. Video d (real): 0.3, 0.5 -> 0.4.
    videos = ["a", "a", "b", "c", "c", "d", "d"]
    labels = [0, 0, 0, 1, 1, 1, 1]
    scores = [0.2, 0.4, 0.6, 0.7, 0.9, 0.3, 0.5]
    metrics = evaluate_scores(videos, labels, scores, threshold=0.5)

    frame = metrics["frame"]
    # Called real (>= 0.5): 0.6 (fake), 0.7, 0.9, 0.5 (real); called fake: 0.2, 0.4 (fake), 0.3 (real).
    assert frame["count"] == 7
    assert frame["confusion_matrix"] == [[2, 1], [1, 3]]
    assert frame["accuracy"] == pytest.approx(5 / 7)
    # Real-fake pairs ranked correctly: 0.7, 0.9 beat all 3 fakes; 0.5 beats 0.2, 0.4; 0.3 beats 0.2.
    assert frame["roc_auc"] == pytest.approx((3 + 3 + 2 + 1) / 12)
    expected_loss = -np.mean(np.log([0.8, 0.6, 0.4, 0.7, 0.9, 0.3, 0.5]))
    assert frame["log_loss"] == pytest.approx(expected_loss)

    video = metrics["video"]
    assert video_scores(videos, labels, scores) == [
        ("a", 0, pytest.approx(0.3), 2), ("b", 0, pytest.approx(0.6), 1),
        ("c", 1, pytest.approx(0.8), 2), ("d", 1, pytest.approx(0.4), 2)]
    assert video["count"] == 4
    assert video["confusion_matrix"] == [[1, 1], [1, 1]]
    assert video["accuracy"] == pytest.approx(0.5)
    assert video["roc_auc"] == pytest.approx(3 / 4)  # c beats a and b; d beats a only
    assert video["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.4, 0.8, 0.4])))


def test_one_class_test_split_reports_null_auc():
    metrics = evaluate_scores(["a", "a", "b"], [1, 1, 1], [0.9, 0.7, 0.2])
    assert metrics["frame"]["roc_auc"] is None and metrics["video"]["roc_auc"] is None
    assert metrics["frame"]["confusion_matrix"] == [[0, 0], [1, 2]]
    assert json.loads(json.dumps(metrics))["video"]["roc_auc"] is None


def test_epoch_log_after_a_resume_remembers_best_val_loss_and_patience(tmp_path):
    import keras

    # Four epochs were logged before an interruption; the best val loss, 0.5, was in epoch 1.
    rows = [{"epoch": 1, "loss": 0.9, "val_loss": 0.5}, {"epoch": 2, "loss": 0.8, "val_loss": 0.6},
            {"epoch": 3, "loss": 0.7, "val_loss": 0.7}, {"epoch": 4, "loss": 0.6, "val_loss": 0.8}]
    epoch_end.write_history(tmp_path / "history.csv", rows)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    # Resuming after epoch 3 (the logged epoch 4 was never backed up, so it is redone).
    log = epoch_end.EpochLog(tmp_path, tmp_path / "backup", patience=3, writes_run=True, start_epoch=3)
    assert (log.best, log.best_epoch) == (0.5, 1)
    # Two epochs since the best when resuming, patience 3: one more epoch, then stop.
    assert log.end_epoch(4, {"loss": 0.6, "val_loss": 0.75, "accuracy": 0.5}, model, optimizer, 1e-3) == "early stopping"
    history = epoch_end.read_history(tmp_path / "history.csv")
    assert [row["epoch"] for row in history] == [1, 2, 3, 4] and history[-1]["val_loss"] == 0.75
    assert not (tmp_path / "model.keras").exists(), "not better than the best before the interruption"
    assert epoch_end.backup_epoch(tmp_path / "backup") == 4
    # The backup gives back the weights and the optimizer's state; a NaN loss stops training.
    saved = model.get_weights()
    model.set_weights([np.zeros_like(w) for w in saved])
    epoch_end.restore_backup(tmp_path / "backup", 4, model, optimizer)
    for restored, expected in zip(model.get_weights(), saved):
        np.testing.assert_array_equal(restored, expected)
    assert log.end_epoch(5, {"loss": float("nan"), "val_loss": 0.4}, model, optimizer, 1e-3) == "NaN loss"
    assert (tmp_path / "model.keras").is_file() and sorted(p.name for p in (tmp_path / "backup").glob("*.npz")) == \
        ["epoch-4.npz", "epoch-5.npz"]
    log.finish()
    assert not (tmp_path / "backup").exists()


class KilledHere(Exception):
    """Stands in for a kill -9 at one point of an epoch's end."""


def end_epochs_killed_at(run_dir, kill_at, monkeypatch, val_losses=(0.5, 0.4, 0.45)):
    """Run EpochLog over three epochs (by default val loss 0.5, 0.4, 0.45: epoch 2 is the best) with each
    epoch's own weights, and stop as a kill would just before the `kill_at`-th file of the run
    lands (every file is written to a temporary name and renamed: the rename is when it lands).
    Returns ({epoch: weights}, whether the kill came)."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    renames, real_replace = [], os.replace

    def replace(source, target):
        renames.append(target)
        if len(renames) == kill_at:
            raise KilledHere(str(target))
        return real_replace(source, target)

    log = epoch_end.EpochLog(run_dir, run_dir / "backup", patience=5, writes_run=True, start_epoch=0)
    weights = {}
    monkeypatch.setattr(os, "replace", replace)
    try:
        for epoch, val_loss in enumerate(val_losses, start=1):
            weights[epoch] = [np.full_like(w, epoch) for w in model.get_weights()]
            model.set_weights(weights[epoch])
            log.end_epoch(epoch, {"loss": 0.9, "val_loss": val_loss}, model, optimizer, 1e-3)
    except KilledHere:
        return weights, True
    finally:
        monkeypatch.setattr(os, "replace", real_replace)
    return weights, False


def test_a_kill_between_any_two_writes_resumes_with_model_and_history_paired(tmp_path, monkeypatch):
    """Wherever the kill lands, the resumed run's model.keras holds the weights of the epoch that
    its history.csv calls best, and history.csv ends at the epoch the weights resume from."""
    import keras

    kill_at, killed = 1, True
    while killed:
        run_dir = tmp_path / f"kill-{kill_at}"
        weights, killed = end_epochs_killed_at(run_dir, kill_at, monkeypatch)
        resumed = epoch_end.backup_epoch(run_dir / "backup")
        if resumed:  # what train_model does on the next start
            epoch_end.EpochLog(run_dir, run_dir / "backup", patience=5, writes_run=True, start_epoch=resumed)
        history = epoch_end.read_history(run_dir / "history.csv")
        assert [row["epoch"] for row in history] == list(range(1, resumed + 1)), (kill_at, history)
        _, best_epoch = epoch_end.best_of(history)
        if best_epoch is None:
            assert not (run_dir / "model.keras").exists(), kill_at
        else:
            saved = keras.models.load_model(run_dir / "model.keras").get_weights()
            for got, expected in zip(saved, weights[best_epoch]):
                np.testing.assert_array_equal(got, expected, err_msg=f"killed at rename {kill_at}")
        kill_at += 1
    assert kill_at > 8  # every rename of the three epochs' ends was a kill point


def test_a_cluster_resuming_an_epoch_behind_gets_that_epochs_best_model(tmp_path, monkeypatch):
    """A machine whose backup is one epoch ahead of a peer's resumes from the peer's epoch
    (loop.agree_on_epoch): model.keras is then the best as of that epoch, which the backup kept."""
    import keras

    weights, _ = end_epochs_killed_at(tmp_path, 0, monkeypatch, val_losses=(0.5, 0.45, 0.4))
    assert epoch_end.backup_epoch(tmp_path / "backup") == 3  # and model.keras holds epoch 3
    epoch_end.EpochLog(tmp_path, tmp_path / "backup", patience=5, writes_run=True, start_epoch=2)
    assert [row["epoch"] for row in epoch_end.read_history(tmp_path / "history.csv")] == [1, 2]
    for got, expected in zip(keras.models.load_model(tmp_path / "model.keras").get_weights(), weights[2]):
        np.testing.assert_array_equal(got, expected)


def test_training_step_under_mixed_precision_scales_the_loss(tmp_path):
    """MIXED_PRECISION on a GPU: the step wraps Adam in a LossScaleOptimizer, as compile would,
    and still trains (here on the CPU, which runs float16 too, slowly)."""
    import keras
    import tensorflow as tf

    cfg = settings.load_config(train_config(tmp_path / "c.py", tmp_path, tmp_path))
    strategy = tf.distribute.get_strategy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model, optimizer, metrics = build_training(cfg, strategy)
        train_step, _, _ = make_steps(strategy, model, optimizer, metrics)
        before = [w.copy() for w in model.get_weights()]
        x = np.random.default_rng(0).uniform(0, 1, (8, TEST_INPUT_SIZE, TEST_INPUT_SIZE, 3)).astype(np.float32)
        train_step((tf.constant(x), tf.constant([0.0, 1.0] * 4)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.layers[1].compute_dtype == "float16" and np.isfinite(float(metrics["train"]["loss"].result()))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "no weight moved"


def read_events(folder):
    """{tag: {step: value}} of the scalars in a TensorBoard log folder, and the image tags."""
    import tensorflow as tf

    scalars, images = {}, set()
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    images.add(value.tag)
                else:
                    scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return scalars, images


def check_tensorboard_logs(run_dir, epochs):
    """The run's logs hold loss, accuracy, AUC and learning rate per epoch, and the val ROC."""
    train, _ = read_events(run_dir / "logs" / "train")
    validation, images = read_events(run_dir / "logs" / "validation")
    history = epoch_end.read_history(run_dir / "history.csv")
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_auc", "epoch_learning_rate"):
        assert sorted(train[tag]) == list(range(1, epochs + 1)), tag
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_auc"):
        assert sorted(validation[tag]) == list(range(1, epochs + 1)), tag
    assert [validation["epoch_loss"][row["epoch"]] for row in history] == pytest.approx(
        [row["val_loss"] for row in history], abs=1e-5)
    assert "val_roc" in images and "best_model_val_roc_auc" in validation


# ------------------------------------------------------------------ training runs
# One run serves the tests below, because tracing EfficientNet's training step takes ~25 s of CPU:
# it trains on the default (one-device) strategy, is SIGKILLed after its first epoch, and is
# started again on two logical CPU devices (MirroredStrategy), where it must resume and finish.
RESUME_EPOCHS = 3


@pytest.fixture(scope="module")
def killed_and_resumed_run(split_dir, tmp_path_factory):
    """(run_dir, config, epochs the killed run had finished, result of the resumed run)."""
    folder = tmp_path_factory.mktemp("runs")
    config = train_config(folder / "tiny.py", split_dir, folder / "runs", EPOCHS=RESUME_EPOCHS)
    run_dir = folder / "runs" / "tiny"
    backup = run_dir / "backup" / "training_metadata.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_DIR))
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(config)], cwd=REPO_DIR,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 900
        while not backup.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, f"the first run ended before backing up an epoch: {process.stderr.read()}"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()
    done_before = json.loads(backup.read_text())["epoch"]
    assert 1 <= done_before < RESUME_EPOCHS and not (run_dir / "metrics.json").exists()
    result = run_script("--config", str(config), "--cpu-devices", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, config, done_before, result


def test_run_killed_mid_training_resumes_where_it_stopped(killed_and_resumed_run):
    run_dir, _, done_before, result = killed_and_resumed_run
    assert "resuming the interrupted run" in result.stdout
    # Keras numbers epochs from 1: the second run starts after the last one the first run backed up.
    assert f"Epoch {done_before + 1}/{RESUME_EPOCHS}" in result.stdout and "Epoch 1/" not in result.stdout
    epochs = [row["epoch"] for row in epoch_end.read_history(run_dir / "history.csv")]
    assert epochs == list(range(1, RESUME_EPOCHS + 1)), "every epoch logged once"
    assert not (run_dir / "backup").exists() and not list(run_dir.glob(".tmp-*"))


def test_resumed_run_mirrors_training_over_two_logical_cpus(killed_and_resumed_run):
    result = killed_and_resumed_run[3]
    assert "devices: 2 logical CPU devices, 2 replica(s), float32" in result.stdout


def test_training_run_writes_every_output(killed_and_resumed_run, split_dir):
    from deepfake_detect.models.network import load_model

    run_dir, _, _, result = killed_and_resumed_run
    for name in ("model.keras", "history.csv", "predictions.csv", "metrics.json", "curves.png", "roc.png",
                 "settings-03.json", "MODEL_CARD.md"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "split.csv").read_bytes() == (split_dir / "split.csv").read_bytes()  # for stage 05's overlap check
    assert json.loads((run_dir / "settings-03.json").read_text())["INPUT_SIZE"] == TEST_INPUT_SIZE

    test_files = list_split(split_dir, "test")
    predictions = (run_dir / "predictions.csv").read_text().splitlines()
    assert predictions[0] == "file,video,label,label_name,score" and len(predictions) == 1 + len(test_files)
    first = predictions[1].split(",")
    assert first[0] == "test/fake/testfake0x-000-00.png" and first[1:4] == ["testfake0x", "0", "fake"]
    scores = [float(line.split(",")[4]) for line in predictions[1:]]
    assert all(0.0 <= score <= 1.0 for score in scores)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["frame"]["count"] == len(test_files) and metrics["video"]["count"] == 4
    assert set(metrics["frame"]) == {"count", "accuracy", "roc_auc", "log_loss", "confusion_matrix"}
    labels = [label for _, label in test_files]
    videos = [video_of(path.name) for path, _ in test_files]
    recomputed = evaluate_scores(videos, labels, scores)
    assert metrics["video"]["accuracy"] == recomputed["video"]["accuracy"]
    assert metrics["frame"]["log_loss"] == pytest.approx(recomputed["frame"]["log_loss"], abs=1e-5)

    sha256 = hashlib.sha256((run_dir / "model.keras").read_bytes()).hexdigest()
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert sha256 in card and "P(fake) = 1 - score" in card and f"{TEST_INPUT_SIZE} x {TEST_INPUT_SIZE}" in card
    assert "| train | 12 (4) | 12 (4) |" in card and "| videos | 4 |" in card
    assert "stage 03 finished" in result.stdout and "| crops | 12 |" in result.stdout
    check_tensorboard_logs(run_dir, RESUME_EPOCHS)  # as on several machines (test_03_multi_worker.py)

    # Detection's view: the input size from the model, and the same scores through prepare_faces.
    model = load_model(run_dir / "model.keras")
    assert model.input_shape[1] == TEST_INPUT_SIZE
    faces = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path, _ in test_files]
    detected = model.predict(prepare_faces(faces, model.input_shape[1]), verbose=0).reshape(-1)
    np.testing.assert_allclose(detected, scores, atol=1e-5)


def test_training_run_fits_a_temperature_on_the_val_split(killed_and_resumed_run):
    from deepfake_detect.training import calibration

    run_dir, _, _, result = killed_and_resumed_run
    fitted = json.loads((run_dir / calibration.CALIBRATION_FILE).read_text())
    assert calibration.TEMPERATURE_RANGE[0] < fitted["temperature"] < calibration.TEMPERATURE_RANGE[1]
    assert fitted["val_log_loss_calibrated"] <= fitted["val_log_loss_raw"] + 1e-9
    assert json.loads((run_dir / "metrics.json").read_text())["calibration"] == fitted
    assert f"**T = {fitted['temperature']:.4f}**" in (run_dir / "MODEL_CARD.md").read_text()
    assert f"test log loss {fitted['test_log_loss_raw']:.4f} raw -> " in result.stdout
    predictions = (run_dir / "predictions.csv").read_text().splitlines()[1:]
    labels = [int(line.split(",")[2]) for line in predictions]
    scores = [float(line.split(",")[4]) for line in predictions]
    assert fitted["test_log_loss_raw"] == pytest.approx(log_loss(labels, scores), abs=1e-5)


def test_finished_run_is_not_overwritten_unless_asked(killed_and_resumed_run, capsys):
    run_dir, config, _, _ = killed_and_resumed_run
    script = importlib.import_module("03-train_cnn")
    before = (run_dir / "model.keras").stat().st_mtime_ns
    assert script.main(["--config", str(config)]) == 2
    assert "is a finished run" in capsys.readouterr().err
    assert (run_dir / "model.keras").stat().st_mtime_ns == before
