"""A long video on stage 04's command line is scored in flat memory (issue 24, item 9): faces are
scored as they are found and their crops dropped, and --annotate reads the frames again from the
file to draw them one at a time, so what stays in memory does not grow with the video's length.

    .venv/bin/pytest tests/test_04_long_video.py

Real videos (cv2.VideoWriter, one frame per second so every frame is kept), real MTCNN, a tiny
untrained model. Python's own allocations (NumPy arrays included) are measured with tracemalloc:
the peak while scoring a 300-s video must exceed a 30-s one's by less than MAX_GROWTH_MB, where
before this fix the 270 more seconds took 91 MB more (their crops held), and 229 MB more with
--annotate (their frames too); now 2.2 MB (2026-12, x86_64, 2 loaded cores). About 100 s.
bench/bench_04_long_video.py measures the process's RSS on a 40-minute video.
"""

import importlib
import json
import tracemalloc

import cv2
import numpy as np
import pytest

from conftest import write_config, write_frames_video
from deepfake_detect.inference.scoring import Scorer
from deepfake_detect.settings import load_config
from test_04_detect import build_test_model

stage04 = importlib.import_module("04-detect_deepfakes")
SHORT_S, LONG_S = 30, 300
FRAME_WIDTH = 160  # doubled by RESIZE_RULES to 320 px: a face MTCNN finds, at low cost
# What 270 more seconds may add: their FaceScores (about 1 KB a frame) and the noise of the
# transient peak (MTCNN's and TensorFlow's working arrays: 30 +- 2.5 MB whatever the length).
MAX_GROWTH_MB = 5.0


def write_long_portrait_video(path, seconds):
    """An mp4v video at 1 frame per second of a portrait FRAME_WIDTH px wide, shifting a pixel a frame."""
    from deepfake_detect.sample import portrait_images

    rgb = portrait_images()["astronaut"]
    small = cv2.resize(rgb, (FRAME_WIDTH, round(rgb.shape[0] * FRAME_WIDTH / rgb.shape[1])), interpolation=cv2.INTER_AREA)
    frame = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    return write_frames_video(path, (np.roll(frame, index % 8, axis=1) for index in range(seconds)), fps=1)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("long_video")
    model = build_test_model(root / "runs" / "test" / "model.keras")
    videos = {seconds: write_long_portrait_video(root / f"clip_{seconds}s.mp4", seconds) for seconds in (SHORT_S, LONG_S)}
    return {"root": root, "scorer": Scorer(model), "videos": videos,
            "config": write_config(root / "config.py", RUNS_DIR=root / "runs")}


def peak_mb_while(run):
    """(MB allocated at the peak of `run()` above what was allocated before it, run's return)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        value = run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - before) / 2**20, value


def test_a_long_video_is_scored_and_annotated_in_flat_memory(workspace, tmp_path):
    peaks, documents = {}, {}
    for seconds, video in workspace["videos"].items():
        out = tmp_path / f"{seconds}.json"
        argv = ["--config", str(workspace["config"]), str(video), "--json", str(out),
                "--annotate", str(tmp_path / f"annotated_{seconds}")]
        peaks[seconds], status = peak_mb_while(lambda: stage04.main(argv, scorer=workspace["scorer"]))
        assert status == 0
        documents[seconds] = json.loads(out.read_text())["inputs"][0]
    for seconds, record in documents.items():  # every frame read and a face found in each
        assert record["status"] == "scored" and record["frames"] == seconds and record["faces"] == seconds, record
    # the annotated video has every frame, drawn from frames read again from the file
    capture = cv2.VideoCapture(str(tmp_path / f"annotated_{LONG_S}" / f"clip_{LONG_S}s-annotated.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == LONG_S
    capture.release()
    growth = peaks[LONG_S] - peaks[SHORT_S]
    print(f"peak Python memory: {peaks[SHORT_S]:.1f} MB for {SHORT_S} s, {peaks[LONG_S]:.1f} MB for {LONG_S} s")
    assert growth < MAX_GROWTH_MB, f"{LONG_S - SHORT_S} more seconds took {growth:.1f} MB more"


def test_crops_are_dropped_once_scored_and_the_scores_do_not_change(workspace):
    scorer, video = workspace["scorer"], workspace["videos"][SHORT_S]
    cfg = load_config(workspace["config"])
    kept = scorer.score_file(video, cfg)
    dropped = scorer.score_file(video, cfg, keep_crops=False)
    assert all(face.crop is not None for face in kept.faces) and all(face.crop is None for face in dropped.faces)
    assert [face.p_real for face in dropped.faces] == pytest.approx([face.p_real for face in kept.faces], abs=1e-6)
    assert dropped.p_real == pytest.approx(kept.p_real, abs=1e-6) and dropped.verdict == kept.verdict
