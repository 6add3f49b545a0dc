"""The data sets as downloaded (FaceForensics++, Celeb-DF v2, DFDC's public test set, the DFDC
preview): miniature replicas with the real folder and file names, read with their labels,
methods, originals and official splits; bad and partial downloads give one line each.

Run: .venv/bin/pytest tests/test_datasets.py   (no TensorFlow; a few seconds)
"""

import json
import shutil
import types
from pathlib import Path

import pytest

from conftest import write_test_video
from deepfake_detect import settings
from deepfake_detect.datasets.discovery import detect_layout, discover_videos, read_dataset, source_group

YOUTUBE = ("000", "001", "002", "003", "004", "005")
PAIRS = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"], ["998", "999"]]}
PAIRED_FAKES = ("000_001", "001_000", "002_003", "003_002", "004_005", "005_004")
CELEB_REAL = ("id0_0000", "id0_0001", "id1_0000", "id1_0001", "id2_0000", "id2_0001")
CELEB_FAKE = ("id0_id1_0000", "id0_id2_0001", "id1_id0_0000", "id1_id2_0001", "id2_id0_0000", "id2_id1_0001")
YOUTUBE_REAL = ("00000", "00001", "00170")
CELEB_TEST_LIST = ("1 YouTube-real/00170.mp4", "1 Celeb-real/id2_0000.mp4", "1 Celeb-real/id2_0001.mp4",
                   "0 Celeb-synthesis/id2_id0_0000.mp4", "0 Celeb-synthesis/id2_id1_0001.mp4",
                   "1 Celeb-real/id9_0009.mp4")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """One tiny video (8 frames of 64x48) that every replica copies: layouts are about names."""
    return write_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frame_count=8, size=(64, 48))


def put(clip, folder, names):
    """Copy `clip` to folder/<name>.mp4 for each name."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(clip, Path(folder) / f"{name}.mp4")


def make_ffpp(root, clip, lists=True):
    """FaceForensics++ as downloaded: youtube originals at c23 and c40, actors at c23, Deepfakes and
    FaceSwap at c23 and c40, DeepFakeDetection at c23, NeuralTextures at c40 only, Face2Face with an
    empty c23/videos, and splits/{train,val,test}.json (test names an absent pair 998/999)."""
    for level in ("c23", "c40"):
        put(clip, root / "original_sequences/youtube" / level / "videos", YOUTUBE)
        for method in ("Deepfakes", "FaceSwap"):
            put(clip, root / "manipulated_sequences" / method / level / "videos", PAIRED_FAKES)
    put(clip, root / "original_sequences/actors/c23/videos", ["01__kitchen_pan", "02__kitchen_pan"])
    put(clip, root / "manipulated_sequences/DeepFakeDetection/c23/videos", ["01_02__kitchen_pan__ABCD1234"])
    put(clip, root / "manipulated_sequences/NeuralTextures/c40/videos", PAIRED_FAKES)
    (root / "manipulated_sequences/Face2Face/c23/videos").mkdir(parents=True)
    if lists:
        (root / "splits").mkdir()
        for split, pairs in PAIRS.items():
            (root / "splits" / f"{split}.json").write_text(json.dumps(pairs))
    return root


def make_celebdf(root, clip):
    """Celeb-DF v2 as downloaded, with List_of_testing_videos.txt (one line names an absent video)."""
    put(clip, root / "Celeb-real", CELEB_REAL)
    put(clip, root / "YouTube-real", YOUTUBE_REAL)
    put(clip, root / "Celeb-synthesis", CELEB_FAKE)
    (root / "List_of_testing_videos.txt").write_text("\n".join(CELEB_TEST_LIST) + "\n")
    return root


def make_dfdc_test(root, clip):
    """DFDC's public test set: videos and labels.csv (1 = FAKE); one listed video is absent."""
    put(clip, root, ["aaaa", "bbbb", "cccc"])
    (root / "labels.csv").write_text("filename,label\naaaa.mp4,1\nbbbb.mp4,0\ncccc.mp4,1\ndddd.mp4,0\n")
    return root


