"""Stage 02 (face crops -> balanced set -> train/val/test split): balancing both ways, the leak-free
group split, the per-file split, output safety (--replace, partial folders, hard links) and bad input.

Run: .venv/bin/pytest tests/test_02_prepare_dataset.py   (no TensorFlow needed; a few seconds)
"""

import csv
import importlib
import json
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import splitfolders

from conftest import write_config
from deepfake_detect.datasets.split import Crop, FilePlacer, balance_classes, split_by_group

stage02 = importlib.import_module("02-prepare_fake_real_dataset")
SEED = 1377


def make_dataset(root, videos, metadata=None, **settings):
    """A DFDC-layout dataset with real PNG crops under root; returns the config file's path.

    `videos`: {name: (label, original or None, crop count or None for no crops folder)}.
    Video files are placeholders (stage 02 never decodes them); `metadata` replaces the
    generated metadata.json text when given.
    """
    videos_dir, faces_dir = root / "videos", root / "out" / "faces"
    videos_dir.mkdir(parents=True)
    faces_dir.mkdir(parents=True)
    rng = np.random.default_rng(len(videos))
    entries = {}
    for name, (label, original, crop_count) in videos.items():
        (videos_dir / f"{name}.mp4").write_bytes(b"placeholder: stage 02 reads labels, not videos")
        entries[f"{name}.mp4"] = {"label": label, "split": "train",
                                  "original": f"{original}.mp4" if original else None}
        if crop_count is not None:
            (faces_dir / name).mkdir()
            (faces_dir / name / "faces.csv").write_text("frame,face,file\n")
            for index in range(crop_count):
                crop = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
                assert cv2.imwrite(str(faces_dir / name / f"{name}-{index:03d}-00.png"), crop)
    text = json.dumps(entries) if metadata is None else metadata
    if text is not False:
        (videos_dir / "metadata.json").write_text(text)
    return write_config(root / "config.py", VIDEOS_DIR=videos_dir, OUTPUT_DIR=root / "out",
                        FACES_DIR=faces_dir, **settings)


def paired_videos(pairs, crops=5, fakes_per_real=1):
    """`pairs` real videos r00.., each with `fakes_per_real` fakes made from it."""
    videos = {}
    for index in range(pairs):
        videos[f"r{index:02d}"] = ("REAL", None, crops)
        for fake in range(fakes_per_real):
            videos[f"f{index:02d}x{fake}"] = ("FAKE", f"r{index:02d}", crops)
    return videos


def run(config, *args):
    return stage02.main(["--config", str(config), *args])


