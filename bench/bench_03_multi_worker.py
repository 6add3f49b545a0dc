"""Benchmark stage 03's time per epoch on one machine against two workers (TF_CONFIG) on this machine.

    .venv/bin/python bench/bench_03_multi_worker.py [--videos 20] [--input-size 64] [--epochs 3]

Writes a split of --videos train videos per class (3 crops each, the tests' portrait crops) to
/tmp/bench03mw/, then runs 03-train_cnn.py itself: once alone, then as two workers on 127.0.0.1
(WEIGHTS None, BATCH_SIZE 32, no augmentation). Reads the time of each epoch that stage 03 prints
("Epoch k/N" then "  12.3 s - loss ..."); the first epoch includes tracing the step, so the figure
reported is the mean of the later ones. Both workers share this machine's cores, so two workers
here measure the cost of the cluster (collectives over loopback), not a speed-up: on two real
machines each would have its own cores.
"""

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path("/tmp/bench03mw")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def epoch_seconds(output):
    """[seconds of epoch 1, 2, ...] from stage 03's output."""
    return [float(value.replace(",", "")) for value in re.findall(r"^  ([\d,.]+) s - loss", output, re.M)]


def run_stage03(config, name, tf_configs):
    """Run 03-train_cnn.py once per TF_CONFIG (None: one machine) at the same time; return outputs."""
    processes = []
    for tf_config in tf_configs:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
        if tf_config:
            env["TF_CONFIG"] = tf_config
        processes.append(subprocess.Popen([sys.executable, str(REPO / "03-train_cnn.py"), "--config", str(config),
                                           "--name", name], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate()[0] for process in processes]
    for process, output in zip(processes, outputs):
        if process.returncode != 0:
            sys.exit(f"stage 03 failed:\n{output[-3000:]}")
    return outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=20, help="train videos per class (3 crops each)")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    from tests.conftest import write_config
    from tests.test_03_train import write_split_crops

    shutil.rmtree(WORK, ignore_errors=True)
    counts = write_split_crops(WORK / "split", {"train": args.videos, "val": 4, "test": 2})
    config = write_config(WORK / "bench.py", SPLIT_DIR=WORK / "split", RUNS_DIR=WORK / "runs", WEIGHTS=None,
                          INPUT_SIZE=args.input_size, BATCH_SIZE=32, EPOCHS=args.epochs,
                          EARLY_STOPPING_PATIENCE=args.epochs, AUGMENT=False)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}: {len(counts['train']):,} train crops, INPUT_SIZE {args.input_size}, "
          f"{args.epochs} epochs")
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    results = {}
    for label, tf_configs in (("one machine", [None]), ("two workers", [json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}) for index in range(2)])):
        started = time.monotonic()
        seconds = epoch_seconds(run_stage03(config, label.replace(" ", "-"), tf_configs)[0])
        later = seconds[1:] or seconds
        results[label] = {"epochs_s": seconds, "mean_later_epoch_s": sum(later) / len(later),
                          "total_s": time.monotonic() - started}
        print(f"{label}: epochs {', '.join(f'{s:,.1f}' for s in seconds)} s; later epochs "
              f"{results[label]['mean_later_epoch_s']:,.1f} s each; whole run {results[label]['total_s']:,.0f} s "
              f"(load average {os.getloadavg()[0]:.1f})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