def make_dfdc_preview(root, clip):
    """The DFDC preview: dataset.json keyed by relative path, with its own train/test sets."""
    entries = {"original_videos/643049/1955797.mp4": {"label": "real", "set": "train", "target_id": "643049"},
               "method_A/643049/643049_A/1955797.mp4": {"label": "fake", "set": "train", "target_id": "643049"},
               "original_videos/700000/1111111.mp4": {"label": "real", "set": "test", "target_id": "700000"},
               "method_B/700000/700000_B/1111111.mp4": {"label": "fake", "set": "test", "target_id": "700000"}}
    for relative in entries:
        put(clip, (root / relative).parent, [Path(relative).stem])
    (root / "dataset.json").write_text(json.dumps(entries))
    return root


def config_for(folder, **overrides):
    """The default settings with VIDEOS_DIR = folder (and METADATA_FILE beside it)."""
    cfg = types.SimpleNamespace(**vars(settings.load_config()))
    cfg.VIDEOS_DIR, cfg.METADATA_FILE = Path(folder), Path(folder) / "metadata.json"
    for name, value in overrides.items():
        setattr(cfg, name, value)
    return cfg


def by_name(listing):
    return {v.name: v for v in listing.videos}


# ------------------------------------------------------------------ FaceForensics++

def test_ffpp_labels_methods_originals_and_kept_apart_names(tmp_path, clip):
    listing = read_dataset(config_for(make_ffpp(tmp_path, clip)))
    videos = by_name(listing)
    assert listing.layout == "FaceForensics++ (c23)"
    assert {n for n, v in videos.items() if v.label == "REAL"} == set(YOUTUBE) | {"01__kitchen_pan", "02__kitchen_pan"}
    for method in ("Deepfakes", "FaceSwap"):  # the same file names under every method, kept apart
        for fake in PAIRED_FAKES:
            video = videos[f"{method}_{fake}"]
            assert (video.label, video.method, video.original) == ("FAKE", method, fake.split("_")[0])
            assert video.path.parent == tmp_path / "manipulated_sequences" / method / "c23" / "videos"
    dfd = videos["DeepFakeDetection_01_02__kitchen_pan__ABCD1234"]
    assert (dfd.original, source_group(dfd)) == ("01__kitchen_pan", "01__kitchen_pan")
    assert not any(v.method == "NeuralTextures" for v in listing.videos)  # c40 only


def test_ffpp_compression_level_and_bad_folders_one_line_each(tmp_path, clip):
    folder = make_ffpp(tmp_path, clip)
    listing = read_dataset(config_for(folder))
    assert [p for p in listing.problems if "NeuralTextures" in p] == [
        f"{folder}/manipulated_sequences/NeuralTextures: no c23/videos folder (levels here: c40); "
        "left out: set DATASET_COMPRESSION to one of them"]
    assert [p for p in listing.problems if "Face2Face" in p] == [
        f"{folder}/manipulated_sequences/Face2Face/c23/videos: no video files, left out"]
    c40 = read_dataset(config_for(folder, DATASET_COMPRESSION="c40"))
    assert c40.layout == "FaceForensics++ (c40)"
    assert {v.method for v in c40.videos if v.method} == {"Deepfakes", "FaceSwap", "NeuralTextures"}
    assert all("/c40/" in str(v.path) for v in c40.videos)
    assert any("actors: no c40/videos folder (levels here: c23)" in p for p in c40.problems)


def test_ffpp_pair_lists_give_every_video_of_a_pair_its_split(tmp_path, clip):
    listing = read_dataset(config_for(make_ffpp(tmp_path, clip)))
    videos = by_name(listing)
    for split, pairs in PAIRS.items():
        assert listing.split_sources[split] == str(tmp_path / "splits" / f"{split}.json")
        for x, y in pairs:
            if x == "998":
                continue
            members = [x, y] + [f"{m}_{a}_{b}" for m in ("Deepfakes", "FaceSwap") for a, b in ((x, y), (y, x))]
            assert {videos[name].split for name in members} == {split}
    assert {videos[n].split for n in ("01__kitchen_pan", "DeepFakeDetection_01_02__kitchen_pan__ABCD1234")} == {None}
    absent = [p for p in listing.problems if p.startswith("test.json")]
    assert absent == ["test.json names 6 video(s) that are not in the folder (partial download?): "
                      "998, 999, Deepfakes_998_999, Deepfakes_999_998, FaceSwap_998_999, ... (1 more)"]