def read_split_csv(out):
    with open(out / "split_dataset" / "split.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def files_under(folder):
    """{relative path: bytes} of every file under folder."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def split_layout(split_dir):
    """{relative png path} of the split folders, as stage 03 will see them."""
    return {p.relative_to(split_dir).as_posix() for p in split_dir.glob("*/*/*.png")}


# ------------------------------------------------------------------ balancing

def test_more_fakes_than_reals_downsamples_fakes_to_the_real_crop_count(tmp_path, capsys):
    config = make_dataset(tmp_path, paired_videos(4, crops=5, fakes_per_real=3))
    assert run(config) == 0
    prepared = tmp_path / "out" / "prepared_dataset"
    real, fake = sorted((prepared / "real").iterdir()), sorted((prepared / "fake").iterdir())
    assert len(real) == 20 and len(fake) == 20  # 60 fake crops drawn down to the 20 real ones
    assert "FAKE down-sampled at random from 60 to 20 crops" in capsys.readouterr().out
    source = tmp_path / "out" / "faces" / fake[0].name.rsplit("-", 2)[0] / fake[0].name
    assert fake[0].read_bytes() == source.read_bytes()
    assert os.path.samefile(fake[0], source)  # a hard link, not a second copy on disk


def test_fewer_fakes_than_reals_downsamples_reals_instead(tmp_path, capsys):
    videos = {**{f"r{i}": ("REAL", None, 6) for i in range(5)},
              **{f"f{i}": ("FAKE", f"r{i}", 4) for i in range(3)}}
    config = make_dataset(tmp_path, videos)
    assert run(config) == 0
    prepared = tmp_path / "out" / "prepared_dataset"
    assert len(list((prepared / "real").iterdir())) == len(list((prepared / "fake").iterdir())) == 12
    assert "fewer FAKE crops than REAL: REAL down-sampled at random from 30 to 12 crops instead" \
        in capsys.readouterr().out


def test_balancing_is_fixed_by_the_seed():
    crops = [Crop(Path(f"v{v}/{v}-{i}.png"), label, f"v{v}", f"v{v}")
             for v, label in enumerate(["REAL", "FAKE", "FAKE", "FAKE"]) for i in range(10)]
    first, _ = balance_classes(crops, SEED)
    again, _ = balance_classes(crops, SEED)
    other, _ = balance_classes(crops, SEED + 1)
    assert first == again
    assert Counter(c.label for c in first) == {"REAL": 10, "FAKE": 10}
    assert {c.name for c in first} != {c.name for c in other}


# ------------------------------------------------------------------ the split

def test_group_split_keeps_each_real_with_its_fakes_and_is_identical_on_rerun(tmp_path):
    videos = paired_videos(12, crops=4, fakes_per_real=2)
    # Two fakes of an original that is not in the dataset: grouped by that name all the same.
    videos.update({"orphan1": ("FAKE", "missing", 4), "orphan2": ("FAKE", "missing", 4)})
    config = make_dataset(tmp_path, videos)
    assert run(config) == 0
    rows = read_split_csv(tmp_path / "out")
    assert list(rows[0]) == ["file", "split", "class", "video", "group"]
    split_of_video = defaultdict(set)
    split_of_group = defaultdict(set)
    for row in rows:
        split_of_video[row["video"]].add(row["split"])
        split_of_group[row["group"]].add(row["split"])
        assert row["file"] == f"{row['split']}/{row['class']}/{Path(row['file']).name}"
    assert all(len(found) == 1 for found in split_of_group.values())
    for name, (label, original, _) in videos.items():
        if label == "FAKE" and name in split_of_video and original in split_of_video:
            assert split_of_video[name] == split_of_video[original], f"{name} left its original"
    assert {r["group"] for r in rows if r["video"].startswith("orphan")} == {"missing"}
    assert Counter(r["split"] for r in rows)["train"] > Counter(r["split"] for r in rows)["test"]
    # The CSV lists exactly the files on disk.
    split_dir = tmp_path / "out" / "split_dataset"
    assert split_layout(split_dir) == {r["file"] for r in rows}

    before = (tmp_path / "out" / "split_dataset" / "split.csv").read_text()
    assert run(config, "--replace") == 0
    assert (tmp_path / "out" / "split_dataset" / "split.csv").read_text() == before


def test_group_split_ratios_hold_per_class_in_crops():
    crops = []
    for group in range(100):
        for label, count in (("REAL", 10), ("FAKE", 10)):
            crops += [Crop(Path(f"{label}{group}-{i}.png"), label, f"{label}{group}", f"g{group}")
                      for i in range(count)]
    assignment, warnings = split_by_group(crops, (0.8, 0.1, 0.1), SEED)
    assert not warnings
    per = Counter((assignment[c.name], c.label) for c in crops)
    for label in ("REAL", "FAKE"):
        assert per["train", label] == 800 and per["val", label] == 100 and per["test", label] == 100


@pytest.mark.parametrize("seed", range(20))
def test_every_split_gets_both_classes_when_there_are_enough_groups(seed):
    # Six groups with no pairs (fakes of absent originals) and sizes that a plain cut would
    # lump together: each split still gets a real group and a fake group.
    sizes = {"REAL": [30, 2, 3], "FAKE": [25, 4, 2]}
    crops = [Crop(Path(f"{label}{g}-{i}.png"), label, f"{label}{g}", f"{label}{g}")
             for label, counts in sizes.items() for g, count in enumerate(counts) for i in range(count)]
    assignment, warnings = split_by_group(crops, (0.8, 0.1, 0.1), seed)
    assert not warnings
    present = {(assignment[c.name], c.label) for c in crops}
    assert present == {(s, label) for s in ("train", "val", "test") for label in ("REAL", "FAKE")}


def test_a_split_with_ratio_zero_stays_empty_without_complaint():
    crops = [Crop(Path(f"{label}{g}-0.png"), label, f"{label}{g}", f"g{g}")
             for g in range(10) for label in ("REAL", "FAKE")]
    assignment, warnings = split_by_group(crops, (0.9, 0.1, 0.0), SEED)
    assert not warnings
    assert Counter(assignment.values()) == {"train": 18, "val": 2}


def test_too_few_groups_is_reported_not_hidden(tmp_path, capsys):
    config = make_dataset(tmp_path, paired_videos(2, crops=4))
    assert run(config) == 0
    assert "the test split has no REAL crops: only 2 source group(s) have REAL crops" in capsys.readouterr().err
    assert (tmp_path / "out" / "split_dataset" / "test" / "real").is_dir()  # empty, but there for stage 03


def test_file_mode_is_the_original_split_folders_split(tmp_path, capsys):
    config = make_dataset(tmp_path, paired_videos(6, crops=10), SPLIT_MODE="file")
    assert run(config) == 0
    out = tmp_path / "out"
    reference = tmp_path / "split_by_splitfolders"
    splitfolders.ratio(str(out / "prepared_dataset"), output=str(reference), seed=SEED, ratio=(0.8, 0.1, 0.1))
    assert split_layout(out / "split_dataset") == split_layout(reference)
    rows = read_split_csv(out)
    leaking = sum(1 for g in {r["group"] for r in rows} if len({r["split"] for r in rows if r["group"] == g}) > 1)
    assert leaking > 0  # the reason group mode exists
    assert f"leak check: {leaking} of 6 source groups span two or more splits" in capsys.readouterr().out


# ------------------------------------------------------------- output safety

def test_refuses_a_non_empty_output_without_replace_and_rebuilds_with_it(tmp_path, capsys):
    config = make_dataset(tmp_path, paired_videos(3, crops=3))
    assert run(config) == 0
    split_dir = tmp_path / "out" / "split_dataset"
    (split_dir / "train" / "real" / "extra-000-00.png").write_bytes(b"left by hand")
    before = files_under(split_dir)
    capsys.readouterr()
    assert run(config) == 2
    assert "is not empty: pass --replace" in capsys.readouterr().err
    assert files_under(split_dir) == before
    assert run(config, "--replace") == 0
    assert not (split_dir / "train" / "real" / "extra-000-00.png").exists()
    assert {p.name for p in tmp_path.joinpath("out").iterdir()} == {"faces", "prepared_dataset", "split_dataset"}


def test_replace_never_deletes_a_folder_stage_02_did_not_make(tmp_path, capsys):
    config = make_dataset(tmp_path, paired_videos(3, crops=3))
    notes = tmp_path / "out" / "split_dataset" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("mine")
    assert run(config, "--replace") == 2
    assert "holds 'notes.txt', which stage 02 did not make" in capsys.readouterr().err
    assert notes.read_text() == "mine"


def test_outputs_inside_the_crops_folder_are_refused(tmp_path, capsys):
    faces = tmp_path / "out" / "faces"
    config = make_dataset(tmp_path, paired_videos(3, crops=3), SPLIT_DIR=faces / "split")
    assert run(config, "--replace") == 2
    assert "overlaps FACES_DIR" in capsys.readouterr().err


def test_never_modifies_the_input_crops(tmp_path):
    config = make_dataset(tmp_path, paired_videos(4, crops=4, fakes_per_real=2))
    faces = tmp_path / "out" / "faces"
    stats = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in faces.rglob("*")}
    content = files_under(faces)
    assert run(config) == 0
    assert run(config, "--replace") == 0
    shutil.rmtree(tmp_path / "out" / "split_dataset")  # deleting outputs leaves the linked crops
    assert files_under(faces) == content
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in faces.rglob("*")} == stats


def test_an_interrupted_run_leaves_no_output_and_the_rerun_finishes(tmp_path, monkeypatch):
    config = make_dataset(tmp_path, paired_videos(4, crops=4))
    real_place = FilePlacer.place
    placed = []

    def place_then_stop(self, source, target):
        if len(placed) == 10:
            raise KeyboardInterrupt  # as Ctrl-C would, midway through the balanced set
        placed.append(target)
        real_place(self, source, target)

    monkeypatch.setattr(FilePlacer, "place", place_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run(config)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["faces"]
    # A kill -9 leaves its partial folders behind; the next run clears them.
    (out / ".split_dataset.partial-99999" / "train").mkdir(parents=True)
    monkeypatch.setattr(FilePlacer, "place", real_place)
    assert run(config) == 0
    assert sorted(p.name for p in out.iterdir()) == ["faces", "prepared_dataset", "split_dataset"]
    assert len(read_split_csv(out)) == 32


def test_copies_when_the_filesystem_refuses_hard_links(tmp_path, capsys):
    # /dev/shm is a separate filesystem, and links cannot cross filesystems.
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a different filesystem than the test folder")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:
        elsewhere = Path(elsewhere)
        config = make_dataset(tmp_path, paired_videos(3, crops=2),
                              PREPARED_DIR=elsewhere / "prepared", SPLIT_DIR=elsewhere / "split")
        assert run(config) == 0
        captured = capsys.readouterr()
        assert "hard links refused" in captured.err and "files: 24 copies\n" in captured.out
        copied = next((elsewhere / "prepared" / "real").iterdir())
        source = tmp_path / "out" / "faces" / copied.name.rsplit("-", 2)[0] / copied.name
        assert copied.read_bytes() == source.read_bytes() and not os.path.samefile(copied, source)


# ---------------------------------------------------------------- bad input

def test_missing_metadata_is_a_clear_error(tmp_path, capsys):
    config = make_dataset(tmp_path, paired_videos(2), metadata=False)
    assert run(config) == 2
    assert "metadata.json is missing" in capsys.readouterr().err
    assert not (tmp_path / "out" / "split_dataset").exists()


def test_malformed_metadata_is_a_clear_error(tmp_path, capsys):
    config = make_dataset(tmp_path, paired_videos(2), metadata='{"r00.mp4": {"label": "REAL"')
    assert run(config) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "no labelled videos" in err


def test_bad_entries_are_reported_and_the_rest_is_used(tmp_path, capsys):
    videos = paired_videos(3, crops=3)
    videos.update({
        "odd": ("UNKNOWN", None, 3),       # a label other than REAL/FAKE
        "empty": ("FAKE", "r00", 0),       # a crops folder without crops (no face found)
        "nocrops": ("REAL", None, None),   # in metadata, but stage 01 made no folder for it
    })
    config = make_dataset(tmp_path, videos)
    stray = tmp_path / "out" / "faces" / "stray"  # crops of a video that has no label
    stray.mkdir()
    shutil.copy(tmp_path / "out" / "faces" / "r00" / "r00-000-00.png", stray / "stray-000-00.png")
    assert run(config) == 0
    err = capsys.readouterr().err
    assert "odd.mp4: label 'UNKNOWN' is not REAL or FAKE, skipped" in err
    assert "empty: no .png face crops in its folder" in err
    assert "nocrops: no crops folder in" in err
    assert "stray: crops but no REAL/FAKE label" in err
    videos_used = {r["video"] for r in read_split_csv(tmp_path / "out")}
    assert videos_used == {"r00", "r01", "r02", "f00x0", "f01x0", "f02x0"}


def test_only_one_class_of_crops_is_an_error(tmp_path, capsys):
    config = make_dataset(tmp_path, {"r0": ("REAL", None, 3), "f0": ("FAKE", "r0", None)})
    assert run(config) == 1
    assert "no FAKE face crops" in capsys.readouterr().err
    assert not (tmp_path / "out" / "split_dataset").exists()
