"""Stage 00 (video -> frames): resize rules, frame selection, real extraction, bad input, resume.

Run: .venv/bin/pytest tests/test_00_convert.py   (DFDC_SAMPLE_DIR=../shared/dfdc_sample for the DFDC test)
"""

import importlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import folder_contents, write_config, write_test_video
from deepfake_detect import settings
from deepfake_detect.datasets.discovery import discover_videos, select_shard
from deepfake_detect.files import completed_names
from deepfake_detect.media.budget import VideoError
from deepfake_detect.media.frames import frame_step, iter_kept_frames, resize_factor, resize_frame

stage00 = importlib.import_module("00-convert_video_to_image")
REPO = Path(__file__).resolve().parent.parent
RULES = settings.load_config().RESIZE_RULES


@pytest.mark.parametrize("width, factor", [
    (1, 2.0), (299, 2.0), (300, 1.0), (640, 1.0), (1000, 1.0), (1001, 0.5),
    (1900, 0.5), (1901, 0.33), (3840, 0.33)])
def test_resize_factor_at_each_boundary(width, factor):
    assert resize_factor(width, RULES) == factor


def test_resize_frame_truncates_like_the_original():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    assert resize_frame(frame, RULES).shape == (356, 633, 3)  # 1920*0.33 = 633.6 -> 633
    assert resize_frame(np.zeros((200, 250, 3), np.uint8), RULES).shape == (400, 500, 3)


@pytest.mark.parametrize("fps, step, kept_of_300", [(25, 25, 12), (29.97, 29, 11), (30, 30, 10), (60, 60, 5)])
def test_frame_step_keeps_one_frame_per_second(fps, step, kept_of_300):
    assert frame_step(fps) == step
    assert len([i for i in range(300) if i % frame_step(fps) == 0]) == kept_of_300


@pytest.mark.parametrize("fps", [0, -1, None, math.nan])
def test_frame_step_rejects_missing_frame_rate(fps):
    with pytest.raises(VideoError, match="frame rate"):
        frame_step(fps)


def test_frame_step_with_two_frames_per_second():
    assert frame_step(30, frames_per_second=2) == 15
    assert frame_step(0.5) == 1  # a time-lapse keeps every frame rather than dividing by zero