def test_ffpp_lists_from_another_folder(tmp_path, clip):
    folder = make_ffpp(tmp_path / "ff", clip, lists=False)
    assert read_dataset(config_for(folder)).split_sources == {}
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "test.json").write_text(json.dumps([["004", "005"]]))
    listing = read_dataset(config_for(folder, SPLIT_LISTS_DIR=lists))
    assert listing.split_sources == {"test": str(lists / "test.json")}
    assert sorted(v.name for v in listing.videos if v.split == "test") == [
        "004", "005", "Deepfakes_004_005", "Deepfakes_005_004", "FaceSwap_004_005", "FaceSwap_005_004"]


# ------------------------------------------------------------------ Celeb-DF

def test_celebdf_labels_originals_and_test_list(tmp_path, clip):
    listing = read_dataset(config_for(make_celebdf(tmp_path, clip)))
    videos = by_name(listing)
    assert listing.layout == "Celeb-DF"
    assert {n for n, v in videos.items() if v.label == "REAL"} == set(CELEB_REAL) | set(YOUTUBE_REAL)
    assert (videos["id1_id2_0001"].label, videos["id1_id2_0001"].original) == ("FAKE", "id1_0001")
    assert sorted(n for n, v in videos.items() if v.split == "test") == [
        "00170", "id2_0000", "id2_0001", "id2_id0_0000", "id2_id1_0001"]
    assert listing.split_sources == {"test": str(tmp_path / "List_of_testing_videos.txt")}
    assert listing.problems == ["List_of_testing_videos.txt names 1 video(s) that are not in the folder "
                                "(partial download?): Celeb-real/id9_0009.mp4"]


# ------------------------------------------------------------------ DFDC

def test_dfdc_public_test_labels_csv(tmp_path, clip):
    listing = read_dataset(config_for(make_dfdc_test(tmp_path, clip)))
    assert listing.layout == "DFDC public test set (labels.csv)"
    assert {v.name: (v.label, v.split) for v in listing.videos} == {
        "aaaa": ("FAKE", "test"), "bbbb": ("REAL", "test"), "cccc": ("FAKE", "test")}
    assert listing.problems == ["labels.csv names 1 video(s) that are not in the folder (partial download?): dddd"]


def test_dfdc_preview_dataset_json(tmp_path, clip):
    listing = read_dataset(config_for(make_dfdc_preview(tmp_path, clip)))
    assert listing.layout == "DFDC preview (dataset.json)"
    assert {v.name: (v.label, v.method, v.split) for v in listing.videos} == {
        "original_videos_643049_1955797": ("REAL", None, None),  # its train set: stage 02 cuts train and val
        "method_A_643049_643049_A_1955797": ("FAKE", "method_A", None),
        "original_videos_700000_1111111": ("REAL", None, "test"),
        "method_B_700000_700000_B_1111111": ("FAKE", "method_B", "test")}
    assert set(listing.split_sources) == {"test"}


@pytest.mark.parametrize("make, layout", [
    (make_ffpp, "FaceForensics++ (c23)"), (make_celebdf, "Celeb-DF"),
    (make_dfdc_test, "DFDC public test set (labels.csv)"), (make_dfdc_preview, "DFDC preview (dataset.json)")])
def test_layout_named_before_reading(tmp_path, clip, make, layout):
    cfg = config_for(make(tmp_path, clip))
    assert detect_layout(cfg) == layout == read_dataset(cfg).layout
    videos, problems = discover_videos(cfg)
    assert len({v.name for v in videos}) == len(videos) > 0


# ------------------------------------------------------------------ stage 02 on the official splits

def make_crops(faces_dir, names, count=2):
    """Face crop folders as stage 01a leaves them: <faces_dir>/<video>/<video>-NNN-00.png."""
    import cv2
    import numpy as np

    for name in names:
        (faces_dir / name).mkdir(parents=True)
        for index in range(count):
            crop = np.full((24, 20, 3), (index * 40 + len(name)) % 256, np.uint8)
            assert cv2.imwrite(str(faces_dir / name / f"{name}-{index:03d}-00.png"), crop)


