"""Ship a trained model without this repository: export a run's model.keras as a TensorFlow
SavedModel and as TFLite models (float32, and int8 with dynamic-range quantisation), each with
a sidecar JSON saying what goes in and what comes out; and read those exports back for stage 04.

    python 03-train_cnn.py --export RUN      ->  RUNS_DIR/RUN/export/
        saved_model/           Keras' model.export(): signature "serve", float32 (N, S, S, 3) -> (N, 1)
        saved_model.json       the sidecar of saved_model/
        model_float32.tflite   + model_float32.json
        model_int8.tflite      + model_int8.json   (weights int8, activations float: ~4x smaller)
        calibration.json       a copy of the run's temperature (stage 03), when it has one

Every export takes what model.keras takes: RGB face crops resized to S x S (the sidecar's
input_size) and scaled to [0, 1] float32, and answers P(pristine): 1 = real, 0 = fake.

Stage 04 scores with any of them (`--run RUN/export/model_float32.tflite`, `--run
RUN/export/saved_model`) through models/predictors.py, one interface for .keras, SavedModel and TFLite.
"""

import json
import shutil
from pathlib import Path

from deepfake_detect.training.calibration import CALIBRATION_FILE
from deepfake_detect.files import finish_partial_folder, start_partial_folder, write_text_atomic
from deepfake_detect.jobs.console import Timer
from deepfake_detect.models.predictors import ExportError

EXPORT_DIR = "export"               # inside the run folder
SAVED_MODEL = "saved_model"
TFLITE_FLOAT32 = "model_float32.tflite"
TFLITE_INT8 = "model_int8.tflite"
SCORE_MEANING = "P(pristine): the probability that the face is real; 1 = real, 0 = deepfake. P(fake) = 1 - output."


def sidecar_path(artefact):
    """`x/model_int8.tflite` -> `x/model_int8.json`; `x/saved_model` -> `x/saved_model.json`."""
    artefact = Path(artefact)
    return artefact.with_name(artefact.stem + ".json")


def sidecar(model, fmt, quantization, source, source_sha256, threshold):
    """The sidecar JSON of one exported artefact."""
    size = int(model.input_shape[1])
    return {
        "format": fmt,
        "quantization": quantization,
        "input": {"shape": [None, size, size, 3], "dtype": "float32", "input_size": size,
                  "colour_order": "RGB",
                  "scaling": "pixel / 255, so values are in [0, 1] (no mean or std normalisation)",
                  "preparation": "crop the face with a 30% margin, resize to input_size x input_size "
                                 "(INTER_AREA when shrinking, INTER_LINEAR when growing)"},
        "output": {"shape": [None, 1], "dtype": "float32", "meaning": SCORE_MEANING},
        "threshold": threshold,
        "source_model": str(source), "source_sha256": source_sha256,
        "model_name": model.name,
    }


def tflite_bytes(saved_model_dir, int8):
    """A TFLite flatbuffer converted from a SavedModel; int8: dynamic-range quantisation."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # weights to int8, activations stay float
    return converter.convert()


def export_model(model_path, out_dir, threshold):
    """Write the SavedModel, both TFLite models and their sidecars to `out_dir` (built in a
    hidden partial folder and renamed at the end). Returns {artefact name: path}."""
    from deepfake_detect.models.devices import configure_tensorflow
    from deepfake_detect.files import sha256_of
    from deepfake_detect.models.network import load_model

    configure_tensorflow()
    model_path, out_dir = Path(model_path), Path(out_dir)
    model = load_model(model_path)
    digest = sha256_of(model_path)
    partial = start_partial_folder(out_dir)
    try:
        model.export(str(partial / SAVED_MODEL), format="tf_saved_model", verbose=False)
        write_text_atomic(sidecar_path(partial / SAVED_MODEL), json.dumps(
            sidecar(model, "tf_saved_model (signature serve)", "none", model_path, digest, threshold), indent=2) + "\n")
        for name, int8 in ((TFLITE_FLOAT32, False), (TFLITE_INT8, True)):
            (partial / name).write_bytes(tflite_bytes(partial / SAVED_MODEL, int8))
            quantization = "dynamic-range int8 weights, float32 activations" if int8 else "none (float32)"
            write_text_atomic(sidecar_path(partial / name), json.dumps(
                sidecar(model, "tflite", quantization, model_path, digest, threshold), indent=2) + "\n")
        # The run's temperature travels with the exports: stage 04 looks for calibration.json
        # beside whatever model it loads, so exported scores are calibrated like model.keras's.
        calibration = model_path.parent / CALIBRATION_FILE
        if calibration.is_file():
            write_text_atomic(partial / CALIBRATION_FILE, calibration.read_text(encoding="utf-8"))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if not finish_partial_folder(partial, out_dir):
        raise ExportError(f"{out_dir} was written by another run meanwhile")
    return {name: out_dir / name for name in (SAVED_MODEL, TFLITE_FLOAT32, TFLITE_INT8)}


def prepare_export_dir(runs_dir, run, overwrite):
    """(model.keras, export folder) for --export RUN, RUN being a run folder or a run name in
    RUNS_DIR. Raises ExportError when it holds no model.keras, or already has an export and
    `overwrite` is false; with `overwrite`, the old export is deleted."""
    run_dir = Path(run) if (Path(run) / "model.keras").is_file() else Path(runs_dir) / run
    model_path, out_dir = run_dir / "model.keras", run_dir / EXPORT_DIR
    if not model_path.is_file():
        raise ExportError(f"--export {run}: no model.keras in {run_dir}")
    if out_dir.exists():
        if not overwrite:
            raise ExportError(f"{out_dir} exists: add --overwrite to replace it")
        shutil.rmtree(out_dir)
    return model_path, out_dir


def export_run(model_path, out_dir, threshold):
    """--export RUN: write the exports (export_model) and print each one's size and how to
    score with them."""
    timer = Timer()
    print(f"exporting {model_path} to {out_dir}")
    written = export_model(model_path, out_dir, threshold)
    print(f"stage 03 export finished in {timer.seconds:,.1f} s:")
    for name, path in written.items():
        size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
        print(f"  {name:<22} {size / 1e6:8.2f} MB   + {sidecar_path(path).name}")
    print(f"  score with: python 04-detect_deepfakes.py INPUTS --run {written[TFLITE_FLOAT32]}")
