"""The detector network and its input preparation, shared by training (03) and detection (04).

The model maps a face crop to P(pristine): 1 = real, 0 = deepfake, as the original's
flow_from_directory labels gave it (classes in alphabetical order: fake = 0, real = 1).
Training and detection must prepare faces identically, so both call `prepare_faces`.
"""

import os

import cv2
import numpy as np

CLASS_NAMES = ("fake", "real")  # index = label: fake 0, real 1
BACKBONES = tuple(f"EfficientNetB{i}" for i in range(8))


def resize_face(face_rgb, input_size):
    """Resize one RGB face crop (H, W, 3 uint8) to (input_size, input_size, 3) uint8.

    INTER_AREA when shrinking (most crops are larger than 128 px), INTER_LINEAR when growing.
    """
    height, width = face_rgb.shape[:2]
    shrinking = height >= input_size and width >= input_size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(face_rgb, (input_size, input_size), interpolation=interpolation)


def scale_pixels(images_uint8):
    """uint8 pixels -> float32 in [0, 1], the original's rescale=1/255."""
    return np.asarray(images_uint8, dtype=np.float32) / 255.0


def prepare_faces(faces_rgb, input_size):
    """List of RGB face crops of any size -> float32 batch (N, input_size, input_size, 3) in [0, 1]."""
    if not len(faces_rgb):
        return np.zeros((0, input_size, input_size, 3), np.float32)
    return scale_pixels(np.stack([resize_face(face, input_size) for face in faces_rgb]))


class WeightsError(RuntimeError):
    """The backbone's weights could not be had; the message says what to set instead."""


def build_model(backbone="EfficientNetB0", input_size=128, weights="imagenet", batchnorm_momentum=None):
    """EfficientNet (no top, global max pooling) -> Dense 512 ReLU -> Dropout 0.5 ->
    Dense 128 ReLU -> Dense 1 sigmoid (float32, also under mixed precision). Not compiled.

    `batchnorm_momentum`, if given, replaces the momentum (0.99) of every BatchNormalization
    layer of the backbone (see config BATCHNORM_MOMENTUM).

    `weights`: "imagenet" (downloaded once by the efficientnet package into ~/.keras/models),
    None (random), or a weights file for the backbone. Raises WeightsError when they cannot be had.
    """
    import efficientnet.tfkeras as efficientnet_models
    import keras

    if backbone not in BACKBONES:
        raise ValueError(f"BACKBONE = {backbone!r}: choose one of {', '.join(BACKBONES)}")
    if weights not in (None, "imagenet") and not os.path.isfile(weights):
        raise WeightsError(f"WEIGHTS = {str(weights)!r}: no such file; set it to a backbone weights "
                           f"file, \"imagenet\" or None")
    try:
        base = getattr(efficientnet_models, backbone)(
            weights=None if weights is None else str(weights), input_shape=(input_size, input_size, 3),
            include_top=False, pooling="max")
    except Exception as error:  # noqa: BLE001 - urllib, HDF5 and Keras raise many kinds
        if weights == "imagenet":
            raise WeightsError(
                f"could not download the ImageNet weights of {backbone} ({type(error).__name__}: {error}). "
                f"Without internet access, set WEIGHTS = None in your config (train from scratch) or "
                f"WEIGHTS = \"/path/to/{backbone.lower().replace('efficientnetb', 'efficientnet-b')}"
                f"_weights_tf_dim_ordering_tf_kernels_autoaugment_notop.h5\" copied from a machine "
                f"that has it in ~/.keras/models/") from error
        raise WeightsError(f"WEIGHTS = {str(weights)!r} could not be loaded into {backbone} at input size "
                           f"{input_size} ({type(error).__name__}: {error})") from error
    if batchnorm_momentum is not None:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = batchnorm_momentum
    return keras.Sequential([
        keras.Input((input_size, input_size, 3)),
        base,
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid", dtype="float32"),
    ], name=f"deepfake_detect_{backbone.lower()}")


def load_model(path):
    """Load a trained model.keras for prediction (not compiled). Its input size is
    `model.input_shape[1]`."""
    import efficientnet.tfkeras  # noqa: F401 - registers swish and FixedDropout for deserialising
    import keras

    return keras.models.load_model(path, compile=False)
