"""Live scoring (04-detect_deepfakes.py --live, Detector.stream): a real HTTP stream served on
127.0.0.1 by imageio-ffmpeg's ffmpeg, the same stream killed half-way, a file played in real
time, sources that do not exist, and the session's alert rule on made-up scores.

    .venv/bin/pytest tests/test_04_live.py

The model is the tiny fresh one of test_04_detect (fixed seed, weights=None): its scores mean
nothing, but every frame goes through the real reader, MTCNN, crops and model. Whether a trained
model flags a swap within 2 s is measured by bench/bench_04_live.py, not here.
"""

import importlib
import json
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_detect.api import Detector
from deepfake_detect.inference.scoring import Scorer
from deepfake_detect.live.events import Alert, Summary, Update
from deepfake_detect.live.frames import LiveFace
from deepfake_detect.live.session import LiveSession
from deepfake_detect.settings import load_config
from conftest import write_config
from test_04_detect import build_test_model

TAKE_SECONDS, TAKE_FPS = 4, 25
detect = importlib.import_module("04-detect_deepfakes")


def write_sample_take(path, seconds=TAKE_SECONDS, fps=TAKE_FPS, seed=3):
    """One take of the built-in sample's astronaut (deepfake_detect.sample), 400x300 at `fps`."""
    from deepfake_detect.sample import LANDMARKS, draw_take, film, portrait_images, write_video

    take = draw_take(np.random.default_rng(seed), seconds * fps)
    write_video(path, film(portrait_images()["astronaut"], LANDMARKS["astronaut"], take, seed), fps)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    model = build_test_model(root / "runs" / "test" / "model.keras")
    config = write_config(root / "config.py", RUNS_DIR=root / "runs", LIVE_RECONNECT_SECONDS=2.0)
    return {"root": root, "model": model, "config": config, "cfg": load_config(config),
            "take": write_sample_take(root / "take.mp4")}


@pytest.fixture(scope="module")
def scorer(workspace):
    return Scorer(workspace["model"])


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_stream(video, loops=0):
    """(ffmpeg process, URL): `video` played in real time (-re) as MPEG-TS over HTTP on 127.0.0.1,
    to one client, `loops` extra times."""
    import imageio_ffmpeg

    port = free_port()
    url = f"http://127.0.0.1:{port}/take.ts"
    process = subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-re",
                                "-stream_loop", str(loops), "-i", str(video), "-c:v", "mpeg2video", "-q:v", "4",
                                "-f", "mpegts", "-listen", "1", url],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, url


def run_live(workspace, scorer, source, tmp_path, capsys, *extra):
    """(exit status, JSON lines, stdout, stderr, seconds) of --live SOURCE run in this process."""
    jsonl = tmp_path / "live.jsonl"
    started = time.monotonic()
    status = detect.main(["--config", str(workspace["config"]), "--live", str(source), "--jsonl", str(jsonl), *extra],
                         scorer=scorer)
    seconds = time.monotonic() - started
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    return status, lines, out, err, seconds


def check_counts(lines):
    """The summary is the last line, once, and its counts add up with the updates'."""
    *events, summary = lines
    assert summary["type"] == "summary" and all(e["type"] in ("update", "alert") for e in events)
    assert summary["frames_read"] == summary["frames_scored"] + summary["frames_dropped"] + summary["frames_failed"]
    updates = [e for e in events if e["type"] == "update"]
    assert updates and updates[-1]["frames_scored"] <= summary["frames_scored"]
    times = [u["time"] for u in updates]
    assert times == sorted(times)
    # At least once a second: an update comes with the first frame scored LIVE_UPDATE_SECONDS after
    # the last one, so a longer gap only follows a single frame that took that long to score (a
    # machine loaded by other jobs), never frames scored without an update.
    for before, after in zip(updates, updates[1:]):
        if after["time"] - before["time"] > 1.0:
            assert after["frames_scored"] - before["frames_scored"] == 1, (before, after)
    for update in updates:
        assert update["latency_ms"] >= 0 and update["verdict"] in ("REAL", "FAKE", "UNCERTAIN", None)
    return summary, updates


