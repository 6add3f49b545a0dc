"""A multi-machine stage 03 never hangs silently: a malformed TF_CONFIG is refused in one line, a
worker whose peer never comes up stops within CLUSTER_TIMEOUT_S naming it, and SIGTERM stops a
worker while it waits (03-train_cnn.py; deepfake_detect/training/distribute.py).

    .venv/bin/pytest tests/test_03_distributed.py

No training happens here (the cluster that trains is tests/test_03_multi_worker.py). The two
subprocess tests start TensorFlow once each: about 1 minute on a loaded 2-core CPU.
"""

import importlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deepfake_detect.training import distribute
from tests.test_03_multi_worker import free_port, tf_config
from tests.test_03_train import train_config, write_split_crops

REPO_DIR = Path(__file__).resolve().parent.parent
SCRIPT = REPO_DIR / "03-train_cnn.py"
TIMEOUT_S = 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    write_split_crops(folder / "split", {"train": 1, "val": 1, "test": 1}, crops_per_video=2)
    return folder


@pytest.fixture(scope="module")
def config(folder):
    return train_config(folder / "c.py", folder / "split", folder / "runs", CLUSTER_TIMEOUT_S=TIMEOUT_S)


def start_worker(config, cluster, index):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_DIR), TF_CONFIG=tf_config(cluster, index))
    return subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(config)], cwd=REPO_DIR, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("text, problem", [
    ("{cluster:", "TF_CONFIG is not JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG has no "cluster"'),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', "is not \"host:port\""),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "task index 2 is not one"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', '"task" must say which machine this is'),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker"}}', '"ps": stage 03 trains'),
])
def test_malformed_tf_config_is_refused_in_one_line(config, text, problem, monkeypatch, capsys):
    monkeypatch.setenv("TF_CONFIG", text)
    script = importlib.import_module("03-train_cnn")
    assert script.main(["--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ") and problem in error, error


def test_multi_machine_run_needs_a_name(folder, monkeypatch, capsys):
    # A timestamp would differ between machines, and a restarted machine would not find its backup.
    unnamed = train_config(folder / "unnamed.py", folder / "split", folder / "runs", RUN_NAME=None)
    monkeypatch.setenv("TF_CONFIG", tf_config(["127.0.0.1:1", "127.0.0.1:2"], 0))
    script = importlib.import_module("03-train_cnn")
    assert script.main(["--config", str(unnamed)]) == 2
    assert "a multi-machine run needs --name (the same on every machine)" in capsys.readouterr().err
    assert distribute.peers(tf_config(["127.0.0.1:1", "127.0.0.1:2"], 0)) == [("worker 1", "127.0.0.1:2")]


def test_worker_alone_stops_within_its_timeout_naming_the_peer(config):
    cluster = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    started = time.monotonic()
    worker = start_worker(config, cluster, 0)
    stdout, stderr = worker.communicate(timeout=300)
    elapsed = time.monotonic() - started
    assert worker.returncode == 2, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"could not reach worker 1 at {cluster[1]}" in errors[0], stderr[-2000:]
    assert f"CLUSTER_TIMEOUT_S = {TIMEOUT_S} s" in errors[0] and "cluster: waiting" in stdout
    # The wait itself is TIMEOUT_S; the rest is starting Python and TensorFlow on a loaded machine.
    # Loose on purpose: the error line above is the proof; this only catches a wait far too long.
    assert elapsed < TIMEOUT_S + 240


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the training child through /proc")
def test_sigterm_stops_a_waiting_worker(folder):
    slow = train_config(folder / "slow.py", folder / "split", folder / "runs", CLUSTER_TIMEOUT_S=600)
    cluster = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    worker = start_worker(slow, cluster, 1)
    try:
        # The child waits for worker 0, which never comes (CLUSTER_TIMEOUT_S = 600 s).
        line = read_line_starting(worker.stdout, "cluster: waiting", timeout=300)
        assert "worker 0 at" in line
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        assert len(children) == 1
        worker.send_signal(signal.SIGTERM)
        # Stopped by the signal, not by CLUSTER_TIMEOUT_S: the exit status says which.
        assert worker.wait(timeout=120) == 128 + signal.SIGTERM
        assert "stopped (SIGTERM)" in worker.stderr.read()
        status = Path(f"/proc/{children[0]}/status")
        deadline = time.monotonic() + 60
        while status.exists() and "zombie" not in status.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not status.exists() or "zombie" in status.read_text(), "the training child was left running"
    finally:
        worker.kill()
        worker.wait()


def test_a_silent_child_fails_the_read_instead_of_hanging():
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        with pytest.raises(pytest.fail.Exception, match="within 2 s"):
            read_line_starting(silent.stdout, "cluster: waiting", timeout=2)
    finally:
        silent.kill()
        silent.wait()


def read_line_starting(stream, prefix, timeout):
    """The first line of `stream` starting with `prefix`; fails after `timeout` s (a silent child
    must not hang the suite) or at the end of the stream."""
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream] + [lines.put(None)], daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no line starting {prefix!r} within {timeout} s")
        if line is None:
            pytest.fail(f"the output ended without a line starting {prefix!r}")
        if line.startswith(prefix):
            return line
