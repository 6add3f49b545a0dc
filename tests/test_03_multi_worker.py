"""Multi-worker training reads only its share: two machines on loopback (TF_CONFIG), each decoding
half of the crops (distribute.worker_share), training one model with MultiWorkerMirroredStrategy.

    .venv/bin/pytest tests/test_03_multi_worker.py

Each worker is a fresh Python that runs training.load_split under the strategy and trains a tiny model
(logistic regression on mean colours, INPUT_SIZE 32) with tf.distribute's own loop, then prints the
crops it decoded and its weights. About 30 s.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from deepfake_detect.distribute import worker_share
from tests.test_03_train import train_config, write_split_crops

REPO_DIR = Path(__file__).resolve().parent.parent

WORKER = textwrap.dedent("""
    import json, sys
    from deepfake_detect import distribute, settings, training
    strategy, devices = distribute.choose_strategy(mixed_precision=False)  # first: it starts the cluster
    import tensorflow as tf
    cfg = settings.load_config(sys.argv[1])
    data, decoded = training.load_split(training.list_split(cfg.SPLIT_DIR, "train"), cfg, "train")
    # Logistic regression on mean colours, trained by tf.distribute itself: Keras 3's fit() cannot
    # run under MultiWorkerMirroredStrategy (keras-team/keras#20585).
    with strategy.scope():
        weights, bias = tf.Variable(tf.zeros((3, 1))), tf.Variable(tf.zeros((1,)))

    def gradients(x, y):
        with tf.GradientTape() as tape:
            logits = tf.matmul(tf.reduce_mean(x, axis=[1, 2]), weights) + bias
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.reshape(y, (-1, 1)), logits))
        return tape.gradient(loss, [weights, bias])

    @tf.function
    def train_step(batch):
        per_replica = strategy.run(gradients, args=batch)
        for variable, gradient in zip([weights, bias], per_replica):
            variable.assign_sub(0.5 * strategy.reduce("MEAN", gradient, axis=None))

    steps = 0
    for epoch in range(2):
        for batch in strategy.experimental_distribute_dataset(data):
            train_step(batch)
            steps += 1
    print("DEVICES", devices)
    print("DECODED", json.dumps([str(path) for path, _ in decoded]))
    print("STEPS", steps)
    print("WEIGHTS", json.dumps([round(float(w), 6) for w in weights.numpy().ravel()]))
""")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_each_worker_decodes_only_its_own_half_of_the_crops(tmp_path):
    split_dir = tmp_path / "split"
    files = write_split_crops(split_dir, {"train": 3, "val": 1, "test": 1}, crops_per_video=3)["train"]
    config = train_config(tmp_path / "c.py", split_dir, tmp_path / "runs", BATCH_SIZE=4)
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_DIR),
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen([sys.executable, "-c", WORKER, str(config)], cwd=REPO_DIR, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=300)
            assert worker.returncode == 0, stderr[:3000]
            outputs.append(stdout)
    finally:
        for worker in workers:
            worker.kill()

    half = len(files) // 2
    decoded = []
    for index, stdout in enumerate(outputs):
        assert f"machine {index + 1} of 2: decoding {half} of the {len(files)} train crops" in stdout
        assert "DEVICES 2 machines" in stdout
        decoded.append(json.loads(stdout.split("DECODED ", 1)[1].splitlines()[0]))
    all_paths = [str(path) for path, _ in files]
    assert len(decoded[0]) == len(decoded[1]) == half
    assert not set(decoded[0]) & set(decoded[1])                       # no crop decoded twice
    assert set(decoded[0]) | set(decoded[1]) <= set(all_paths)
    # Both ran the same steps and hold the same, trained weights: one model, trained on both halves.
    steps = [stdout.split("STEPS ", 1)[1].split()[0] for stdout in outputs]
    weights = [stdout.split("WEIGHTS ", 1)[1].splitlines()[0] for stdout in outputs]
    assert steps[0] == steps[1] != "0" and weights[0] == weights[1] != json.dumps([0.0, 0.0, 0.0])
    assert decoded[0] == [str(path) for path, _ in worker_share(files, json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": 0}}))]
