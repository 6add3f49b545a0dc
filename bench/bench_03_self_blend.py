"""Benchmark stage 03's input pipeline with self-blended fakes (TRAIN_FAKES = "self_blended")
against the plain one, in the same run, on the same real crops.

    .venv/bin/python bench/bench_03_self_blend.py [--config configs/sample.py] [--faces data/sample/faces]
                                                  [--crops 2048] [--epochs 3]

Crops: the real crops of a stage 01 faces folder (default: the built-in sample's, data/sample/faces,
which make demo or `python -m deepfake_detect.sample` and stages 00 and 01a write), listed again up
to --crops, with their faces.csv landmarks. Both pipelines decode them once into the in-memory
cache (not timed), then per epoch shuffle, batch and scale them, with the config's augmentation:

  - plain (TRAIN_FAKES = "dataset"): pipeline.batch_dataset, every crop once per epoch;
  - self-blended: pipeline.blended_train_batches, every crop once and its self-blended fake once
    per epoch (a fresh blend each epoch, in tf.numpy_function calls running in parallel).

Prints the images per second each delivers to training (best of --epochs epochs each, after a
warm-up epoch each, the two pipelines' epochs taken in turn so that the machine's load hits both
alike), their ratio and the blends per second, with the machine and its load.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deepfake_detect import arguments, settings  # noqa: E402
from deepfake_detect.faces.crops import find_video_folders  # noqa: E402
from deepfake_detect.models.network import CLASS_NAMES  # noqa: E402
from deepfake_detect.training import pipeline, self_blend  # noqa: E402
from deepfake_detect.training.split_files import video_of  # noqa: E402

REAL = CLASS_NAMES.index("real")


def list_crops(faces_dir, count):
    """`count` (path, real label) of the folder's crops, the list repeated as needed."""
    crops = [path for folder in find_video_folders(faces_dir) for path in sorted(folder.glob("*.png"))]
    if not crops:
        raise SystemExit(f"error: no crops in {faces_dir}: run the sample and stages 00 and 01a first (docs/sample.md)")
    return [(crops[index % len(crops)], REAL) for index in range(count)]


def images_per_second(dataset):
    """Images/s of one pass over the dataset."""
    start = time.perf_counter()
    seen = sum(int(x.shape[0]) for x, _ in dataset)
    return seen / (time.perf_counter() - start)


def compare(datasets, epochs):
    """{name: best images/s} over `epochs` passes of each dataset, taken in turn (plain, blended,
    plain, ...) so that a change in the machine's load hits both alike; one warm-up pass each first."""
    for dataset in datasets.values():
        images_per_second(dataset)
    rates = {name: [] for name in datasets}
    for _ in range(epochs):
        for name, dataset in datasets.items():
            rates[name].append(images_per_second(dataset))
    return {name: max(found) for name, found in rates.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_config_argument(parser)
    parser.add_argument("--faces", type=Path, default=Path("data/sample/faces"), help="a stage 01 faces folder")
    parser.add_argument("--crops", type=int, default=2048, help="real crops per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed passes per pipeline; the best is kept")
    args = parser.parse_args(argv)
    cfg = settings.load_config(args.config)
    cfg.FACES_DIR, cfg.TRAIN_FAKES = args.faces, "self_blended"
    files = list_crops(args.faces, args.crops)
    augmentation = cfg.AUGMENTATION if cfg.AUGMENT else None
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at start; {len(files):,} real crops of {args.faces}")
    print(f"input {cfg.INPUT_SIZE} x {cfg.INPUT_SIZE}, batch {cfg.BATCH_SIZE}, augmentation {augmentation}")

    decoded = pipeline.decode_dataset(files, cfg.INPUT_SIZE)
    pipeline.fill_cache(decoded, len(files), "decoding (once, not timed)")
    outlines, sources = self_blend.crop_outlines(files, cfg.FACES_DIR, cfg.FACE_MARGIN, cfg.INPUT_SIZE,
                                                          video_of)
    print(self_blend.describe_sources(sources))
    rates = compare({"plain": pipeline.batch_dataset(decoded, len(files), cfg.BATCH_SIZE, training=True,
                                                     augmentation=augmentation),
                     "blended": pipeline.blended_train_batches(decoded, outlines, len(files), cfg)}, args.epochs)
    plain, blended = rates["plain"], rates["blended"]
    print(f"plain pipeline:        {plain:8,.0f} images/s")
    print(f"self-blended pipeline: {blended:8,.0f} images/s (half of them fakes: {blended / 2:,.0f} blends/s), "
          f"{blended / plain:.2f}x the plain one")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