def make_dataset(folder, videos):
    """Write videos {name: (frame_count, fps, size)} and a DFDC metadata.json, all REAL."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (count, fps, size) in videos.items():
        write_test_video(folder / f"{name}.mp4", count, fps, size)
    metadata = {f"{name}.mp4": {"label": "REAL", "original": None} for name in videos}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def run_stage(tmp_path, capsys=None, extra=()):
    config = write_config(tmp_path / "cfg.py", VIDEOS_DIR=tmp_path / "videos", OUTPUT_DIR=tmp_path / "out")
    status = stage00.main(["--config", str(config), "--workers", "1", *extra])
    return status, tmp_path / "out" / "frames"


def test_extracts_named_resized_frames_from_real_videos(tmp_path):
    make_dataset(tmp_path / "videos", {
        "small": (50, 25.0, (250, 200)),     # x2, 2 frames kept (0, 25)
        "medium": (61, 30.0, (640, 360)),    # x1, 3 frames kept (0, 30, 60)
        "large": (20, 10.0, (1280, 720)),    # x0.5, 2 frames kept (0, 10)
    })
    status, frames = run_stage(tmp_path)
    assert status == 0
    expected = {"small": (2, (400, 500, 3)), "medium": (3, (360, 640, 3)), "large": (2, (360, 640, 3))}
    for name, (count, shape) in expected.items():
        files = sorted(p.name for p in (frames / name).iterdir())
        assert files == [f"{name}-{i:03d}.png" for i in range(count)]
        assert all(cv2.imread(str(frames / name / f)).shape == shape for f in files)
    assert json.loads((frames / "settings-00.json").read_text())["FRAMES_PER_SECOND"] == 1


def test_kept_frames_are_the_right_ones(tmp_path):
    """Frame 25 of a 25 fps video is the second frame kept: its colour encodes its index."""
    path = write_test_video(tmp_path / "v.mp4", 60, 25.0, (320, 240))
    kept = list(iter_kept_frames(path, RULES))
    assert [index for index, _ in kept] == [0, 25, 50]
    corner = [int(frame[5, 300].mean()) for _, frame in kept]  # background value 40 + index
    assert corner == pytest.approx([40, 65, 90], abs=6)


def write_truncated_avi(path):
    """An MJPG AVI whose second half is cut off: opens, then stops decoding early."""
    write_test_video(path, 100, 25.0, (320, 240), codec="MJPG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_bad_videos_get_a_reason_and_the_run_goes_on(tmp_path, capsys):
    videos = make_dataset(tmp_path / "videos", {"good": (30, 25.0, (320, 240))})
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "text.mp4").write_text("this is not a video\n")
    write_truncated_avi(videos / "truncated.avi")
    good = write_test_video(tmp_path / "cut.mp4", 50, 25.0, (320, 240))
    (videos / "cut.mp4").write_bytes(good.read_bytes()[:3000])  # mp4 cut before its index
    metadata = json.loads((videos / "metadata.json").read_text())
    metadata.update({name: {"label": "FAKE", "original": "good.mp4"}
                     for name in ("empty.mp4", "text.mp4", "truncated.avi", "cut.mp4", "missing.mp4")})
    metadata["odd.mp4"] = {"label": "MAYBE"}
    (videos / "metadata.json").write_text(json.dumps(metadata))

    status, frames = run_stage(tmp_path)
    err = capsys.readouterr().err
    assert status == 0
    assert "empty: empty file (0 bytes)" in err
    assert "text: not a readable video" in err
    assert "cut: not a readable video" in err
    assert "missing.mp4: listed in metadata.json but not in" in err
    assert "odd.mp4: label 'MAYBE' is not REAL or FAKE" in err
    assert "truncated: truncated? decoded" in err  # partial video kept, with a warning
    assert sorted(p.name for p in frames.iterdir() if p.is_dir()) == ["good", "truncated"]
    assert len(list((frames / "truncated").iterdir())) >= 1


def test_malformed_metadata_falls_back_to_the_folder(tmp_path, capsys):
    videos = make_dataset(tmp_path / "videos", {"a": (10, 25.0, (320, 240))})
    (videos / "metadata.json").write_text("{not json")
    status, frames = run_stage(tmp_path)
    assert status == 0
    assert "not valid JSON" in capsys.readouterr().err
    assert (frames / "a" / "a-000.png").is_file()


def test_real_and_fake_subfolders_give_labels(tmp_path):
    for label in ("real", "fake"):
        (tmp_path / "videos" / label).mkdir(parents=True)
        write_test_video(tmp_path / "videos" / label / f"{label}_clip.mp4", 10)
    cfg = settings.load_config(write_config(tmp_path / "cfg.py", VIDEOS_DIR=tmp_path / "videos"))
    videos, problems = discover_videos(cfg)
    assert [(v.name, v.label) for v in videos] == [("fake_clip", "FAKE"), ("real_clip", "REAL")]
    assert problems == []


def test_dfdc_parts_are_read_together(tmp_path):
    make_dataset(tmp_path / "videos" / "dfdc_train_part_0", {"a": (10, 25.0, (320, 240))})
    make_dataset(tmp_path / "videos" / "dfdc_train_part_1", {"b": (10, 25.0, (320, 240))})
    (tmp_path / "videos" / "dfdc_train_part_2").mkdir()
    (tmp_path / "videos" / "dfdc_train_part_2" / "metadata.json").write_text("[1, 2]")
    cfg = settings.load_config(write_config(tmp_path / "cfg.py", VIDEOS_DIR=tmp_path / "videos"))
    videos, problems = discover_videos(cfg)
    assert [(v.name, v.label, v.path.parent.name) for v in videos] == [
        ("a", "REAL", "dfdc_train_part_0"), ("b", "REAL", "dfdc_train_part_1")]
    assert len(problems) == 1 and "dfdc_train_part_2" in problems[0] and "skipped" in problems[0]


def test_nothing_usable_exits_non_zero(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "bad.mp4").write_text("nope")
    status, _ = run_stage(tmp_path)
    assert status == 1


def test_wrong_configuration_exits_2_with_a_sentence(tmp_path, capsys):
    config = tmp_path / "cfg.py"
    config.write_text("FRAMES_PER_SECCOND = 2\n")
    assert stage00.main(["--config", str(config)]) == 2
    assert "FRAMES_PER_SECCOND is not a setting (did you mean FRAMES_PER_SECOND?)" in capsys.readouterr().err
    config.write_text(f"VIDEOS_DIR = Path({str(tmp_path / 'nowhere')!r})\n")
    assert stage00.main(["--config", str(config)]) == 2


def test_shards_split_the_videos_between_machines(tmp_path):
    make_dataset(tmp_path / "videos", {f"v{i}": (5, 25.0, (320, 240)) for i in range(5)})
    assert run_stage(tmp_path, extra=["--shard", "1/2"])[0] == 0
    frames = tmp_path / "out" / "frames"
    first = {p.name for p in frames.iterdir() if p.is_dir()}
    assert first == {"v0", "v2", "v4"}
    assert run_stage(tmp_path, extra=["--shard", "2/2"])[0] == 0
    assert {p.name for p in frames.iterdir() if p.is_dir()} == {f"v{i}" for i in range(5)}
    assert select_shard(list(range(7)), 3, 3) == [2, 5]


def test_killed_run_resumes_to_exactly_the_files_of_an_uninterrupted_run(tmp_path):
    videos = {f"clip{i}": (300, 25.0, (640, 480)) for i in range(6)}
    make_dataset(tmp_path / "killed" / "videos", videos)
    make_dataset(tmp_path / "clean" / "videos", videos)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def command(root):
        config = write_config(root / "cfg.py", VIDEOS_DIR=root / "videos", OUTPUT_DIR=root / "out")
        return [sys.executable, str(REPO / "00-convert_video_to_image.py"), "--config", str(config), "--workers", "1"]

    frames = tmp_path / "killed" / "out" / "frames"
    process = subprocess.Popen(command(tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not completed_names(frames):
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < len(completed_names(frames)) < 6, "the kill should land mid-run"

    subprocess.run(command(tmp_path / "killed"), env=env, check=True, capture_output=True)
    subprocess.run(command(tmp_path / "clean"), env=env, check=True, capture_output=True)
    killed, clean = folder_contents(frames), folder_contents(tmp_path / "clean" / "out" / "frames")
    assert sorted(killed) == sorted(clean)
    assert killed == clean
    assert not [p for p in frames.rglob("*") if ".partial-" in p.name or ".tmp-" in p.name]


def test_parallel_workers_give_the_same_frames(tmp_path):
    make_dataset(tmp_path / "videos", {f"p{i}": (30, 25.0, (320, 240)) for i in range(3)})
    config = write_config(tmp_path / "cfg.py", VIDEOS_DIR=tmp_path / "videos", OUTPUT_DIR=tmp_path / "out")
    assert stage00.main(["--config", str(config), "--workers", "2"]) == 0
    frames = tmp_path / "out" / "frames"
    assert sorted(p.name for p in frames.rglob("*.png")) == [f"p{i}-{j:03d}.png" for i in range(3) for j in range(2)]


def test_dfdc_clips_give_11_frames_of_633x356(tmp_path, dfdc_sample_dir):
    config = write_config(tmp_path / "cfg.py", VIDEOS_DIR=dfdc_sample_dir / "videos", OUTPUT_DIR=tmp_path / "out")
    assert stage00.main(["--config", str(config)]) == 0
    for video in ("abofeumbvv", "abqwwspghj"):
        files = sorted((tmp_path / "out" / "frames" / video).glob("*.png"))
        assert [p.name for p in files] == [f"{video}-{i:03d}.png" for i in range(11)]
        assert {cv2.imread(str(p)).shape for p in files} == {(356, 633, 3)}
