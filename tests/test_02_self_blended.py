"""Stage 02 with TRAIN_FAKES = "self_blended" (issue 25): a dataset of real videos only is accepted;
train and val hold real crops only; test keeps the dataset's real and fake videos; official split
lists are honoured as with the dataset's own fakes.

    .venv/bin/pytest tests/test_02_self_blended.py     (no TensorFlow; a few seconds)
"""

from collections import Counter

from test_02_prepare_dataset import make_dataset, paired_videos, read_split_csv, run
from test_datasets import PAIRS, clip, make_ffpp, run_stage02, splits_of  # noqa: F401 (clip: a fixture)


def classes_per_split(rows):
    return Counter((row["split"], row["class"]) for row in rows)


def test_real_videos_only_make_a_split_with_self_blending(tmp_path, capsys):
    videos = {f"r{index:02d}": ("REAL", None, 4) for index in range(10)}
    config = make_dataset(tmp_path, videos, TRAIN_FAKES="self_blended")
    assert run(config) == 0
    rows = read_split_csv(tmp_path / "out")
    assert {row["class"] for row in rows} == {"real"}
    assert len(rows) == 40                                          # every real crop kept
    assert {row["split"] for row in rows} == {"train", "val", "test"}
    out = capsys.readouterr()
    assert "fakes: train and val self-blended from their real crops by stage 03" in out.out
    assert "has no FAKE crops" not in out.err.replace("the test split has no FAKE crops", "")


def test_real_videos_only_are_refused_when_training_on_the_datasets_fakes(tmp_path, capsys):
    config = make_dataset(tmp_path, {f"r{index}": ("REAL", None, 3) for index in range(4)})
    assert run(config) == 1
    assert "TRAIN_FAKES = 'self_blended'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "split_dataset").exists()


def test_train_and_val_hold_real_crops_only_and_test_keeps_the_fakes(tmp_path, capsys):
    config = make_dataset(tmp_path, paired_videos(10, crops=4, fakes_per_real=2), TRAIN_FAKES="self_blended")
    assert run(config) == 0
    rows = read_split_csv(tmp_path / "out")
    counts = classes_per_split(rows)
    assert counts["train", "fake"] == 0 and counts["val", "fake"] == 0
    assert counts["train", "real"] > 0 and counts["val", "real"] > 0
    assert counts["test", "fake"] == 2 * counts["test", "real"]     # test not down-sampled: all its fakes
    assert sum(count for (split, label), count in counts.items() if label == "real") == 40   # every real crop
    assert all(len(found) == 1 for found in splits_of(rows, "group").values())  # leak-free as before
    fake_videos = {row["video"] for row in rows if row["class"] == "fake"}
    assert fake_videos and all(row["split"] == "test" for row in rows if row["video"] in fake_videos)
    split_dir = tmp_path / "out" / "split_dataset"
    assert not list((split_dir / "train").glob("fake/*.png")) and list((split_dir / "test").glob("fake/*.png"))
    out = capsys.readouterr().out
    assert "fakes: train and val self-blended from their real crops by stage 03 (TRAIN_FAKES = 'self_blended'); " \
           f"test: the dataset's own, {len(fake_videos)} fake videos" in out


def test_official_split_lists_are_honoured(tmp_path, clip, capsys):  # noqa: F811 (clip: the fixture)
    status, rows = run_stage02(tmp_path, make_ffpp(tmp_path / "FF++", clip), TRAIN_FAKES="self_blended")
    assert status == 0
    video_splits = splits_of(rows, "video")
    for split, pairs in PAIRS.items():
        x, y = pairs[0]
        assert video_splits[x] == {split} and video_splits[y] == {split}    # the originals, where the lists say
    fakes = {video: splits for video, splits in video_splits.items()
             if any(row["video"] == video and row["class"] == "fake" for row in rows)}
    assert fakes and all(splits == {"test"} for splits in fakes.values())
    assert {"004_005", "005_004"} <= {name.split("_", 1)[1] for name in fakes}   # the test pair's fakes
    assert "official split: train from" in capsys.readouterr().out
