"""DeeperForensics-1.0 perturbations (deepfake_detect/evaluation/perturb.py): determinism, level 0, and
image quality falling with the level, on a real portrait and a real video; the missing-encoder error.

    .venv/bin/python -m pytest tests/test_perturb.py -x -q
"""

import stat

import cv2
import numpy as np
import pytest

from deepfake_detect import settings
from deepfake_detect.media.budget import VideoError
from deepfake_detect.evaluation.perturb import (FRAME_TYPES, SEVERITY_LEVELS, PERTURBATION_TYPES, CodecError, Perturbation, psnr)
from deepfake_detect.sample import portrait_images


@pytest.fixture(scope="module")
def face_bgr():
    """The astronaut portrait (a real photo of a face, 512x512) as BGR."""
    return cv2.cvtColor(portrait_images()["astronaut"], cv2.COLOR_RGB2BGR)


def write_portrait_video(path, face, frame_count=20, size=(320, 240), fps=15.0):
    """A short real-content video: a window drifting slowly over the portrait, written by OpenCV."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), f"OpenCV could not open an mp4v writer for {path}"
    try:
        for index in range(frame_count):
            left, top = 40 + 3 * index, 60 + 2 * index
            writer.write(np.ascontiguousarray(face[top:top + height, left:left + width]))
    finally:
        writer.release()
    return path


def read_frames(path):
    """Every frame of a video, decoded by OpenCV."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return frames
            frames.append(frame)
    finally:
        capture.release()


@pytest.mark.parametrize("kind", FRAME_TYPES)
def test_frame_perturbation_is_deterministic_for_a_seed(face_bgr, kind):
    first = Perturbation(kind, 3, seed=7).apply(face_bgr, 4, "abc.mp4")
    again = Perturbation(kind, 3, seed=7).apply(face_bgr.copy(), 4, "abc.mp4")
    assert first.shape == face_bgr.shape and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, face_bgr)


@pytest.mark.parametrize("kind", ["block", "noise"])
def test_random_perturbations_differ_by_seed_frame_and_video(face_bgr, kind):
    base = Perturbation(kind, 2, seed=0).apply(face_bgr, 0, "a")
    assert not np.array_equal(base, Perturbation(kind, 2, seed=1).apply(face_bgr, 0, "a"))
    assert not np.array_equal(base, Perturbation(kind, 2, seed=0).apply(face_bgr, 1, "a"))
    assert not np.array_equal(base, Perturbation(kind, 2, seed=0).apply(face_bgr, 0, "b"))


def test_seed_is_stable_across_processes():
    # zlib.crc32 of "seed/kind/video/frame", not Python's salted hash(): a fixed number.
    assert Perturbation("noise", 1, seed=0).rng_seed(3, "abc") == 1873622461


@pytest.mark.parametrize("kind", FRAME_TYPES)
def test_level_0_returns_the_frame_unchanged(face_bgr, kind):
    clean = Perturbation(kind, 0)
    assert clean.apply(face_bgr, 0, "v") is face_bgr
    assert clean.cache_tag is None and clean.parameter is None


@pytest.mark.parametrize("kind", FRAME_TYPES)
def test_psnr_falls_with_each_level(face_bgr, kind):
    values = [psnr(face_bgr, Perturbation(kind, level).apply(face_bgr, 0, "astronaut")) for level in SEVERITY_LEVELS]
    assert all(earlier > later for earlier, later in zip(values, values[1:])), values
    assert values[0] < 45, values  # level 1 already changes the image visibly


def test_psnr_falls_with_each_level_on_a_dfdc_frame(dfdc_sample_dir):
    # The frame stage 00 keeps first from a real DFDC clip (633x356), where the sweep applies them.
    from deepfake_detect.media.frames import iter_kept_frames

    frames = iter_kept_frames(dfdc_sample_dir / "videos" / "abqwwspghj.mp4", settings.load_config().RESIZE_RULES)
    _, frame = next(frames)
    frames.close()
    assert frame.shape == (356, 633, 3)
    for kind in FRAME_TYPES:
        values = [psnr(frame, Perturbation(kind, level).apply(frame, 0, "abqwwspghj")) for level in SEVERITY_LEVELS]
        assert all(earlier > later for earlier, later in zip(values, values[1:])), (kind, values)


