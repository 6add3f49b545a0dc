"""Stage 03's out-of-core input: CACHE = "auto" | "memory" | "disk" (deepfake_detect/training/pipeline.py).

    .venv/bin/pytest tests/test_03_cache.py

Crops are the portrait crops of tests/test_03_train.py at INPUT_SIZE 32. The disk cache must give
exactly the images the memory cache gives, be read back without decoding, survive a run killed
while writing it (never trusting the half-written files), and a whole stage 03 run with
CACHE = "disk" must train, evaluate and remove its cache. About 40 s on a 2-core CPU.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from deepfake_detect import settings
from deepfake_detect.training import pipeline
from deepfake_detect.training.batches import load_split
from deepfake_detect.training.cache import cache_bytes, choose_cache
from deepfake_detect.training.split_files import list_split
from tests.test_03_train import TEST_INPUT_SIZE, run_script, train_config, write_split_crops

REPO_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("split_dataset")
    write_split_crops(folder, {"train": 3, "val": 2, "test": 2}, crops_per_video=3)
    return folder


def test_auto_picks_disk_only_above_the_share_of_available_memory():
    crop = TEST_INPUT_SIZE * TEST_INPUT_SIZE * 3
    where, why = choose_cache("auto", 1000, TEST_INPUT_SIZE, available_bytes=4000 * crop)
    assert where == "memory" and "no more than 50%" in why
    where, why = choose_cache("auto", 1000, TEST_INPUT_SIZE, available_bytes=1999 * crop)
    assert where == "disk" and "cached on disk" in why
    assert choose_cache("memory", 10 ** 9, 380, available_bytes=1)[0] == "memory"
    assert choose_cache("disk", 1, 32, available_bytes=10 ** 12)[0] == "disk"
    # 420,000 balanced DFDC crops at 128 px: 20.6 GB, the figure the docs quote.
    assert round(cache_bytes(420_000, 128) / 1e9, 1) == 20.6


def test_wrong_cache_setting_is_a_config_error(tmp_path, split_dir):
    cfg = settings.load_config(train_config(tmp_path / "c.py", split_dir, tmp_path / "runs", CACHE="ssd"))
    with pytest.raises(settings.ConfigError, match="CACHE = 'ssd': choose one of auto, memory, disk"):
        settings.check_training_settings(cfg)


def images_of(dataset):
    return np.concatenate([x.numpy() for x, _ in dataset]), np.concatenate([y.numpy() for _, y in dataset])


def test_disk_cache_gives_the_memory_cache_images_and_is_read_back_without_decoding(
        tmp_path, split_dir, monkeypatch):
    cfg = settings.load_config(train_config(tmp_path / "c.py", split_dir, tmp_path / "runs"))
    files = list_split(split_dir, "val")
    in_memory, _ = load_split(files, cfg, "val")
    on_disk, readable = load_split(files, cfg, "val", tmp_path / "cache")
    expected = images_of(in_memory)
    np.testing.assert_array_equal(images_of(on_disk)[0], expected[0])
    np.testing.assert_array_equal(images_of(on_disk)[1], expected[1])
    assert readable == files
    cache_files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert [name.split(".", 1)[1] for name in cache_files] == ["data-00000-of-00001", "index"], cache_files

    # A second run reads the finished cache: decoding any crop now would fail.
    def no_decoding(path, input_size):
        raise AssertionError(f"decoded {path} although it is cached")

    monkeypatch.setattr(pipeline, "read_face_rgb", no_decoding)
    again, _ = load_split(files, cfg, "val", tmp_path / "cache")
    np.testing.assert_array_equal(images_of(again)[0], expected[0])


def test_train_split_on_disk_is_shuffled_within_a_bounded_buffer(tmp_path, split_dir):
    cfg = settings.load_config(train_config(tmp_path / "c.py", split_dir, tmp_path / "runs", AUGMENT=False))
    files = list_split(split_dir, "train")
    dataset, readable = load_split(files, cfg, "train", tmp_path / "cache")
    assert sorted(readable) == sorted(files) and readable != files  # written in a shuffled order
    labels = [images_of(dataset)[1] for _ in range(2)]
    assert sorted(labels[0]) == sorted(label for _, label in files)
    assert list(labels[0]) != list(labels[1])                        # reshuffled every epoch


KILLED_WHILE_WRITING = textwrap.dedent("""
    import importlib, os, signal, sys
    from pathlib import Path
    from deepfake_detect import settings
    from deepfake_detect.training.cache import disk_cache
    from deepfake_detect.training.pipeline import decode_dataset
    from deepfake_detect.training.split_files import list_split
    cfg = settings.load_config(sys.argv[1])
    files = list_split(cfg.SPLIT_DIR, "val")
    finished, partial = disk_cache(Path(sys.argv[2]), "val", files, cfg.INPUT_SIZE)
    decoded = decode_dataset(files, cfg.INPUT_SIZE, partial)
    for index, _ in enumerate(decoded):
        if index == 3:  # killed with the cache half written: no clean-up of any kind runs
            os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_cache_half_written_by_a_killed_run_is_never_trusted(tmp_path, split_dir):
    config = train_config(tmp_path / "c.py", split_dir, tmp_path / "runs")
    cache_dir = tmp_path / "cache"
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(config), str(cache_dir)],
                            cwd=REPO_DIR, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    left = sorted(p.name for p in cache_dir.iterdir())
    assert left and all(".partial-" in name for name in left), left   # a lockfile and a temporary file

    cfg = settings.load_config(config)
    files = list_split(split_dir, "val")
    dataset, _ = load_split(files, cfg, "val", cache_dir)
    reference, _ = load_split(files, cfg, "val")
    np.testing.assert_array_equal(images_of(dataset)[0], images_of(reference)[0])
    assert not [p for p in cache_dir.iterdir() if ".partial-" in p.name]


def test_stage_03_with_a_disk_cache_trains_evaluates_and_removes_it(tmp_path, split_dir):
    config = train_config(tmp_path / "c.py", split_dir, tmp_path / "runs", CACHE="disk", EPOCHS=1)
    result = run_script("--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CACHE = 'disk'" in result.stdout
    run_dir = tmp_path / "runs" / "tiny"
    assert (run_dir / "metrics.json").is_file() and (run_dir / "model.keras").is_file()
    assert not (run_dir / "cache").exists()
