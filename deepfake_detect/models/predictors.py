"""Predictors: P(real) for a batch of face crops from a .keras model, a SavedModel folder or a
.tflite file, behind one interface (Predictor; load_predictor picks the class), fed in fixed-size
chunks (predict_p_real). TFLite runs with LiteRT's interpreter (the ai-edge-litert package) when
it is installed, else with TensorFlow's own tf.lite.Interpreter (deprecated, still in TF 2.21).
"""

import os
from pathlib import Path

import numpy as np

from deepfake_detect.models.devices import configure_tensorflow
from deepfake_detect.models.network import load_model, prepare_faces

# Faces go through the model in chunks of this fixed size, the last one padded: a new batch
# shape makes TensorFlow retrace the model (about 1 s on a 2-core CPU), a fixed one never does.
PREDICT_BATCH = 16


class ModelError(RuntimeError):
    """No usable model: the message names the path and what to do."""


class ExportError(RuntimeError):
    """An export cannot be written or read; the message says why."""


class Predictor:
    """The predictor interface: `input_size` (S of the S x S RGB input), `keras_model` (the Keras
    model for Grad-CAM, None for exports) and predict(float32 batch (N, S, S, 3) in [0, 1]) ->
    P(real) array (N,). KerasPredictor, SavedModelPredictor and TFLitePredictor implement it."""

    keras_model = None
    input_size = None

    def predict(self, batch):
        raise NotImplementedError


def is_exported(path):
    """True for a .tflite file or a SavedModel folder."""
    path = Path(path)
    return (path.is_file() and path.suffix == ".tflite") or (path.is_dir() and (path / "saved_model.pb").is_file())


def tflite_interpreter(model_path):
    """LiteRT's Interpreter (ai-edge-litert) when installed, else TensorFlow's tf.lite one."""
    threads = os.cpu_count() or 1
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(model_path), num_threads=threads)


class TFLitePredictor(Predictor):
    """P(real) from a .tflite export. Not thread-safe (Scorer's callers hold its lock)."""

    def __init__(self, path):
        self.path = Path(path)
        self.interpreter = tflite_interpreter(path)
        details = self.interpreter.get_input_details()[0]
        shape = details["shape"]
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
            raise ExportError(f"{path}: expected square RGB face input (N, S, S, 3), found {list(shape)}")
        self.input_size = int(shape[1])
        self._input = details["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._batch = None

    def predict(self, batch):
        batch = np.ascontiguousarray(batch, np.float32)
        if self._batch != len(batch):
            self.interpreter.resize_tensor_input(self._input, list(batch.shape))
            self.interpreter.allocate_tensors()
            self._batch = len(batch)
        self.interpreter.set_tensor(self._input, batch)
        self.interpreter.invoke()
        return np.asarray(self.interpreter.get_tensor(self._output)).reshape(-1)


class SavedModelPredictor(Predictor):
    """P(real) from a SavedModel folder written by Keras' model.export (signature "serve")."""

    def __init__(self, path):
        import tensorflow as tf

        self.path = Path(path)
        self.model = tf.saved_model.load(str(path))
        if not hasattr(self.model, "serve"):
            raise ExportError(f"{path}: no 'serve' endpoint (export it with 03-train_cnn.py --export)")
        shape = self.model.serve.input_signature[0].shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3 or not shape[1]:
            raise ExportError(f"{path}: expected square RGB face input (None, S, S, 3), found {shape}")
        self.input_size = int(shape[1])

    def predict(self, batch):
        return np.asarray(self.model.serve(np.asarray(batch, np.float32))).reshape(-1)


def load_exported(path):
    """The predictor for an exported model (.tflite file or SavedModel folder)."""
    path = Path(path)
    if path.suffix == ".tflite":
        return TFLitePredictor(path)
    return SavedModelPredictor(path)


def load_checked_model(path):
    """Load a stage 03 model (model.load_model) and check its input shape. Raises ModelError."""
    configure_tensorflow()
    try:
        model = load_model(path)
    except Exception as error:  # noqa: BLE001 - Keras raises many types for a bad file
        raise ModelError(f"{path}: cannot load the model ({type(error).__name__}: {error})") from None
    shape = model.input_shape
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3 or not shape[1]:
        raise ModelError(f"{path}: expected square RGB face input (None, N, N, 3), found {shape}")
    return model


class KerasPredictor(Predictor):
    """P(real) from a stage 03 model.keras."""

    def __init__(self, path):
        self.keras_model = load_checked_model(path)
        self.input_size = int(self.keras_model.input_shape[1])

    def predict(self, batch):
        return np.asarray(self.keras_model.predict_on_batch(batch)).reshape(-1)


def load_predictor(path):
    """The predictor for `path`: a .keras model, a .tflite file or a SavedModel folder, each
    with `input_size` and `predict(float32 batch) -> P(real) array`. Raises ModelError."""
    if not is_exported(path):
        return KerasPredictor(path)
    configure_tensorflow()
    try:
        return load_exported(path)
    except Exception as error:  # noqa: BLE001 - TensorFlow and LiteRT raise many types
        raise ModelError(f"{path}: cannot load the exported model ({type(error).__name__}: {error})") from None


def predict_p_real(predictor, crops_rgb, input_size):
    """The model's raw P(real) for each RGB face crop, as a float list; a few at a time in
    fixed-size chunks (PREDICT_BATCH), so the model is traced once. `predictor` is one of
    load_predictor's (Keras, SavedModel or TFLite)."""
    batch = prepare_faces(crops_rgb, input_size)
    padded = np.zeros((PREDICT_BATCH, input_size, input_size, 3), np.float32)
    scores = []
    for start in range(0, max(len(batch), 1), PREDICT_BATCH):
        chunk = batch[start:start + PREDICT_BATCH]
        padded[:len(chunk)] = chunk
        output = predictor.predict(padded)
        scores += [float(p) for p in output[:len(chunk)]]
    return scores
