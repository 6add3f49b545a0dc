"""Stage 01a (frames -> face crops with MTCNN) on real frames with real faces.

    .venv/bin/pytest tests/test_01a_crop_faces.py
    DFDC_SAMPLE_DIR=/work/shared/dfdc_sample .venv/bin/pytest tests/test_01a_crop_faces.py   # + real DFDC clips

Frames are the two portraits of deepfake_detect.sample (astronaut, Grace Hopper) written as
PNGs in tmp_path; MTCNN runs for real (its weights ship inside the mtcnn package). Takes
about a minute on a 2-core CPU, most of it loading TensorFlow in the kill-and-rerun test.
"""

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import folder_contents, write_video_frames
from conftest import write_config as write_config_file
from deepfake_detect.faces.crops import INDEX_FILE, expand_box, keep_faces, load_frame_rgb, read_index
from deepfake_detect.faces.detector import Face
from deepfake_detect.files import PARTIAL_MARK, write_png
from deepfake_detect.faces.mtcnn import MtcnnFaceDetector
from deepfake_detect.sample import portrait_images

stage01a = importlib.import_module("01a-crop_faces_with_mtcnn")
REPO_DIR = Path(__file__).resolve().parent.parent
FRAME_WIDTH = 256  # portraits are scaled down so MTCNN runs fast; faces stay ~100 px wide


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def portraits_bgr():
    """The two portraits as BGR frames FRAME_WIDTH px wide: {"astronaut": ..., "hopper": ...}."""
    frames = {}
    for name, rgb in portrait_images().items():
        height = round(rgb.shape[0] * FRAME_WIDTH / rgb.shape[1])
        small = cv2.resize(rgb, (FRAME_WIDTH, height), interpolation=cv2.INTER_AREA)
        frames[name] = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    return frames


@pytest.fixture(scope="module")
def detector():
    return MtcnnFaceDetector()


def write_config(tmp_path, frames_dir, faces_dir, **extra):
    return write_config_file(tmp_path / "test_config.py", FRAMES_DIR=frames_dir, FACES_DIR=faces_dir,
                             OUTPUT_DIR=tmp_path / "out", **extra)


# ------------------------------------------------------------ margin and keep rule

@pytest.mark.parametrize("face, expected", [
    (Face(100, 100, 50, 40), (85, 88, 165, 152)),    # inside: 30% of 50 = 15, 30% of 40 = 12
    (Face(5, 100, 50, 40), (0, 88, 70, 152)),        # left border clips x1 to 0
    (Face(100, 3, 50, 40), (85, 0, 165, 55)),        # top border clips y1 to 0
    (Face(270, 100, 50, 40), (255, 88, 300, 152)),   # right border clips x2 to the width
    (Face(100, 170, 50, 40), (85, 158, 165, 200)),   # bottom border clips y2 to the height
    (Face(-10, -10, 330, 230), (0, 0, 300, 200)),    # a box larger than the frame: the whole frame
])
def test_margin_is_30_percent_and_clipped_at_every_border(face, expected):
    assert expand_box(face, 0.30, frame_width=300, frame_height=200) == expected


def test_margin_truncates_like_the_original():
    # 33 * 0.3 = 9.9: x1 = int(10 - 9.9) = 0, x2 = int(10 + 33 + 9.9) = 52 (not rounded to 53)
    assert expand_box(Face(10, 10, 33, 33), 0.30, 100, 100) == (0, 0, 52, 52)


@pytest.mark.parametrize("confidences, kept", [
    ([0.50], [0.50]),                    # a single face is kept whatever its confidence
    ([0.95, 0.96], [0.96]),              # of two, only those strictly above 0.95
    ([0.949, 0.951], [0.951]),
    ([0.90, 0.94], []),                  # two doubtful faces: none kept
    ([0.99, 0.95, 0.97], [0.99, 0.97]),  # three: order is kept
    ([0.96, 0.97, 0.98], [0.96, 0.97, 0.98]),
])
def test_keep_rule(confidences, kept):
    faces = [Face(0, 0, 10, 10, c) for c in confidences]
    assert [f.confidence for f in keep_faces(faces, 0.95)] == kept


def test_no_detection_keeps_nothing():
    assert keep_faces([], 0.95) == []


# -------------------------------------------------------------- real faces