def run_stage02(root, videos_dir, *args, **settings_):
    """Stage 02 on `videos_dir` with crops for every video; returns (exit status, split.csv rows)."""
    import csv
    import importlib

    from conftest import write_config

    faces = root / "out" / "faces"
    make_crops(faces, [v.name for v in discover_videos(config_for(videos_dir, **settings_))[0]])
    config = write_config(root / "config.py", VIDEOS_DIR=videos_dir, OUTPUT_DIR=root / "out", FACES_DIR=faces,
                          **settings_)
    status = importlib.import_module("02-prepare_fake_real_dataset").main(["--config", str(config), *args])
    with open(root / "out" / "split_dataset" / "split.csv", newline="", encoding="utf-8") as handle:
        return status, list(csv.DictReader(handle))


def splits_of(rows, key):
    found = {}
    for row in rows:
        found.setdefault(row[key], set()).add(row["split"])
    return found


def test_stage02_puts_every_video_of_a_listed_pair_in_its_split(tmp_path, clip, capsys):
    status, rows = run_stage02(tmp_path, make_ffpp(tmp_path / "FF++", clip))
    assert status == 0
    video_splits = splits_of(rows, "video")
    for split, pairs in PAIRS.items():
        for x, y in pairs[:1]:
            members = [x, y] + [f"{m}_{a}_{b}" for m in ("Deepfakes", "FaceSwap") for a, b in ((x, y), (y, x))]
            assert {s for name in members for s in video_splits.get(name, ())} == {split}
    assert all(len(found) == 1 for found in splits_of(rows, "group").values())  # no group in two splits
    assert "01__kitchen_pan" not in video_splits  # in no list, and the lists give every split
    out = capsys.readouterr()
    assert "layout: FaceForensics++ (c23)" in out.out
    assert f"official split: train from {tmp_path}/FF++/splits/train.json, val from" in out.out
    assert "leak check: 0 of" in out.out
    assert "test.json names 6 video(s) that are not in the folder" in out.err
    assert "are in no split list: left out, as the lists give every split" in out.err


def test_stage02_celebdf_test_list_is_the_test_split_and_the_rest_train_val(tmp_path, clip, capsys):
    lists = tmp_path / "lists"
    folder = make_celebdf(tmp_path / "Celeb-DF-v2", clip)
    lists.mkdir()
    shutil.move(folder / "List_of_testing_videos.txt", lists / "List_of_testing_videos.txt")
    status, rows = run_stage02(tmp_path, folder, "--split-lists", str(lists))
    assert status == 0
    video_splits = splits_of(rows, "video")
    assert sorted(v for v, s in video_splits.items() if s == {"test"}) == [
        "00170", "id2_0000", "id2_0001", "id2_id0_0000", "id2_id1_0001"]
    assert {s for v, found in video_splits.items() for s in found} == {"train", "val", "test"}
    assert all(len(found) == 1 for found in splits_of(rows, "group").values())
    assert "official split: test from" in capsys.readouterr().out


# ------------------------------------------------------------------ stage 05's split selector

def test_dataset_argument_with_a_split():
    from deepfake_detect.evaluation.extract import DatasetError, parse_dataset_argument

    assert parse_dataset_argument("ffpp=/data/FF++:test") == ("ffpp", Path("/data/FF++"), "test")
    assert parse_dataset_argument("/data/Celeb-DF-v2:test") == ("Celeb-DF-v2", Path("/data/Celeb-DF-v2"), "test")
    assert parse_dataset_argument("dfdc=/data/dfdc") == ("dfdc", Path("/data/dfdc"), None)
    with pytest.raises(DatasetError, match="split 'tset' is not one of train, val, test"):
        parse_dataset_argument("ffpp=/data/FF++:tset")


def test_stage05_test_split_selects_exactly_the_listed_test_videos(tmp_path, clip):
    from deepfake_detect.evaluation.extract import load_dataset

    cfg = settings.load_config()
    ffpp_folder = make_ffpp(tmp_path / "FF++", clip)
    dataset = load_dataset("ffpp", ffpp_folder, cfg, "test")
    assert sorted(v.name for v in dataset.videos) == [
        "004", "005", "Deepfakes_004_005", "Deepfakes_005_004", "FaceSwap_004_005", "FaceSwap_005_004"]
    assert (dataset.split, dataset.split_source) == ("test", str(ffpp_folder / "splits" / "test.json"))
    assert any(p.startswith("test.json names 6 video(s)") for p in dataset.problems)  # reported, not fatal
    whole = load_dataset("ffpp", ffpp_folder, cfg)
    assert (whole.split, whole.split_source, len(whole.videos)) == (None, "all videos", 21)
    cdf = load_dataset("cdf", make_celebdf(tmp_path / "Celeb-DF-v2", clip), cfg, "test")
    assert sorted(v.name for v in cdf.videos) == ["00170", "id2_0000", "id2_0001", "id2_id0_0000", "id2_id1_0001"]
    dfdc_test = load_dataset("dfdc", make_dfdc_test(tmp_path / "dfdc_test", clip), cfg, "test")
    assert [v.name for v in dfdc_test.videos] == ["aaaa", "bbbb", "cccc"]


