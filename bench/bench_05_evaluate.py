"""Benchmark stage 05: what a second model costs on a dataset whose faces are already cached.

    DFDC_SAMPLE_DIR=/work/shared/dfdc_sample python bench/bench_05_evaluate.py [--repeats 1] [--copies 5]

Uses the two 10-s 1920x1080 DFDC clips in $DFDC_SAMPLE_DIR/videos and two freshly built
EfficientNet-B0s at 128 px (weights=None: the speed is that of trained ones, the scores are not).
In one Python process, with TensorFlow, Keras, scikit-learn and matplotlib already imported (so
neither call is charged for them), each repeat times:
  first model    `05-evaluate_model.py --run A --dataset dfdc=...` on an empty cache: frames,
                 MTCNN (loaded here), crops written to the cache, then model A's load, scores,
                 metrics, plots and report
  second model   the same with --run B: the faces come from the cache, so only model B's time
and prints the median of each and their ratio. Target: the second model >= 5x faster.

Two datasets: the two clips as they are, and the same two clips linked --copies times each under
other names (a 10-video dataset by default; MTCNN and the model do the same work on every copy).
A second model still pays a fixed cost (loading the model file and tracing it, several seconds
on 2 cores) that two clips cannot hide, so the ratio grows with the dataset's size.
"""

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))

INPUT_SIZE = 128


def build_models(runs_dir):
    """Save two untrained EfficientNet-B0s at INPUT_SIZE px as runs_dir/{A,B}/model.keras."""
    code = ("import keras, sys; from pathlib import Path; from deepfake_detect.models.network import build_model\n"
            "for seed, name in enumerate('AB'):\n"
            "    keras.utils.set_random_seed(seed); (Path(sys.argv[1]) / name).mkdir(parents=True)\n"
            f"    build_model(input_size={INPUT_SIZE}, weights=None).save(Path(sys.argv[1]) / name / 'model.keras')\n")
    subprocess.run([sys.executable, "-c", code, str(runs_dir)], cwd=REPO_DIR, check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def linked_copies(videos, folder, copies):
    """A DFDC-layout dataset in `folder`: each clip of `videos` linked `copies` times as <clip>-<n>.mp4."""
    import json

    folder.mkdir(parents=True)
    metadata = json.loads((videos / "metadata.json").read_text())
    linked = {}
    for name, entry in metadata.items():
        for number in range(copies):
            copy = f"{Path(name).stem}-{number}.mp4"
            (folder / copy).symlink_to((videos / name).resolve())
            linked[copy] = entry
    (folder / "metadata.json").write_text(json.dumps(linked))
    return folder


def time_stage(stage05, config, run, dataset, name):
    """Wall seconds of one stage 05 call (its output kept quiet), and the summary line about the cache."""
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = stage05.main(["--config", str(config), "--run", run, "--dataset", dataset, "--name", name])
    seconds = time.perf_counter() - started
    if code != 0:
        sys.exit(f"stage 05 failed ({code}):\n{out.getvalue()}")
    cache_line = next(line.strip() for line in out.getvalue().splitlines() if "from the cache" in line)
    return seconds, cache_line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--copies", type=int, default=5, help="links of each clip in the larger dataset")
    args = parser.parse_args(argv)
    sample = os.environ.get("DFDC_SAMPLE_DIR")
    if not sample:
        sys.exit("set DFDC_SAMPLE_DIR to the folder holding videos/ with the two DFDC clips")
    videos = Path(sample) / "videos"

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import importlib

    import keras  # noqa: F401 - imported before timing: neither model pays for it
    import matplotlib.pyplot  # noqa: F401
    import sklearn.metrics  # noqa: F401

    from deepfake_detect.faces import mtcnn

    stage05 = importlib.import_module("05-evaluate_model")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        build_models(root / "runs")
        datasets = [("the 2 clips", videos), (f"{args.copies} copies of each clip",
                                               linked_copies(videos, root / "copies", args.copies))]
        for title, dataset in datasets:
            firsts, seconds = [], []
            for repeat in range(args.repeats):
                cache = root / f"data{repeat}"
                config = root / f"cfg{repeat}.py"
                config.write_text(f"RUNS_DIR = Path({str(root / 'runs')!r})\nEVALS_DIR = Path({str(root / 'evals')!r})\n"
                                  f"OUTPUT_DIR = Path({str(cache)!r})\nMTCNN_WORKERS = 1\n")
                mtcnn._detector = None  # every first model loads MTCNN, as a new process would
                first, first_line = time_stage(stage05, config, "A", f"dfdc={dataset}", f"first{repeat}")
                second, second_line = time_stage(stage05, config, "B", f"dfdc={dataset}", f"second{repeat}")
                print(f"{title}, repeat {repeat + 1}: first model {first:6.2f} s ({first_line}); "
                      f"second model {second:6.2f} s ({second_line}); ratio {first / second:.1f}x")
                firsts.append(first)
                seconds.append(second)
                shutil.rmtree(cache)
            first, second = statistics.median(firsts), statistics.median(seconds)
            print(f"{title}, median of {args.repeats}: first model {first:.2f} s, second model {second:.2f} s: "
                  f"the second is {first / second:.1f}x faster (target >= 5x)")


if __name__ == "__main__":
    main()