def test_crops_and_index_on_real_portraits(tmp_path, portraits_bgr):
    frames_root, faces_root = tmp_path / "frames", tmp_path / "faces"
    blank = np.full_like(portraits_bgr["astronaut"], 128)
    write_video_frames(frames_root, "portraits", [portraits_bgr["astronaut"], portraits_bgr["hopper"], blank])
    config = write_config(tmp_path, frames_root, faces_root)

    assert stage01a.main(["--config", str(config), "--workers", "1"]) == 0

    video_dir = faces_root / "portraits"
    rows = read_index(video_dir / INDEX_FILE)
    assert [r["frame"] for r in rows] == ["portraits-000.png", "portraits-001.png", "portraits-002.png"]
    assert rows[2]["face"] == "" and rows[2]["file"] == ""   # the blank frame is recorded as done
    crops = sorted(p.name for p in video_dir.glob("*.png"))
    assert crops == ["portraits-000-00.png", "portraits-001-00.png"]
    for row, frame in zip(rows[:2], [portraits_bgr["astronaut"], portraits_bgr["hopper"]]):
        assert row["face"] == "0" and float(row["confidence"]) > 0.95
        face = Face(int(row["x"]), int(row["y"]), int(row["width"]), int(row["height"]))
        assert face.width > FRAME_WIDTH / 10   # a face (about 40 px here), not a speck
        x1, y1, x2, y2 = expand_box(face, 0.30, frame.shape[1], frame.shape[0])
        crop = cv2.imread(str(video_dir / row["file"]))
        # Same pixels in the same channel order as the frame: no RGB/BGR swap on the way.
        np.testing.assert_array_equal(crop, frame[y1:y2, x1:x2])
    assert (faces_root / "settings-01a.json").is_file()


def test_detector_sees_rgb(tmp_path, portraits_bgr, detector):
    # A PNG read back for MTCNN is RGB, i.e. the portrait as scikit-image/matplotlib give it.
    write_png(tmp_path / "a.png", portraits_bgr["astronaut"])
    rgb = load_frame_rgb(tmp_path / "a.png")
    np.testing.assert_array_equal(rgb, cv2.cvtColor(portraits_bgr["astronaut"], cv2.COLOR_BGR2RGB))
    [faces] = detector([rgb])
    assert len(faces) == 1 and faces[0].confidence > 0.99


def test_batches_give_the_same_faces_as_single_frames(portraits_bgr, detector):
    frames = [cv2.cvtColor(portraits_bgr["astronaut"], cv2.COLOR_BGR2RGB)] * 2 + [np.full((256, 256, 3), 90, np.uint8)]
    one_by_one = [detector([frame])[0] for frame in frames]
    batched = detector(frames)
    assert [[(f.x, f.y, f.width, f.height) for f in faces] for faces in batched] == \
           [[(f.x, f.y, f.width, f.height) for f in faces] for faces in one_by_one]
    assert batched[2] == []


# ------------------------------------------------------------------ bad input

def test_bad_frames_are_reported_and_the_rest_is_cropped(tmp_path, portraits_bgr, capsys):
    frames_root, faces_root = tmp_path / "frames", tmp_path / "faces"
    astronaut = portraits_bgr["astronaut"]
    folder = write_video_frames(frames_root, "mixed", [astronaut])
    ok, png = cv2.imencode(".png", astronaut)
    (folder / "mixed-001.png").write_bytes(png.tobytes()[: len(png) // 2])        # truncated PNG
    cv2.imwrite(str(folder / "mixed-002.png"), cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "mixed-003.png"), cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "mixed-004.png"), cv2.resize(astronaut, (10, 10)))  # below MTCNN's 12 px
    (folder / "mixed-005.png").write_bytes(b"")                                   # empty file
    write_video_frames(frames_root, "nothing", [])                                # an empty video folder
    config = write_config(tmp_path, frames_root, faces_root)

    assert stage01a.main(["--config", str(config), "--workers", "1"]) == 0

    err = capsys.readouterr().err
    assert "mixed-001.png: unreadable image" in err
    assert "mixed-004.png: image is 10x10 px, too small" in err
    assert "mixed-005.png: unreadable image" in err
    assert "nothing: no PNG frames in" in err
    rows = read_index(faces_root / "mixed" / INDEX_FILE)
    # Grayscale and RGBA frames are converted and their face found like the colour one's.
    assert [r["file"] for r in rows] == ["mixed-000-00.png", "mixed-002-00.png", "mixed-003-00.png"]
    assert cv2.imread(str(faces_root / "mixed" / "mixed-002-00.png"), cv2.IMREAD_UNCHANGED).shape[2] == 3
    assert not (faces_root / "nothing").exists()   # a rerun tries it again once it has frames


def test_missing_frames_folder_says_run_stage_00(tmp_path, capsys):
    config = write_config(tmp_path, tmp_path / "no_frames", tmp_path / "faces")
    assert stage01a.main(["--config", str(config)]) != 0
    assert "run 00-convert_video_to_image.py first" in capsys.readouterr().err


def test_empty_frames_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "frames").mkdir()
    config = write_config(tmp_path, tmp_path / "frames", tmp_path / "faces")
    assert stage01a.main(["--config", str(config)]) == 1
    assert "no video folders" in capsys.readouterr().err


