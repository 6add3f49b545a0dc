"""Benchmark `03-train_cnn.py --export`: file sizes, per-face CPU latency and the difference of
each exported model's P(real) from model.keras.

    DFDC_SAMPLE_DIR=/work/shared/dfdc_sample python bench/bench_03_export.py [--input-size 128] [--repeats 5]

Builds EfficientNet-B0 at --input-size (weights=None, fixed seed) with its last layer rescaled
so its scores spread over the crops (tests/test_03_export.spread_model: an untrained network
answers 0.5000 for every face), exports it through the stage 03 command, then scores the DFDC
sample's 22 face crops ($DFDC_SAMPLE_DIR/faces; the built-in portraits' crops when unset) with
model.keras, the SavedModel, and the float32 and int8 TFLite models: max |delta P(real)|
against model.keras, and the median per-face time over --repeats (one face at a time, and in
batches of PREDICT_BATCH as stage 04 sends them). Random weights quantise differently from
trained ones, so the int8 difference says little about a trained model's; rerun on a real run.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
sys.path.insert(0, str(REPO_DIR / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def per_face_seconds(predictor, batch, size, repeats):
    """Median seconds per face of predictor.predict over `batch`, `size` faces per call (padded)."""
    import numpy as np

    padded = np.zeros((size, *batch.shape[1:]), np.float32)
    predictor.predict(padded)  # warm-up (and TFLite's tensor allocation)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            padded[:len(chunk)] = chunk
            predictor.predict(padded)
        times.append((time.perf_counter() - started) / len(batch))
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import importlib

    import keras
    import numpy as np

    from deepfake_detect.training import export
    from deepfake_detect.models.predictors import load_predictor, PREDICT_BATCH
    from deepfake_detect.models.network import build_model, prepare_faces
    from test_03_export import parity_crops, spread_model

    stage03 = importlib.import_module("03-train_cnn")
    crops = parity_crops()
    batch = prepare_faces(crops, args.input_size)
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "runs" / "bench"
        run.mkdir(parents=True)
        keras.utils.set_random_seed(0)
        spread_model(build_model(input_size=args.input_size, weights=None), batch).save(run / "model.keras")
        (Path(folder) / "config.py").write_text(f"RUNS_DIR = {str(Path(folder) / 'runs')!r}\n")
        started = time.perf_counter()
        assert stage03.main(["--config", str(Path(folder) / "config.py"), "--export", "bench"]) == 0
        export_seconds = time.perf_counter() - started
        out = run / export.EXPORT_DIR
        artefacts = {"model.keras": run / "model.keras", "SavedModel": out / export.SAVED_MODEL,
                     "TFLite float32": out / export.TFLITE_FLOAT32, "TFLite int8": out / export.TFLITE_INT8}
        reference = None
        rows = []
        for name, path in artefacts.items():
            predictor = load_predictor(path)
            scores = predictor.predict(batch)
            reference = scores if reference is None else reference
            size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
            rows.append((name, size / 1e6, float(np.max(np.abs(scores - reference))),
                         per_face_seconds(predictor, batch, 1, args.repeats) * 1000,
                         per_face_seconds(predictor, batch, PREDICT_BATCH, args.repeats) * 1000))
    print(f"{platform.machine()}, {os.cpu_count()} CPU cores, EfficientNet-B0 at {args.input_size} px, "
          f"{len(crops)} crops, median of {args.repeats}; export took {export_seconds:.0f} s")
    print(f"  {'model':<16}{'size MB':>9}{'max |dP(real)|':>16}{'ms/face (1)':>13}{'ms/face (16)':>14}")
    for name, size, delta, single, batched in rows:
        print(f"  {name:<16}{size:>9.2f}{delta:>16.2e}{single:>13.1f}{batched:>14.1f}")
    print(f"  P(real) of model.keras over the crops: {reference.min():.3f} .. {reference.max():.3f}")


if __name__ == "__main__":
    main()
