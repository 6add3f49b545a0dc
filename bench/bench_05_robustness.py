"""Benchmark stage 05's robustness sweep: its whole cost for a first model, and for a second one
that finds every perturbed face in the cache.

    DFDC_SAMPLE_DIR=/work/shared/dfdc_sample python bench/bench_05_robustness.py [--types ...] [--levels 1,2,3,4,5]

Uses the two 10-s 1920x1080 DFDC clips in $DFDC_SAMPLE_DIR/videos and two freshly built
EfficientNet-B0s at 128 px (bench_05_evaluate.build_models; weights=None: the speed is that of
trained ones, the scores are not). In one Python process, with TensorFlow, Keras, scikit-learn
and matplotlib already imported, it times:
  first model    `05-evaluate_model.py --run A --dataset dfdc=... --robustness` on an empty cache:
                 the clean evaluation, then every sweep point (7 types x 5 levels by default):
                 H.264 re-encodes for video compression, frames, perturbation, MTCNN, crops
                 written to the cache, model A's scores and metrics
  second model   the same with --run B: every face, clean and perturbed, comes from the cache
and prints both, the sweep's own seconds (from stage 05's summary) and the ratio, plus the
slowest sweep points. Run once: a full sweep of the 1080p clips takes several minutes.
"""

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_05_evaluate import build_models  # noqa: E402 - bench/ is not a package

SWEEP_LINE = re.compile(r"robustness sweep: ([\d,]+) points \(([\d,]+) videos extracted, ([\d,]+) from the cache, "
                        r"([\d,.]+) s\)")
POINT_LINE = re.compile(r", (\w+) (\d) \(([^)]*)\): .*, ([\d,.]+) s$")


def time_sweep(stage05, config, run, dataset, name, flags):
    """(wall seconds, stage 05's stdout) of one stage 05 --robustness call; exits on failure."""
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = stage05.main(["--config", str(config), "--run", run, "--dataset", dataset, "--name", name,
                             "--robustness", *flags])
    seconds = time.perf_counter() - started
    if code != 0:
        sys.exit(f"stage 05 failed ({code}):\n{out.getvalue()}")
    return seconds, out.getvalue()


def describe(title, seconds, output):
    """One line: wall time, the sweep's own time and what it extracted or reused."""
    match = SWEEP_LINE.search(output)
    if not match:
        sys.exit(f"no robustness summary in stage 05's output:\n{output}")
    points, extracted, reused, sweep_seconds = match.groups()
    print(f"{title}: {seconds:7.1f} s in all, sweep {sweep_seconds} s over {points} points "
          f"({extracted} videos extracted, {reused} from the cache)")
    return float(sweep_seconds.replace(",", ""))


def slowest_points(output, count=5):
    """The `count` slowest sweep points of a run's summary: [(seconds, "type level")]."""
    points = []
    for line in output.splitlines():
        match = POINT_LINE.search(line)
        if match:
            points.append((float(match.group(4).replace(",", "")), f"{match.group(1)} {match.group(2)}"))
    return sorted(points, reverse=True)[:count]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", default=None, help="comma-separated types (default: all seven)")
    parser.add_argument("--levels", default="1,2,3,4,5")
    args = parser.parse_args(argv)
    sample = os.environ.get("DFDC_SAMPLE_DIR")
    if not sample:
        sys.exit("set DFDC_SAMPLE_DIR to the folder holding videos/ with the two DFDC clips")
    videos = Path(sample) / "videos"
    flags = ["--robustness-levels", args.levels] + (["--robustness-types", args.types] if args.types else [])

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import importlib

    import keras  # noqa: F401 - imported before timing: neither model pays for it
    import matplotlib.pyplot  # noqa: F401
    import sklearn.metrics  # noqa: F401

    stage05 = importlib.import_module("05-evaluate_model")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        build_models(root / "runs")
        config = root / "cfg.py"
        config.write_text(f"RUNS_DIR = Path({str(root / 'runs')!r})\nEVALS_DIR = Path({str(root / 'evals')!r})\n"
                          f"OUTPUT_DIR = Path({str(root / 'data')!r})\nMTCNN_WORKERS = 1\n")
        first, first_output = time_sweep(stage05, config, "A", f"dfdc={videos}", "first", flags)
        first_sweep = describe("first model (empty cache)", first, first_output)
        second, second_output = time_sweep(stage05, config, "B", f"dfdc={videos}", "second", flags)
        second_sweep = describe("second model (cached faces)", second, second_output)
        print(f"ratio: {first / second:.1f}x in all, {first_sweep / second_sweep:.1f}x for the sweep alone")
        print("slowest points of the first model: "
              + ", ".join(f"{name} {seconds:.1f} s" for seconds, name in slowest_points(first_output)))


if __name__ == "__main__":
    main()