def test_http_stream_is_read_live_and_the_run_ends_by_itself(workspace, scorer, tmp_path, capsys):
    server, url = serve_stream(workspace["take"])
    try:
        status, lines, out, err, seconds = run_live(workspace, scorer, url, tmp_path, capsys)
    finally:
        server.kill()
        server.wait()
    summary, updates = check_counts(lines)
    assert status == 0 and "Traceback" not in err
    assert summary["frames_scored"] >= 10, summary
    assert summary["frames_read"] <= TAKE_SECONDS * TAKE_FPS + 5
    assert any(u["persons"] for u in updates), "the astronaut's face was never found"
    assert summary["persons"] and summary["persons"][0]["person"] == 1
    assert "did not come back" in summary["end_reason"]  # it ended, was retried, then gave up
    assert seconds < TAKE_SECONDS + workspace["cfg"].LIVE_RECONNECT_SECONDS + 30
    assert "live check finished" in out and "person 1" in out


def test_stream_killed_half_way_is_retried_then_summarized(workspace, scorer, tmp_path, capsys):
    server, url = serve_stream(workspace["take"], loops=20)  # 84 s unless killed
    killer = threading.Timer(4.0, server.kill)
    killer.start()
    try:
        status, lines, out, err, seconds = run_live(workspace, scorer, url, tmp_path, capsys)
    finally:
        killer.cancel()
        server.kill()
        server.wait()
    summary, _ = check_counts(lines)
    assert status == 0 and "Traceback" not in err + out
    assert summary["reconnects"] >= 1 and "did not come back within 2 s" in summary["end_reason"], summary
    assert 0 < summary["frames_read"] < 84 * TAKE_FPS and seconds < 40


def test_a_file_plays_in_real_time_and_is_recorded(workspace, scorer, tmp_path, capsys):
    record = tmp_path / "annotated.mp4"
    status, lines, out, err, seconds = run_live(workspace, scorer, workspace["take"], tmp_path, capsys,
                                                "--record", str(record))
    summary, updates = check_counts(lines)
    assert status == 0
    assert summary["frames_read"] == TAKE_SECONDS * TAKE_FPS  # every frame, the last one included
    assert summary["end_reason"] == "the source ended" and summary["reconnects"] == 0
    assert seconds >= TAKE_SECONDS - 0.3 and summary["seconds"] >= TAKE_SECONDS - 0.3  # not faster than it plays
    assert updates[-1]["time"] >= TAKE_SECONDS - 1.0
    capture = cv2.VideoCapture(str(record))
    frames = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    capture.release()
    assert abs(frames - TAKE_SECONDS * workspace["cfg"].LIVE_RECORD_FPS) <= 2
    assert not list(tmp_path.glob(".annotated*"))  # no temporary file left behind


@pytest.mark.parametrize("source", ["/no/such/video.mp4", "/dev/video97"])
def test_a_source_that_cannot_be_opened_is_one_sentence_and_exit_2(workspace, scorer, tmp_path, capsys, source):
    status, lines, out, err, _ = run_live(workspace, scorer, source, tmp_path, capsys)
    assert status == 2 and lines == []
    assert err.count("\n") == 1 and err.startswith("error: cannot open") and source in err


def test_detector_stream_yields_the_same_updates_as_objects(workspace, scorer):
    detector = Detector(scorer, workspace["cfg"])
    with detector.stream(workspace["take"]) as stream:
        events = list(stream)
    assert isinstance(events[-1], Summary) and all(isinstance(e, (Update, Alert)) for e in events[:-1])
    update = next(e for e in events if isinstance(e, Update) and e.persons)
    assert update.as_dict()["type"] == "update" and update.persons[0].person == 1
    assert events[-1].frames_read == TAKE_SECONDS * TAKE_FPS


# ------------------------------------------------------------------ the session's rule, on made-up scores

def live_settings(**changes):
    cfg = load_config(None)
    return types.SimpleNamespace(**{**vars(cfg), **changes})