def test_stage05_split_without_a_list_is_refused_with_the_reason(tmp_path, clip):
    from deepfake_detect.evaluation.extract import DatasetError, load_dataset

    folder = make_ffpp(tmp_path / "FF++", clip, lists=False)
    with pytest.raises(DatasetError, match=r"FaceForensics\+\+ \(c23\) in this folder has no official test split"):
        load_dataset("ffpp", folder, settings.load_config(), "test")


def test_overlap_by_name_and_by_source_group(tmp_path):
    from deepfake_detect.datasets.discovery import Video
    from deepfake_detect.evaluation.scores import flag_seen, read_seen_videos

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"")
    assert read_seen_videos(run / "model.keras")[0] is None
    (run / "split.csv").write_text("file,split,class,video,group\n"
                                   "train/real/a-0.png,train,real,a,a\nval/fake/Deepfakes_b_c-0.png,val,fake,Deepfakes_b_c,b\n"
                                   "test/real/d-0.png,test,real,d,d\n")
    seen, _ = read_seen_videos(run / "model.keras")
    videos = [Video("a", Path("a.mp4"), "REAL"), Video("b", Path("b.mp4"), "REAL"),
              Video("FaceSwap_b_c", Path("x.mp4"), "FAKE", "b", "FaceSwap"), Video("d", Path("d.mp4"), "REAL"),
              Video("FaceSwap_d_a", Path("y.mp4"), "FAKE", "d", "FaceSwap")]
    assert flag_seen(videos, seen) == {"a", "b", "FaceSwap_b_c"}


def test_wrong_compression_everywhere_names_the_levels_and_stops_stage02(tmp_path, clip, capsys):
    import importlib

    from conftest import write_config

    folder = make_ffpp(tmp_path / "FF++", clip)
    config = write_config(tmp_path / "config.py", VIDEOS_DIR=folder, OUTPUT_DIR=tmp_path / "out",
                          DATASET_COMPRESSION="raw")
    assert importlib.import_module("02-prepare_fake_real_dataset").main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "original_sequences/youtube: no raw/videos folder (levels here: c23, c40)" in err
    assert "no labelled videos: FaceForensics++ (raw) in" in err


def test_an_exported_model_is_checked_against_its_run(tmp_path):
    from deepfake_detect.evaluation.scores import read_seen_videos

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"")
    (run / "split.csv").write_text("file,split,class,video,group\ntrain/real/a-0.png,train,real,a,a\n")
    seen, _ = read_seen_videos(run / "export" / "model_float32.tflite")
    assert (seen.source, seen.videos) == (run / "split.csv", {"a"})
    elsewhere = tmp_path / "shipped" / "model_int8.tflite"
    elsewhere.parent.mkdir()
    (elsewhere.parent / "model_int8.json").write_text(json.dumps({"source_model": str(run / "model.keras")}))
    assert read_seen_videos(elsewhere)[0].source == run / "split.csv"
    alone = tmp_path / "alone" / "model.tflite"
    assert read_seen_videos(alone) == (None, f"{alone} names no run folder (not a run's model.keras, "
                                             "no sidecar with its source model)")


def test_ffpp_compression_is_part_of_stage05_cache_key(tmp_path, clip):
    from deepfake_detect.evaluation.extract import cache_folder, load_dataset

    folder = make_ffpp(tmp_path / "FF++", clip)
    c23 = load_dataset("ffpp", folder, config_for(folder))
    c40 = load_dataset("ffpp", folder, config_for(folder, DATASET_COMPRESSION="c40"))
    cfg = config_for(folder)
    assert cache_folder(c23, cfg) != cache_folder(c40, cfg)
