"""A multi-machine stage 03 never hangs silently: a malformed TF_CONFIG is refused in one line, a
worker whose peer never comes up stops within CLUSTER_TIMEOUT_S naming it, and SIGTERM stops a
worker while it waits (03-train_cnn.py; deepfake_detect/training/distribute.py).

    .venv/bin/pytest tests/test_03_distributed.py

No training happens here (the cluster that trains is tests/test_03_multi_worker.py). The two
subprocess tests start TensorFlow once each: about 1 minute on a loaded 2-core CPU.
"""

import importlib
import os
import signal
import subprocess
import sys
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
    assert elapsed < TIMEOUT_S + 120


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the training child through /proc")
def test_sigterm_stops_a_waiting_worker(folder):
    slow = train_config(folder / "slow.py", folder / "split", folder / "runs", CLUSTER_TIMEOUT_S=600)
    cluster = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    worker = start_worker(slow, cluster, 1)
    try:
        for line in worker.stdout:  # the child waits for worker 0, which never comes
            if line.startswith("cluster: waiting"):
                break
        assert "worker 0 at" in line
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        assert len(children) == 1
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 128 + signal.SIGTERM
        assert time.monotonic() - started < distribute.STOP_GRACE_S + 10
        assert "stopped (SIGTERM)" in worker.stderr.read()
        time.sleep(0.5)
        status = Path(f"/proc/{children[0]}/status")
        assert not status.exists() or "zombie" in status.read_text(), "the training child was left running"
    finally:
        worker.kill()
        worker.wait()