def feed(session, seconds, fps, p_fake_at, boxes=((100, 80, 60, 60),)):
    """Give `session` frames at `fps` for `seconds`; P(fake) of face i at time t is p_fake_at(i, t)."""
    alerts = []
    for step in range(int(seconds * fps)):
        t = step / fps
        faces = [LiveFace(box, 1.0 - p_fake_at(i, t), 1.0 - p_fake_at(i, t)) for i, box in enumerate(boxes)]
        alerts += session.add(t, faces)
    return alerts


def test_a_swap_is_alerted_once_soon_after_it_starts_and_never_before():
    cfg = live_settings()
    session = LiveSession(cfg)
    # person 1 (left) real throughout; person 2 real, then swapped from 6 s to 12 s, then real again
    alerts = feed(session, 24, 10, lambda i, t: 0.9 if i == 0 and 6 <= t < 12 else 0.1,
                  boxes=((300, 80, 60, 60), (100, 80, 60, 60)))
    assert [a.person for a in alerts] == [2]  # the right-hand face is person 2 (numbered left to right)
    [alert] = alerts
    assert 6.0 < alert.time <= 6.0 + cfg.LIVE_MIN_FAKE_SECONDS + 0.6 and abs(alert.since - 6.0) <= 0.2
    assert alert.message == "person 2 looks fake since 0:06.0"
    update = session.update(23.9, 10.0)  # the window (10 s) holds real frames only again
    assert [p.verdict for p in update.persons] == ["REAL", "REAL"] and update.verdict == "REAL"
    persons, segments = session.close()
    assert [(s.person, round(s.start, 1)) for s in segments] == [(2, 6.0)] and 11.5 <= segments[0].end <= 12.6
    assert [p["person"] for p in persons] == [1, 2]


def test_a_person_in_a_fake_segment_reads_fake_and_so_does_the_stream():
    session = LiveSession(live_settings())
    feed(session, 4, 10, lambda i, t: 0.95)
    update = session.update(4.0, 10.0)
    assert update.verdict == "FAKE" and update.persons[0].verdict == "FAKE" and update.persons[0].fake_since == 0.0


def test_a_segment_that_closes_and_reopens_does_not_reach_back_before_its_end():
    session = LiveSession(live_settings())
    # fake for 3 s, real for 0.6 s (the smoothed score dips), fake again: two segments, in order
    alerts = feed(session, 8, 10, lambda i, t: 0.05 if 3.0 <= t < 3.6 else 0.95)
    _, segments = session.close()
    assert len(alerts) == len(segments) == 2 and alerts[1].since >= segments[0].end, (alerts, segments)


def test_a_one_frame_blip_is_no_alert():
    session = LiveSession(live_settings())
    assert feed(session, 10, 10, lambda i, t: 0.99 if 3.0 <= t < 3.3 else 0.05) == []


def test_ctrl_c_ends_the_run_with_its_summary(workspace, scorer, tmp_path, capsys):
    import _thread

    jsonl, done = tmp_path / "live.jsonl", threading.Event()

    def press_ctrl_c_once_streaming():
        while not done.wait(0.1):
            if jsonl.exists() and '"update"' in jsonl.read_text():
                time.sleep(1.0)
                _thread.interrupt_main()  # what Ctrl+C does to the main thread
                return

    presser = threading.Thread(target=press_ctrl_c_once_streaming, daemon=True)
    presser.start()
    try:
        status, lines, out, err, seconds = run_live(workspace, scorer, workspace["take"], tmp_path, capsys)
    finally:
        done.set()
        presser.join()
    summary, _ = check_counts(lines)
    assert status == 0 and "Traceback" not in err + out
    assert summary["end_reason"] == "stopped" and 0 < summary["frames_read"] < TAKE_SECONDS * TAKE_FPS
    assert "live check finished" in out


def test_jsonl_to_stdout_leaves_stdout_to_json_lines(workspace, tmp_path):
    """A new process, as a program following the lines would start it: every stdout line is JSON."""
    done = subprocess.run([sys.executable, "04-detect_deepfakes.py", "--config", str(workspace["config"]),
                           "--live", str(workspace["take"]), "--jsonl", "-"],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0 and lines and lines[-1]["type"] == "summary", done.stderr[-2000:]
    assert "live check finished" in done.stderr and "settings:" in done.stderr
