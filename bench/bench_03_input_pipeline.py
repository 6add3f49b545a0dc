"""Benchmark stage 03's input: the original's ImageDataGenerator against our tf.data pipeline,
then training images/s end to end.

    .venv/bin/python bench/bench_03_input_pipeline.py [--crops 1024] [--epochs 3] [--train-steps 24]

Crops: the real DFDC face crops in $DFDC_SAMPLE_DIR/faces (about 100 x 120 px, as stage 01a cuts
them from 1080p frames), copied under new names up to --crops files; without DFDC_SAMPLE_DIR, crops
of the built-in sample's portraits. Both pipelines read the same folder, resize to INPUT_SIZE,
scale to [0, 1] and apply config.AUGMENTATION (the original's settings), in batches of BATCH_SIZE:

  - ImageDataGenerator.flow_from_directory (keras.src.legacy.preprocessing.image, still shipped by
    Keras 3 though no longer exported), one thread as the original's fit_generator used it:
    decodes every PNG and warps each image with scipy in every epoch.
  - ours (deepfake_detect.training.pipeline): decode and resize once into an in-memory cache, then per
    epoch shuffle, batch and one bilinear affine warp (cv2.warpAffine) per image.

Prints images/s of each (ours: first epoch including the decode, and later epochs), the ratio,
and training images/s of EfficientNet-B0 (WEIGHTS None) fed by our pipeline, after its first
(tracing) epoch. All figures come from one run of this script on one machine.
"""

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deepfake_detect import arguments, settings  # noqa: E402
from deepfake_detect.training.pipeline import batch_dataset, decode_dataset, fill_cache  # noqa: E402
from deepfake_detect.training.split_files import list_split  # noqa: E402


def write_crops(folder, count):
    """Fill folder/{fake,real}/ with `count` crops named <video>-NNN-NN.png; return what they came from."""
    import cv2

    sample = os.environ.get("DFDC_SAMPLE_DIR")
    sources = {name: sorted((Path(sample) / "faces" / name).glob("*.png")) for name in ("fake", "real")} \
        if sample else {}
    if not all(sources.get(name) for name in ("fake", "real")):
        from tests.test_03_train import write_split_crops

        generated = write_split_crops(folder / "generated", {"train": 4}, crops_per_video=4)["train"]
        sources = {name: [path for path, label in generated if path.parent.name == name]
                   for name in ("fake", "real")}
        origin = "portrait crops of the built-in sample"
    else:
        origin = f"DFDC face crops from {sample}"
    for name, paths in sources.items():
        (folder / "train" / name).mkdir(parents=True, exist_ok=True)
        for index in range(count // 2):
            source = paths[index % len(paths)]
            shutil.copyfile(source, folder / "train" / name / f"v{index // 10:04d}-{index % 10:03d}-00.png")
    sizes = [cv2.imread(str(p)).shape[:2] for paths in sources.values() for p in paths]
    mean_h = sum(s[0] for s in sizes) / len(sizes)
    mean_w = sum(s[1] for s in sizes) / len(sizes)
    return f"{origin} (mean {mean_w:.0f} x {mean_h:.0f} px)"


def bench_image_data_generator(split_dir, cfg, epochs):
    """Best images/s over `epochs` passes of the original's flow_from_directory."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(rescale=1 / 255, **cfg.AUGMENTATION).flow_from_directory(
        str(split_dir / "train"), target_size=(cfg.INPUT_SIZE, cfg.INPUT_SIZE), batch_size=cfg.BATCH_SIZE,
        class_mode="binary", shuffle=True)
    rates = []
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for index in range(len(generator)):
            x, _ = generator[index]
            seen += len(x)
        generator.on_epoch_end()
        rates.append(seen / (time.perf_counter() - start))
    return max(rates)


def bench_ours(split_dir, cfg, epochs):
    """(first epoch images/s including decode, best later epoch images/s, the dataset)."""
    files = list_split(split_dir, "train")
    start = time.perf_counter()
    decoded = decode_dataset(files, cfg.INPUT_SIZE)
    fill_cache(decoded, len(files), "decoding (once)")
    dataset = batch_dataset(decoded, len(files), cfg.BATCH_SIZE, training=True,
                                     augmentation=cfg.AUGMENTATION)
    for _ in dataset:
        pass
    first = len(files) / (time.perf_counter() - start)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        seen = sum(int(x.shape[0]) for x, _ in dataset)
        rates.append(seen / (time.perf_counter() - start))
    return first, max(rates), dataset


def bench_training(dataset, cfg, steps):
    """Training images/s of BACKBONE at INPUT_SIZE on our pipeline, after a first tracing epoch."""
    import keras

    from deepfake_detect.models.network import build_model

    model = build_model(cfg.BACKBONE, cfg.INPUT_SIZE, weights=None)
    model.compile(optimizer=keras.optimizers.Adam(cfg.LEARNING_RATE), loss="binary_crossentropy",
                  metrics=["accuracy", keras.metrics.AUC(name="auc")])
    repeated = dataset.repeat()
    model.fit(repeated, epochs=1, steps_per_epoch=2, verbose=0)  # traces the training step
    start = time.perf_counter()
    model.fit(repeated, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * cfg.BATCH_SIZE / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_config_argument(parser)
    parser.add_argument("--crops", type=int, default=1024, help="crops in the benchmark's train split")
    parser.add_argument("--epochs", type=int, default=3, help="passes per pipeline; the best is kept")
    parser.add_argument("--train-steps", type=int, default=24, help="timed training steps (0: skip)")
    args = parser.parse_args(argv)
    cfg = settings.load_config(args.config)

    folder = Path(tempfile.mkdtemp(prefix="bench03-"))
    try:
        origin = write_crops(folder, args.crops)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, load average "
              f"{os.getloadavg()[0]:.1f} at start; {args.crops:,} {origin}")
        print(f"input {cfg.INPUT_SIZE} x {cfg.INPUT_SIZE}, batch {cfg.BATCH_SIZE}, augmentation {cfg.AUGMENTATION}")
        original = bench_image_data_generator(folder, cfg, args.epochs)
        print(f"ImageDataGenerator.flow_from_directory: {original:8,.0f} images/s (best of {args.epochs} epochs)")
        first, steady, dataset = bench_ours(folder, cfg, args.epochs)
        print(f"ours, first epoch (decode + cache):     {first:8,.0f} images/s  ({first / original:.1f}x)")
        print(f"ours, later epochs (from the cache):     {steady:8,.0f} images/s  ({steady / original:.1f}x)")
        if args.train_steps:
            trained = bench_training(dataset, cfg, args.train_steps)
            print(f"training {cfg.BACKBONE} end to end:       {trained:8,.1f} images/s "
                  f"(the pipeline alone is {steady / trained:,.0f}x faster, so training never waits on it)")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
