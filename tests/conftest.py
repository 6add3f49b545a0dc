"""Fixtures shared by the test files. Run the tests with `make test` (or `.venv/bin/pytest`)."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

# pytest.ini's per-test limit is 600 s; a module that trains a model (or starts a Ray cluster)
# gets this longer one: `pytestmark = pytest.mark.timeout(TRAINING_TIMEOUT_S)`.
TRAINING_TIMEOUT_S = 1500


def write_test_video(path, frame_count=50, fps=25.0, size=(320, 240), codec="mp4v"):
    """Write a short video whose frames differ (a moving square and the frame number); return path."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    assert writer.isOpened(), f"OpenCV could not open a {codec} writer for {path}"
    try:
        for index in range(frame_count):
            frame = np.full((height, width, 3), 40 + index % 200, np.uint8)
            x = int(index * (width - 20) / max(1, frame_count - 1))
            cv2.rectangle(frame, (x, height // 3), (x + 20, height // 3 + 20), (0, 0, 255), -1)
            cv2.putText(frame, str(index), (5, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255))
            writer.write(frame)
    finally:
        writer.release()
    return Path(path)


def write_frames_video(path, frames, fps):
    """Write an mp4v video of the given BGR frames (an iterable of equal-sized arrays); return path."""
    frames = iter(frames)
    first = next(frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, first.shape[1::-1])
    assert writer.isOpened(), f"OpenCV could not open an mp4v writer for {path}"
    try:
        writer.write(first)
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def write_config(path, **settings):
    """Write a config override file setting the given names (values as Python literals or Paths)."""
    lines = [f"{name} = {value!r}" if not isinstance(value, Path) else f'{name} = Path({str(value)!r})'
             for name, value in settings.items()]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def write_video_frames(frames_root, video, frames):
    """Write `frames` (BGR arrays) as stage 00 would: frames_root/<video>/<video>-NNN.png."""
    from deepfake_detect.files import write_png

    folder = Path(frames_root) / video
    folder.mkdir(parents=True)
    for number, frame in enumerate(frames):
        write_png(folder / f"{video}-{number:03d}.png", frame)
    return folder


def folder_contents(root):
    """{relative path: bytes} of every file under root, settings files left out (they hold paths)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*"))
            if p.is_file() and not p.name.startswith("settings-")}


@pytest.fixture
def dfdc_sample_dir():
    """The real DFDC sample (two clips + 22 original crops); skips when DFDC_SAMPLE_DIR is unset."""
    folder = os.environ.get("DFDC_SAMPLE_DIR")
    if not folder:
        pytest.skip("DFDC_SAMPLE_DIR is not set (.ci/run sets it to ../shared/dfdc_sample)")
    folder = Path(folder)
    assert (folder / "videos" / "metadata.json").is_file(), f"DFDC_SAMPLE_DIR={folder} has no videos/metadata.json"
    return folder