def test_block_levels_include_lower_levels_blocks(face_bgr):
    level2 = Perturbation("block", 2).apply(face_bgr, 0, "v")
    level4 = Perturbation("block", 4).apply(face_bgr, 0, "v")
    changed2 = np.any(level2 != face_bgr, axis=2)
    assert changed2.any() and np.array_equal(level4[changed2], level2[changed2])


def test_video_reencode_psnr_falls_with_crf(tmp_path, face_bgr):
    source = write_portrait_video(tmp_path / "clip.mp4", face_bgr)
    clean_frames = read_frames(source)
    values = []
    for level in SEVERITY_LEVELS:
        out = Perturbation("video", level).reencode(source, tmp_path / f"clip-{level}.mp4")
        frames = read_frames(out)
        assert len(frames) == len(clean_frames) and frames[0].shape == clean_frames[0].shape
        values.append(np.mean([psnr(a, b) for a, b in zip(clean_frames, frames)]))
    assert all(earlier > later for earlier, later in zip(values, values[1:])), values
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip-1.mp4", "clip-2.mp4", "clip-3.mp4",
                                                         "clip-4.mp4", "clip-5.mp4", "clip.mp4"]


def test_video_level_0_is_a_plain_copy(tmp_path, face_bgr):
    source = write_portrait_video(tmp_path / "clip.mp4", face_bgr, frame_count=3)
    out = Perturbation("video", 0).reencode(source, tmp_path / "copy.mp4")
    assert out.read_bytes() == source.read_bytes()


def test_reencoded_video_keeps_any_file_name(tmp_path, face_bgr):
    # An .avi keeps its name (metadata.json names it) and is still read: MP4 inside, found by content.
    source = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (320, 240))
    for index in range(5):
        writer.write(np.ascontiguousarray(face_bgr[index:index + 240, :320]))
    writer.release()
    (tmp_path / "out").mkdir()
    out = Perturbation("video", 3).reencode(source, tmp_path / "out" / "clip.avi")
    frames = read_frames(out)
    assert len(frames) == 5 and frames[0].shape == (240, 320, 3)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["clip.avi"]


def test_missing_ffmpeg_is_a_codec_error_naming_the_fix(tmp_path, monkeypatch, face_bgr):
    source = write_portrait_video(tmp_path / "clip.mp4", face_bgr, frame_count=3)
    missing = tmp_path / "no-such-ffmpeg"
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(missing))
    with pytest.raises(CodecError, match="pip install imageio-ffmpeg") as caught:
        Perturbation("video", 2).reencode(source, tmp_path / "out.mp4")
    assert str(missing) in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    # The six frame types need no encoder.
    for kind in FRAME_TYPES:
        assert Perturbation(kind, 1).apply(face_bgr, 0, "v").shape == face_bgr.shape


def test_ffmpeg_without_libx264_is_a_codec_error(tmp_path, monkeypatch, face_bgr):
    source = write_portrait_video(tmp_path / "clip.mp4", face_bgr, frame_count=3)
    fake = tmp_path / "ffmpeg-without-x264"
    fake.write_text("#!/bin/sh\necho 'Encoders:'\necho ' V....D mpeg4  MPEG-4 part 2'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    with pytest.raises(CodecError, match=f"{fake} has no libx264 encoder: pip install imageio-ffmpeg"):
        Perturbation("video", 1).reencode(source, tmp_path / "out.mp4")


def test_unreadable_video_is_a_video_error(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="ffmpeg could not re-encode it"):
        Perturbation("video", 1).reencode(broken, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


def test_settings_are_checked_and_named():
    assert Perturbation("noise", 3, seed=0).cache_tag == "noise-3-s0"
    assert Perturbation("video", 1).applies_to_video and not Perturbation("blur", 1).applies_to_video
    assert set(PERTURBATION_TYPES) == set(FRAME_TYPES) | {"video"}
    with pytest.raises(ValueError, match="unknown perturbation type 'sharpen'"):
        Perturbation("sharpen", 1)
    with pytest.raises(ValueError, match="level must be an integer 0-5"):
        Perturbation("blur", 6)
    with pytest.raises(ValueError, match="use reencode"):
        Perturbation("video", 1).apply(np.zeros((8, 8, 3), np.uint8), 0, "v")
