"""Issue 24's smaller loose ends (item 11): HEIC/AVIF photos are images, a container without a
frame count is still held to WEB_MAX_VIDEO_SECONDS, a malformed `fake_periods` entry costs one
line and not the dataset's listing, and the training supervisor counts restarts "in a row".

    .venv/bin/pytest tests/test_small_fixes.py

Real files: an AVIF photo written by Pillow, videos written with cv2.VideoWriter (one made
"live", its container's duration removed), a metadata.json, and real child processes under
the supervisor. About 15 s.
"""

import json
import signal
import sys

import cv2
import numpy as np
import pytest

from conftest import write_config, write_test_video
from deepfake_detect.inference.results import IMAGE, VIDEO
from deepfake_detect.media.kinds import classify_file, sniff_media_kind
from deepfake_detect.settings import load_config


# ------------------------------------------------------------------ HEIC / AVIF photos

def test_heic_and_avif_photos_are_images_and_iso_videos_stay_videos(tmp_path):
    from PIL import Image, features

    from deepfake_detect.media.reading import iter_media_frames
    from deepfake_detect.sample import portrait_images

    video = write_test_video(tmp_path / "clip.mp4", frame_count=10)
    assert classify_file(video, (".mp4",)) == (VIDEO, None)
    for brand in (b"heic", b"mif1", b"avif"):  # the major brands of HEIF/HEIC and AVIF photos
        assert sniff_media_kind(b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00") == IMAGE, brand
    for brand in (b"isom", b"mp42", b"qt  ", b"avis"):  # videos, and AVIF image sequences
        assert sniff_media_kind(b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00") == VIDEO, brand
    if not features.check("avif"):
        pytest.skip("this Pillow cannot write AVIF")
    photo = tmp_path / "photo.avif"
    Image.fromarray(portrait_images()["astronaut"]).save(photo)
    assert photo.read_bytes()[4:12] == b"ftypavif"
    kind, problem = classify_file(photo, (".mp4",))
    assert (kind, problem) == (IMAGE, None)
    cfg = load_config(None)
    frames = list(iter_media_frames(photo, kind, cfg))  # read as the photo it is (OpenCV decodes AVIF)
    assert len(frames) == 1 and frames[0][1].ndim == 3


# ------------------------------------------------------------------ a video without a frame count

def write_live_video(path, seconds, fps=25):
    """An MKV as a live recorder leaves it: no Duration in its header, so OpenCV cannot say how
    many frames it holds. Written with cv2.VideoWriter, then the Duration element is overwritten
    with an EBML Void element of the same length."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"XVID"), fps, (160, 120))
    assert writer.isOpened()
    for index in range(seconds * fps):
        writer.write(np.full((120, 160, 3), index % 250, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Duration: ID 0x4489, size 8 (a float64)
    assert at > 0, "no Duration element found"
    data[at:at + 11] = b"\xec\x89" + bytes(9)  # Void: ID 0xEC, size 9
    path.write_bytes(bytes(data))
    capture = cv2.VideoCapture(str(path))
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    capture.release()
    assert not count > 0, f"OpenCV still announces {count} frames"
    return path


def test_a_container_without_a_frame_count_is_held_to_web_max_video_seconds(tmp_path):
    from deepfake_detect.inference.web_workers import UploadError, check_task, new_task

    live = write_live_video(tmp_path / "live.mkv", seconds=10)
    strict = load_config(write_config(tmp_path / "strict.py", WEB_MAX_VIDEO_SECONDS=5))
    with pytest.raises(UploadError) as refused:
        check_task(new_task(live, VIDEO, "live.mkv"), strict)
    assert refused.value.status == 413
    assert "does not say how long it lasts" in str(refused.value) and "WEB_MAX_VIDEO_SECONDS (5 s)" in str(refused.value)
    roomy = load_config(write_config(tmp_path / "roomy.py", WEB_MAX_VIDEO_SECONDS=20))
    assert check_task(new_task(live, VIDEO, "live.mkv"), roomy) is None  # allowed; its length stays unknown


# ------------------------------------------------------------------ fake_periods

def test_a_malformed_fake_periods_entry_is_one_line_and_the_listing_goes_on(tmp_path):
    from deepfake_detect.datasets.discovery import read_dataset

    videos = tmp_path / "videos"
    videos.mkdir()
    metadata = {"good.mp4": {"label": "FAKE", "fake_periods": [[1.0, 2.5], [3, 4, 2]]},
                "number.mp4": {"label": "FAKE", "fake_periods": [5]},
                "words.mp4": {"label": "FAKE", "fake_periods": [[1, "two"]]},
                "real.mp4": {"label": "REAL", "fake_periods": []}}
    for name in metadata:
        write_test_video(videos / name, frame_count=5)
    (videos / "metadata.json").write_text(json.dumps(metadata))
    listing = read_dataset(load_config(write_config(tmp_path / "cfg.py", VIDEOS_DIR=videos)))
    by_name = {video.name: video for video in listing.videos}
    assert sorted(by_name) == ["good", "number", "real", "words"]
    assert by_name["good"].fake_periods == ((1.0, 2.5), (3, 4, 2)) and by_name["real"].fake_periods == ()
    assert by_name["number"].fake_periods is None and by_name["number"].label == "FAKE"
    problems = [line for line in listing.problems if "fake_periods" in line]
    assert len(problems) == 2 and all("\n" not in line for line in problems)
    assert problems[0].startswith("number.mp4: fake_periods entry 5 is not [start, end]")


# ------------------------------------------------------------------ restarts in a row

TF_CONFIG = json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}})


@pytest.fixture
def supervisor_signals():
    """supervise() takes over SIGTERM and SIGINT; give them back after the test."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def child_command(runs_file, succeed_after=None):
    """A training child that records each run in `runs_file` (one line each, standing in for a
    finished epoch in the backup) and exits with RESTART_STATUS, or 0 from run `succeed_after` on."""
    from deepfake_detect.training.distribute import RESTART_STATUS

    code = (f"import sys; f = open({str(runs_file)!r}, 'a'); f.write('run\\n'); f.close(); "
            f"n = len(open({str(runs_file)!r}).readlines()); "
            f"sys.exit(0 if {succeed_after!r} is not None and n >= {succeed_after!r} else {RESTART_STATUS})")
    return [sys.executable, "-c", code]


def runs_of(runs_file):
    return len(runs_file.read_text().splitlines()) if runs_file.is_file() else 0


def test_a_worker_that_keeps_losing_its_cluster_gives_up_in_one_sentence(tmp_path, capfd, supervisor_signals):
    from deepfake_detect.training.distribute import MAX_RESTARTS, supervise

    runs = tmp_path / "runs.txt"
    assert supervise(child_command(runs), TF_CONFIG, timeout_s=60, progress=lambda: 0) == 1
    assert runs_of(runs) == MAX_RESTARTS + 1
    err = capfd.readouterr().err
    assert f"({MAX_RESTARTS} of {MAX_RESTARTS} in a row)" in err and f"({MAX_RESTARTS + 1} of" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "in a row without finishing an epoch" in errors[0]


def test_restarts_count_in_a_row_only_while_no_epoch_finishes(tmp_path, capfd, supervisor_signals):
    from deepfake_detect.training.distribute import MAX_RESTARTS, supervise

    runs = tmp_path / "runs.txt"
    # Each run finishes an epoch before its cluster breaks: far more restarts than MAX_RESTARTS
    # in all, never two in a row without progress, and the last run ends training.
    total = MAX_RESTARTS + 3
    status = supervise(child_command(runs, succeed_after=total), TF_CONFIG, timeout_s=60,
                       progress=lambda: runs_of(runs))
    assert status == 0 and runs_of(runs) == total
    assert "(1 of" in capfd.readouterr().err