def test_all_frames_unreadable_exits_non_zero(tmp_path):
    frames_root = tmp_path / "frames"
    (frames_root / "broken").mkdir(parents=True)
    (frames_root / "broken" / "broken-000.png").write_bytes(b"not a png")
    config = write_config(tmp_path, frames_root, tmp_path / "faces")
    assert stage01a.main(["--config", str(config), "--workers", "1"]) == 1
    assert not (tmp_path / "faces" / "broken").exists()


def test_shard_takes_every_other_video(tmp_path, portraits_bgr):
    frames_root, faces_root = tmp_path / "frames", tmp_path / "faces"
    for video in ("a", "b", "c"):
        write_video_frames(frames_root, video, [portraits_bgr["hopper"]])
    config = write_config(tmp_path, frames_root, faces_root)
    assert stage01a.main(["--config", str(config), "--workers", "1", "--shard", "2/2"]) == 0
    assert sorted(p.name for p in faces_root.iterdir() if p.is_dir()) == ["b"]


# --------------------------------------------------------------- kill and rerun

def test_killed_run_reruns_to_the_same_files(tmp_path, portraits_bgr):
    frames_root = tmp_path / "frames"
    videos = [f"v{n}" for n in range(5)]
    for video in videos:
        write_video_frames(frames_root, video, [portraits_bgr["astronaut"], portraits_bgr["hopper"]] * 3)

    # Reference: one uninterrupted run, in this process.
    clean_root = tmp_path / "faces_clean"
    (tmp_path / "clean").mkdir()
    # Small batches keep a half-built folder with crops in it on disk long enough to be caught.
    clean_config = write_config(tmp_path / "clean", frames_root, clean_root, MTCNN_BATCH_SIZE=2)
    assert stage01a.main(["--config", str(clean_config), "--workers", "1"]) == 0

    # Killed run: SIGKILL as soon as a video's folder is being built, then rerun.
    killed_root = tmp_path / "faces_killed"
    (tmp_path / "killed").mkdir()
    killed_config = write_config(tmp_path / "killed", frames_root, killed_root, MTCNN_BATCH_SIZE=2)
    command = [sys.executable, str(REPO_DIR / "01a-crop_faces_with_mtcnn.py"), "--config", str(killed_config),
               "--workers", "1"]
    process = subprocess.Popen(command, cwd=REPO_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and process.poll() is None:
            partials = list(killed_root.glob(f".*{PARTIAL_MARK}*")) if killed_root.is_dir() else []
            finished = [p for p in killed_root.iterdir() if p.is_dir() and not p.name.startswith(".")] \
                if killed_root.is_dir() else []
            if partials and any(partials[0].glob("*.png")) and finished:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the run ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    left = {p.name for p in killed_root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert 1 <= len(left) < len(videos)                         # killed mid-run, some videos done
    assert list(killed_root.glob(f".*{PARTIAL_MARK}*"))         # and one half-built

    assert stage01a.main(["--config", str(killed_config), "--workers", "1"]) == 0
    assert not list(killed_root.glob(".*"))                     # no partial folder left
    assert folder_contents(killed_root) == folder_contents(clean_root)


# ------------------------------------------------------ the real DFDC sample

def test_dfdc_crops_match_the_original_pipeline(tmp_path):
    sample = os.environ.get("DFDC_SAMPLE_DIR")
    if not sample:
        pytest.skip("set DFDC_SAMPLE_DIR to the dfdc_sample folder to run this test")
    sample = Path(sample)
    stage00 = importlib.import_module("00-convert_video_to_image")
    config = tmp_path / "dfdc_config.py"
    config.write_text(f"VIDEOS_DIR = Path({str(sample / 'videos')!r})\nOUTPUT_DIR = Path({str(tmp_path)!r})\n")
    assert stage00.main(["--config", str(config), "--workers", "1"]) == 0
    assert stage01a.main(["--config", str(config), "--workers", "1"]) == 0

    originals = sorted((sample / "faces" / "fake").glob("ab[oq]*.png"))
    assert len(originals) == 5
    for original in originals:
        video = original.name.split("-")[0]
        ours = tmp_path / "faces" / video / original.name
        assert ours.is_file(), f"no crop {ours.name} where the original pipeline made one"
        ours_h, ours_w = cv2.imread(str(ours)).shape[:2]
        orig_h, orig_w = cv2.imread(str(original)).shape[:2]
        assert abs(ours_w - orig_w) <= 0.15 * orig_w and abs(ours_h - orig_h) <= 0.15 * orig_h, \
            f"{original.name}: ours {ours_w}x{ours_h}, original {orig_w}x{orig_h}"
