"""Machines sharing one output folder (issue 24, item 1): nobody deletes another's work in progress,
and a stage with failed videos exits non-zero.

    .venv/bin/pytest tests/test_shared_folder.py

Two shard processes of stage 00, and of stage 01a, write into one folder. The first is frozen
(SIGSTOP) while its partial folder is being built, the second runs start to end meanwhile, then
the first goes on: every video must be done, none failed, and the files equal one machine's run.
Real videos (cv2.VideoWriter), real MTCNN, real processes; POSIX only (SIGSTOP). About a minute,
most of it TensorFlow loading in the two 01a processes.
"""

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import folder_contents, write_config, write_test_video, write_video_frames
from deepfake_detect.files import (PARTIAL_MARK, is_stale_partial, partial_owner, remove_stale_partials,
                                   start_partial_folder)

REPO = Path(__file__).resolve().parent.parent
stage00 = importlib.import_module("00-convert_video_to_image")
stage01a = importlib.import_module("01a-crop_faces_with_mtcnn")
posix_only = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="freezes a process with SIGSTOP")


def dead_pid():
    """The id of a process of this host that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def partial_name(video, host, pid):
    return f".{video}{PARTIAL_MARK}{host}-{pid}"


# ------------------------------------------------------------------ what counts as stale

def test_only_a_dead_process_of_this_host_leaves_a_stale_partial(tmp_path):
    host = socket.gethostname()
    mine_dead = tmp_path / partial_name("a", host, dead_pid())
    mine_live = tmp_path / partial_name("b", host, os.getpid())
    other_host = tmp_path / partial_name("c", "other-machine.example", 4242)
    unnamed = tmp_path / ".d.partial-99999"           # says no host: cannot be proven dead
    for folder in (mine_dead, mine_live, other_host, unnamed):
        folder.mkdir()
        (folder / "half.png").write_bytes(b"half")
    assert partial_owner(other_host) == ("other-machine.example", 4242)
    assert [is_stale_partial(f) for f in (mine_dead, mine_live, other_host, unnamed)] == [True, False, False, False]

    assert remove_stale_partials(tmp_path) == (1, 2)     # the dead one deleted; two of others left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in (mine_live, other_host, unnamed))
    # --clean-partials: every other host's too, never a live process's of this host.
    assert remove_stale_partials(tmp_path, every_host=True) == (2, 0)
    assert [p.name for p in tmp_path.iterdir()] == [mine_live.name]


def test_a_retry_leaves_another_hosts_attempt_alone_and_still_publishes(tmp_path):
    elsewhere = tmp_path / partial_name("clip", "othermachine", 4242)
    elsewhere.mkdir()
    dead_here = tmp_path / partial_name("clip", socket.gethostname(), dead_pid())
    dead_here.mkdir()
    partial = start_partial_folder(tmp_path / "clip")
    assert elsewhere.is_dir() and not dead_here.exists()
    (partial / "clip-000.png").write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([elsewhere.name, partial.name])


# ------------------------------------------------------------ two shards, started apart

def catch_mid_video(process, output_dir, timeout=180):
    """Freeze `process` (SIGSTOP) while one of its partial folders holds a PNG; True when caught."""
    prefix = f"{PARTIAL_MARK}{socket.gethostname()}-{process.pid}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if any(any(p.glob("*.png")) for p in output_dir.glob(f".*{prefix}")):
            os.kill(process.pid, signal.SIGSTOP)
            if any(output_dir.glob(f".*{prefix}")):   # not finished between the look and the stop
                return True
            os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.005)
    return False


def run_two_shards_started_apart(script, config, output_dir):
    """Shard 1/2 frozen mid-video while shard 2/2 runs whole; then shard 1/2 goes on.
    Returns (exit status, output) of each."""
    command = [sys.executable, str(REPO / script), "--config", str(config), "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(command + ["--shard", "1/2"], cwd=REPO, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert catch_mid_video(first, output_dir), "shard 1/2 ended before it could be caught mid-video"
        second = subprocess.run(command + ["--shard", "2/2"], cwd=REPO, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        os.kill(first.pid, signal.SIGCONT)
        first_out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait()
    return (first.returncode, first_out), (second.returncode, second.stdout)


def assert_every_video_done(results, output_dir, reference_dir):
    for status, output in results:
        assert status == 0, output
        assert " failed" not in output and "cleared" not in output, output
    assert not list(output_dir.glob(f".*{PARTIAL_MARK}*"))
    assert folder_contents(output_dir) == folder_contents(reference_dir)


@posix_only
def test_stage_00_shards_sharing_a_folder_do_not_undo_each_other(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for index in range(6):  # 20 s each: 20 frames kept, long enough to be caught mid-video
        write_test_video(videos / f"clip{index}.mp4", frame_count=500, size=(320, 240))
    shared = write_config(tmp_path / "shared.py", VIDEOS_DIR=videos, OUTPUT_DIR=tmp_path / "shared")
    alone = write_config(tmp_path / "alone.py", VIDEOS_DIR=videos, OUTPUT_DIR=tmp_path / "alone")
    assert stage00.main(["--config", str(alone), "--workers", "1"]) == 0

    results = run_two_shards_started_apart("00-convert_video_to_image.py", shared, tmp_path / "shared" / "frames")
    assert_every_video_done(results, tmp_path / "shared" / "frames", tmp_path / "alone" / "frames")


@posix_only
def test_stage_01a_shards_sharing_a_folder_do_not_undo_each_other(tmp_path):
    from deepfake_detect.sample import portrait_images
    import cv2

    frames = []
    for rgb in portrait_images().values():
        small = cv2.resize(rgb, (256, round(rgb.shape[0] * 256 / rgb.shape[1])), interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    for index in range(4):
        write_video_frames(tmp_path / "frames", f"v{index}", frames * 4)
    settings = {"FRAMES_DIR": tmp_path / "frames", "MTCNN_BATCH_SIZE": 2}
    shared = write_config(tmp_path / "shared.py", FACES_DIR=tmp_path / "shared", OUTPUT_DIR=tmp_path / "o1",
                          **settings)
    alone = write_config(tmp_path / "alone.py", FACES_DIR=tmp_path / "alone", OUTPUT_DIR=tmp_path / "o2",
                         **settings)
    assert stage01a.main(["--config", str(alone), "--workers", "1"]) == 0

    results = run_two_shards_started_apart("01a-crop_faces_with_mtcnn.py", shared, tmp_path / "shared")
    assert_every_video_done(results, tmp_path / "shared", tmp_path / "alone")


# ------------------------------------------------------------ a failed video is an exit status

def block_partial_folder(output_dir, video):
    """Put a file where this process would build `video`'s partial folder: its mkdir fails (a
    fault, like a full disk), while the other videos go through."""
    output_dir.mkdir(parents=True, exist_ok=True)
    blocker = output_dir / partial_name(video, socket.gethostname(), os.getpid())
    blocker.write_bytes(b"")
    return blocker


def test_stage_00_finishes_the_rest_then_exits_1_when_a_video_failed(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for index in range(3):
        write_test_video(videos / f"clip{index}.mp4", frame_count=30)
    (videos / "broken.mp4").write_bytes(b"not a video")     # a bad input: skipped, not failed
    config = write_config(tmp_path / "cfg.py", VIDEOS_DIR=videos, OUTPUT_DIR=tmp_path / "out")
    block_partial_folder(tmp_path / "out" / "frames", "clip1")

    assert stage00.main(["--config", str(config), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "(2 done, 1 skipped, 1 failed)" in out
    assert "1 videos failed and not done (skipped bad inputs aside): exit status 1" in out
    assert sorted(p.name for p in (tmp_path / "out" / "frames").iterdir() if not p.name.startswith(".")) == [
        "clip0", "clip2", "settings-00.json"]


def test_skipped_bad_inputs_alone_leave_the_exit_status_0(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_test_video(videos / "clip0.mp4", frame_count=30)
    (videos / "broken.mp4").write_bytes(b"not a video")
    config = write_config(tmp_path / "cfg.py", VIDEOS_DIR=videos, OUTPUT_DIR=tmp_path / "out")
    assert stage00.main(["--config", str(config), "--workers", "1"]) == 0


def test_stage_01a_finishes_the_rest_then_exits_1_when_a_video_failed(tmp_path, capsys):
    from deepfake_detect.sample import portrait_images
    import cv2

    rgb = next(iter(portrait_images().values()))
    frame = cv2.cvtColor(cv2.resize(rgb, (128, round(rgb.shape[0] * 128 / rgb.shape[1]))), cv2.COLOR_RGB2BGR)
    for video in ("a", "b"):
        write_video_frames(tmp_path / "frames", video, [frame])
    config = write_config(tmp_path / "cfg.py", FRAMES_DIR=tmp_path / "frames", FACES_DIR=tmp_path / "faces",
                          OUTPUT_DIR=tmp_path / "out")
    block_partial_folder(tmp_path / "faces", "b")
    assert stage01a.main(["--config", str(config), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "(1 done, 1 failed)" in out and "exit status 1" in out
    assert (tmp_path / "faces" / "a").is_dir() and not (tmp_path / "faces" / "b").exists()
