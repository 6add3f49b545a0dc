"""Grad-CAM heatmaps for stage 04 (`--explain`, and the web page): where in a face crop the
model's evidence for P(fake) lies.

Grad-CAM (Selvaraju et al., 2017): take the activations A_k of the backbone's last
convolutional block for a face, the gradient of the score (here P(fake) = 1 - P(real)) with
respect to them, average that gradient over each channel to get a weight w_k, and keep
ReLU(sum_k w_k A_k): the regions whose features push the face towards "fake". The map is as
coarse as that block (the input / 32: 4x4 cells for a 128-px model) and is stretched over the
crop the model saw.

The last convolutional block is found by structure, not by name: inside the backbone (the
Sequential model's nested model, as model.build_model makes it for EfficientNetB0..B7), the
last layer with a 4-D output before the global pooling. One pass gives both the scores and the
heatmaps: the backbone runs forward once up to that block, and only the small head (pooling,
the Dense layers) is differentiated, so explaining costs little more than scoring.
"""

import cv2
import numpy as np

OVERLAY_ALPHA = 0.45  # weight of the heatmap colours in an overlay


class ExplainError(RuntimeError):
    """The model has no structure Grad-CAM can use (no nested backbone with 4-D layers)."""


def find_last_conv(model):
    """(backbone, index): the last layer of `backbone` (a nested model of `model`, else `model`
    itself) with a 4-D output; every layer after it is 2-D (the global pooling, the head).
    Squeeze-and-excitation blocks pool to 2-D inside the backbone too, hence the last such
    layer, not the first before a 2-D one. Raises ExplainError when there is none."""
    nested = [layer for layer in model.layers if getattr(layer, "layers", None)]
    for backbone in nested + [model]:
        four_d = [index for index, layer in enumerate(backbone.layers)
                  if len(layer.output.shape) == 4 and type(layer).__name__ != "InputLayer"]
        if four_d and (backbone is not model or four_d[-1] < len(backbone.layers) - 1):
            return backbone, four_d[-1]
    raise ExplainError(f"{model.name}: no convolutional layer (4-D output) before a global pooling")


def head_layers(model, backbone, index):
    """The layers after backbone.layers[index], in order: the rest of the backbone (its
    pooling) and, when the backbone is nested, the model's layers after it."""
    tail = list(backbone.layers[index + 1:])
    if backbone is not model:
        tail += model.layers[model.layers.index(backbone) + 1:]
    return tail


class GradCam:
    """P(real) and a Grad-CAM heatmap for P(fake) per face, in one pass, from a Keras model.

    `explain(batch)` takes a float32 batch (N, S, S, 3) prepared as for scoring and returns
    (p_real (N,), heatmaps (N, h, w) in [0, 1], each scaled to its own maximum; an all-zero
    map means no region pushes that face towards fake).
    """

    def __init__(self, model, batch_size=16):
        import keras
        import tensorflow as tf

        backbone, index = find_last_conv(model)
        self.layer_name = backbone.layers[index].name
        self.batch_size = batch_size
        self.input_size = int(model.input_shape[1])
        features = keras.Model(backbone.inputs, backbone.layers[index].output)
        head = head_layers(model, backbone, index)

        @tf.function(reduce_retracing=True)
        def run(images):
            maps = tf.cast(features(images, training=False), tf.float32)
            with tf.GradientTape() as tape:
                tape.watch(maps)
                output = maps
                for layer in head:
                    output = layer(output, training=False)
                p_real = tf.reshape(tf.cast(output, tf.float32), [-1])
                p_fake = 1.0 - p_real
            # Each face's P(fake) depends on its own maps only, so one gradient of the sum serves all.
            gradients = tape.gradient(p_fake, maps)
            weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))
            peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
            return p_real, tf.math.divide_no_nan(cam, peak)

        self._run = run
        run(np.zeros((batch_size, self.input_size, self.input_size, 3), np.float32))  # trace now, once

    def explain(self, batch):
        """(p_real float list, list of heatmaps) for a prepared float32 batch, in fixed-size
        chunks (the last one padded) so the function is traced once."""
        size = self.input_size
        padded = np.zeros((self.batch_size, size, size, 3), np.float32)
        scores, heatmaps = [], []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start:start + self.batch_size]
            padded[:len(chunk)] = chunk
            p_real, cams = self._run(padded)
            scores += [float(p) for p in p_real.numpy()[:len(chunk)]]
            heatmaps += list(cams.numpy()[:len(chunk)])
        return scores, heatmaps


def overlay_heatmap(image_rgb, heatmap, alpha=OVERLAY_ALPHA):
    """`image_rgb` (H, W, 3 uint8) with `heatmap` (h, w in [0, 1]) stretched over it in the
    JET colours (blue: no evidence for fake, red: strongest)."""
    height, width = image_rgb.shape[:2]
    stretched = cv2.resize(np.asarray(heatmap, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(np.uint8(np.clip(stretched, 0, 1) * 255), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image_rgb, 1 - alpha, colours, alpha, 0)


def heatmap_peak(heatmap):
    """(x, y) of the hottest cell's centre as fractions of the crop's width and height."""
    heatmap = np.asarray(heatmap)
    row, column = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return (column + 0.5) / heatmap.shape[1], (row + 0.5) / heatmap.shape[0]


def paint_heatmaps(frame_bgr, faces, margin):
    """A copy of the frame with each face's heatmap overlaid on its crop region (the box grown
    by `margin`, as the crop was cut). Faces without a heatmap are left as they are."""
    from deepfake_detect.faces.crops import expand_box
    from deepfake_detect.faces.detector import Face

    canvas = frame_bgr.copy()
    height, width = canvas.shape[:2]
    for face in faces:
        if getattr(face, "heatmap", None) is None:
            continue
        x1, y1, x2, y2 = expand_box(Face(*face.box), margin, width, height)
        if x2 <= x1 or y2 <= y1:
            continue
        region = cv2.cvtColor(canvas[y1:y2, x1:x2], cv2.COLOR_BGR2RGB)
        canvas[y1:y2, x1:x2] = cv2.cvtColor(overlay_heatmap(region, face.heatmap), cv2.COLOR_RGB2BGR)
    return canvas
