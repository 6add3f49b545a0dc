"""Benchmark stage 04's --explain: per-face model time with Grad-CAM against without it.

    DFDC_SAMPLE_DIR=/work/shared/dfdc_sample python bench/bench_04_explain.py [--backbone EfficientNetB0] [--repeats 5]

Uses the DFDC sample's face crops ($DFDC_SAMPLE_DIR/faces, 22 crops; the built-in portraits'
crops when unset) and a freshly built backbone at 128 px (weights=None: a trained one has the
same speed). Both paths are the Scorer's own: predict_p_real (scores only) and explain_faces
(scores and heatmaps in one pass), in chunks of PREDICT_BATCH faces, traced beforehand, timed
alternately, median of --repeats. Target: explain costs at most 2x the model time.
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="EfficientNetB0")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import keras

    from deepfake_detect.inference.scoring import Scorer
    from deepfake_detect.models.predictors import PREDICT_BATCH
    from deepfake_detect.models.network import build_model
    from test_03_export import parity_crops

    crops = parity_crops()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        keras.utils.set_random_seed(0)
        build_model(args.backbone, args.input_size, weights=None).save(path)
        scorer = Scorer(path, detector=lambda images: [])
        scorer.explain_faces(crops[:1])  # builds and traces Grad-CAM
        plain, explained = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            scorer.predict_p_real(crops)
            plain.append((time.perf_counter() - started) / len(crops))
            started = time.perf_counter()
            scorer.explain_faces(crops)
            explained.append((time.perf_counter() - started) / len(crops))
    plain_ms, explained_ms = statistics.median(plain) * 1000, statistics.median(explained) * 1000
    print(f"{platform.machine()}, {os.cpu_count()} CPU cores, {args.backbone} at {args.input_size} px, "
          f"{len(crops)} crops in chunks of {PREDICT_BATCH}, median of {args.repeats}")
    print(f"  model only        {plain_ms:8.1f} ms per face")
    print(f"  with Grad-CAM     {explained_ms:8.1f} ms per face")
    print(f"  ratio             {explained_ms / plain_ms:8.2f}x   (target <= 2x)")


if __name__ == "__main__":
    main()
