"""Stage 03 trains across machines: two workers on loopback (TF_CONFIG) run 03-train_cnn.py itself,
each decoding its own half of the crops (distribute.worker_share), and train one model with the
distributed step under MultiWorkerMirroredStrategy; one of them is SIGKILLed during epoch 2 and
started again, and the cluster resumes from its last finished epoch.

    .venv/bin/pytest tests/test_03_multi_worker.py

Worker 1 starts first and the chief (worker 0) second; the restarted worker 1 comes back after the
chief: both orders train. Tiny EfficientNet-B0 runs (WEIGHTS None, INPUT_SIZE 32, 3 epochs), but
tracing the distributed step twice (before and after the restart) takes 5-10 minutes on a loaded
2-core CPU.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepfake_detect.training import epoch_end
from deepfake_detect.training.distribute import worker_share
from tests.conftest import TRAINING_TIMEOUT_S
from tests.test_03_train import check_tensorboard_logs, train_config, write_split_crops

pytestmark = pytest.mark.timeout(TRAINING_TIMEOUT_S)  # trains a model: longer than pytest.ini's limit

REPO_DIR = Path(__file__).resolve().parent.parent
SCRIPT = REPO_DIR / "03-train_cnn.py"
EPOCHS = 3


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tf_config(workers, index):
    """TF_CONFIG of worker `index` in a cluster of `workers` ("host:port")."""
    return json.dumps({"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}})


def start_worker(config, workers, index, log):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_DIR), TF_CONFIG=tf_config(workers, index))
    return subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(config)], cwd=REPO_DIR, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    """(run folder, train files, the two workers' output, cluster) of one two-worker run with a
    worker SIGKILLed in epoch 2 and started again."""
    folder = tmp_path_factory.mktemp("cluster")
    files = write_split_crops(folder / "split", {"train": 3, "val": 1, "test": 1}, crops_per_video=2)["train"]
    config = train_config(folder / "c.py", folder / "split", folder / "runs", BATCH_SIZE=4, EPOCHS=EPOCHS,
                          CLUSTER_TIMEOUT_S=240)
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    run_dir = folder / "runs" / "tiny"
    logs = [folder / "worker0.log", folder / "worker1.log", folder / "worker1-again.log"]
    second = start_worker(config, workers, 1, logs[1])  # the other worker first: any order works
    time.sleep(2)
    chief = start_worker(config, workers, 0, logs[0])
    processes = [chief, second]
    try:
        # Each machine's backup: the chief's in the run folder, the other's beside it.
        backups = [run_dir / "backup", folder / "runs" / ".tiny.worker-1" / "backup"]
        deadline = time.monotonic() + 900
        while not all(epoch_end.backup_epoch(backup) for backup in backups) and chief.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(second.pid, signal.SIGKILL)  # in epoch 2; its training child dies with it
        second.wait()
        assert all(epoch_end.backup_epoch(backup) for backup in backups), logs[0].read_text()[-3000:]
        killed_in = min(epoch_end.backup_epoch(backup) for backup in backups) + 1
        processes.append(start_worker(config, workers, 1, logs[2]))
        for process in (chief, processes[2]):
            process.wait(timeout=1200)
            assert process.returncode == 0, logs[processes.index(process) if process is chief else 2].read_text()[-3000:]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    return run_dir, files, [log.read_text() for log in logs], workers, killed_in


def test_two_workers_each_decode_their_own_half(cluster_run):
    _, files, outputs, workers, _ = cluster_run
    half = len(files) // 2
    for index, output in enumerate(outputs[:2]):
        assert f"machine {index + 1} of 2: decoding {half} of the {len(files)} train crops" in output
        assert "devices: 2 machines (2 replicas)" in output
    shares = [worker_share(files, tf_config(workers, index)) for index in range(2)]
    assert len(shares[0]) == len(shares[1]) == half and not set(shares[0]) & set(shares[1])


def test_chief_writes_the_run_and_both_workers_hold_one_model(cluster_run):
    run_dir, _, outputs, _, _ = cluster_run
    for name in ("model.keras", "history.csv", "metrics.json", "predictions.csv", "MODEL_CARD.md"):
        assert (run_dir / name).is_file(), name
    digests = [output.split("trained weights: digest ")[-1].split()[0] for output in (outputs[0], outputs[2])]
    assert digests[0] == digests[1], "the workers ended with different weights"
    assert "stage 03 finished" in outputs[0] and "stage 03 finished" not in outputs[2]
    assert not (run_dir / "backup").exists()


def test_a_killed_worker_restarted_lets_the_run_finish_every_epoch_once(cluster_run):
    run_dir, _, outputs, _, killed_in = cluster_run
    assert killed_in == 2, "the worker was to be killed during epoch 2"
    epochs = [row["epoch"] for row in epoch_end.read_history(run_dir / "history.csv")]
    assert epochs == list(range(1, EPOCHS + 1))
    assert "the cluster lost a machine: restarting this worker" in outputs[0]
    assert f"Epoch {killed_in}/{EPOCHS}" in outputs[2] and "Epoch 1/" not in outputs[2]
    assert json.loads((run_dir / "metrics.json").read_text())["training"]["epochs_run"] == EPOCHS


def test_tensorboard_logs_hold_the_scalars_and_the_val_roc(cluster_run):
    check_tensorboard_logs(cluster_run[0], EPOCHS)
