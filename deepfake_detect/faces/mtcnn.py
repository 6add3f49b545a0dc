"""MTCNN face detection as the original DeepFake-Detect pipeline ran it.

The original used mtcnn 0.1. mtcnn 1.0 keeps the same three networks (PNet, RNet, ONet) and
weights but rewrote the steps around them, and finds other boxes for small, doubtful faces. So
the steps here are mtcnn 0.1.1's, run on mtcnn 1.0's networks (whose weights ship inside the
package, so this works offline). Used by stage 01a, by detection (04) and by stage 05's face
extraction; the two stages that run one detector per worker process share start_detector_worker.
"""

import os

import cv2
import numpy as np

from deepfake_detect.faces.crops import crop_faces_of_video
from deepfake_detect.faces.detector import Face, FaceDetector
from deepfake_detect.jobs.outcome import DONE
from deepfake_detect.models.devices import configure_tensorflow

# One MTCNN process per this many cores by default: TensorFlow already runs one detector on
# several threads, and each extra process pays ~3 s of TensorFlow start-up.
CORES_PER_DETECTOR = 4

# This process's detector, made once by start_detector_worker (the original made one per frame).
_detector = None


def start_detector_worker(tensorflow_threads=None):
    """Process-pool (and Ray actor) initializer: load MTCNN's three networks once for this process.

    It is a module-level function because a Ray actor imports its initializer by name
    (jobs.ray_cluster.function_spec); jobs read the detector back from this same module, with
    load_worker_detector().
    """
    global _detector
    cv2.setNumThreads(0)  # OpenCV only converts and saves here; its threads would compete with TensorFlow's
    if _detector is None:
        _detector = MtcnnFaceDetector(threads=tensorflow_threads)


def load_worker_detector():
    """This process's MtcnnFaceDetector: the one start_detector_worker loaded, else one loaded now."""
    if _detector is None:
        start_detector_worker()
    return _detector


def count_detector_workers(requested, cfg):
    """MTCNN processes to run: `requested` (--workers), else MTCNN_WORKERS, else one per
    CORES_PER_DETECTOR cores (at least one)."""
    return requested or cfg.MTCNN_WORKERS or max(1, (os.cpu_count() or 1) // CORES_PER_DETECTOR)


def count_detector_threads(workers):
    """TensorFlow threads for each of `workers` detector processes: the cores shared out, so
    they do not each start one thread per core; None (TensorFlow's own choice) for one worker."""
    return max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None


def crop_video_with_mtcnn(frames_dir, cfg):
    """Stage 01a's job: crop the faces of one video's frames into FACES_DIR/<video>/; return its Outcome.

    Frames that cannot be used are named in the Outcome's reason, one per line, so the main
    process can print them without breaking the progress bar.
    """
    problems = []
    outcome = crop_faces_of_video(frames_dir, cfg.FACES_DIR, load_worker_detector(), cfg,
                                  batch_size=cfg.MTCNN_BATCH_SIZE, on_problem=problems.append)
    if outcome.status == DONE and problems:
        outcome.reason = "\n".join(problems)
    elif problems:  # skipped or failed: the reason, and the first frame's problem as an example
        outcome.reason += f" (e.g. {problems[0]})"
    return outcome


class MtcnnFaceDetector(FaceDetector):
    """MTCNN as the original pipeline ran it, created once and fed frames in batches.

    The original used mtcnn 0.1. mtcnn 1.0 keeps the same three networks and weights but
    rewrote the steps around them (bilinear patch crops instead of INTER_AREA-resized integer
    boxes, a 0.8 instead of 0.7 last-stage threshold, another image pyramid), and finds other
    boxes for small, doubtful faces: on DFDC clip abofeumbvv, frame 8, a 57x72 crop where the
    original made 50x62. So the steps here are mtcnn 0.1.1's, on mtcnn 1.0's networks; on the
    22 frames of the two DFDC sample clips they give mtcnn 0.1.1's boxes exactly.
    (mtcnn 0.1.1 itself needs pkg_resources and runs Keras predict() per call: slow.)

    Frames of one size are detected together, one network call per pyramid scale for the
    whole batch. TensorFlow is imported only here, so stages that do not detect faces start
    fast. `threads` limits TensorFlow's CPU threads (for one of several worker processes).
    """

    def __init__(self, min_face_size=20, scale_factor=0.709, thresholds=(0.6, 0.7, 0.7), threads=None):
        configure_tensorflow(threads)
        from mtcnn.network.onet import ONet
        from mtcnn.network.pnet import PNet
        from mtcnn.network.rnet import RNet
        from mtcnn.utils.tensorflow import load_weights

        def load(network, weights):
            model = network()
            model.build()
            model.set_weights(load_weights(weights))
            return model

        self.pnet, self.rnet, self.onet = load(PNet, "pnet.lz4"), load(RNet, "rnet.lz4"), load(ONet, "onet.lz4")
        self.min_face_size, self.scale_factor, self.thresholds = min_face_size, scale_factor, thresholds

    def __call__(self, images_rgb):
        """For each RGB frame (H, W, 3 uint8), its list of Face, most confident first."""
        results = [None] * len(images_rgb)
        by_shape = {}
        for index, image in enumerate(images_rgb):
            by_shape.setdefault(image.shape, []).append(index)
        for indexes in by_shape.values():
            for index, boxes in zip(indexes, self._detect_same_size(np.stack([images_rgb[i] for i in indexes]))):
                results[index] = [_face_from_box(box) for box in boxes]
        return results

    def _detect_same_size(self, images):
        """(N, H, W, 3) uint8 -> for each image, an array of rows (x1, y1, x2, y2, confidence)."""
        height, width = images.shape[1:3]
        proposals = [np.empty((0, 9)) for _ in images]
        for scale in _pyramid_scales(height, width, self.min_face_size, self.scale_factor):
            size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
            scaled = np.stack([cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in images])
            offsets, probabilities = self.pnet(_normalize(scaled))
            for i, (offset, probability) in enumerate(zip(offsets.numpy(), probabilities.numpy()[..., 1])):
                boxes = _pnet_boxes(offset, probability, scale, self.thresholds[0])
                proposals[i] = np.vstack([proposals[i], boxes[_nms(boxes, 0.5, "union")]])
        boxes = []
        for found in proposals:
            found = found[_nms(found, 0.7, "union")]
            width_, height_ = found[:, 2] - found[:, 0], found[:, 3] - found[:, 1]
            refined = found[:, 0:4] + found[:, 5:9] * np.stack([width_, height_, width_, height_], axis=1)
            boxes.append(np.fix(_square(np.hstack([refined, found[:, 4:5]]))))
        boxes = self._refine(self.rnet, images, boxes, 24, self.thresholds[1])
        for i, found in enumerate(boxes):
            boxes[i] = np.fix(_square(found))
        return self._refine(self.onet, images, boxes, 48, self.thresholds[2])

    def _refine(self, network, images, boxes, patch_size, threshold):
        """Score and adjust every image's boxes with RNet or ONet (one call for the whole batch)."""
        patches = [_patches(image, found, patch_size) for image, found in zip(images, boxes)]
        counts = [len(found) for found in boxes]
        if not sum(counts):
            return boxes
        outputs = network(_normalize(np.concatenate(patches)))
        offsets, probabilities = outputs[0].numpy(), outputs[-1].numpy()[:, 1]
        refined, start = [], 0
        for found, count in zip(boxes, counts):
            offset, probability = offsets[start:start + count], probabilities[start:start + count]
            start += count
            keep = probability > threshold
            found = np.hstack([found[keep, 0:4], probability[keep, None]])
            offset = offset[keep]
            if network is self.rnet:
                pick = _nms(found, 0.7, "union")
                refined.append(_adjust(found[pick], offset[pick]))
            else:  # ONet: the last adjustment comes before the last suppression
                found = _adjust(found, offset)
                refined.append(found[_nms(found, 0.7, "min")])
        return refined


def _pyramid_scales(height, width, min_face_size, scale_factor):
    """mtcnn 0.1's scales: from 12/min_face_size down while the short side stays >= 12 px."""
    scales, first = [], 12 / min_face_size
    short_side = min(height, width) * first
    while short_side >= 12:
        scales.append(first * scale_factor ** len(scales))
        short_side *= scale_factor
    return scales


def _normalize(images):
    return (np.asarray(images, dtype=np.float32) - 127.5) * 0.0078125


def _pnet_boxes(offsets, probability, scale, threshold):
    """PNet's 12x12 windows (stride 2) above `threshold`, in frame pixels, as mtcnn 0.1 numbers
    them (1-based, truncated): rows (x1, y1, x2, y2, score, dx1, dy1, dx2, dy2)."""
    y, x = np.where(probability >= threshold)
    cells = np.stack([x, y], axis=1)
    corner1, corner2 = np.fix((2 * cells + 1) / scale), np.fix((2 * cells + 12) / scale)
    return np.hstack([corner1, corner2, probability[y, x][:, None], offsets[y, x]])


def _nms(boxes, threshold, method):
    """Indexes of the boxes kept by non-maximum suppression, best score first (mtcnn 0.1's)."""
    x1, y1, x2, y2, score = (boxes[:, i] for i in range(5))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, pick = np.argsort(score), []
    while order.size:
        best, rest = order[-1], order[:-1]
        pick.append(best)
        overlap_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        overlap_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = overlap_w * overlap_h
        base = np.minimum(area[best], area[rest]) if method == "min" else area[best] + area[rest] - inter
        order = rest[inter / base <= threshold]
    return np.array(pick, dtype=int)


def _square(boxes):
    """Boxes grown to squares about their centres (the longer side wins)."""
    boxes = boxes.copy()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    boxes[:, 0] += width * 0.5 - side * 0.5
    boxes[:, 1] += height * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


def _adjust(boxes, offsets):
    """Move box corners by the network's offsets, in units of the box's inclusive size."""
    boxes = boxes.copy()
    width, height = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, 0:4] += offsets * np.stack([width, height, width, height], axis=1)
    return boxes


def _patches(image, boxes, size):
    """The (size, size) crops of integer, 1-based, inclusive boxes, zero outside the frame,
    resized with INTER_AREA: (len(boxes), size, size, 3) float32, not yet normalised."""
    height, width = image.shape[:2]
    patches = np.zeros((len(boxes), size, size, 3), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes[:, 0:4].astype(int)):
        if x2 < x1 or y2 < y1:
            continue  # a degenerate box: an all-black patch, which no network calls a face
        patch = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), np.float32)
        left, top, right, bottom = max(x1, 1), max(y1, 1), min(x2, width), min(y2, height)
        if right >= left and bottom >= top:
            patch[top - y1:bottom - y1 + 1, left - x1:right - x1 + 1] = image[top - 1:bottom, left - 1:right]
        patches[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return patches


def _face_from_box(box):
    """mtcnn 0.1's answer: x, y truncated and clipped at 0; width and height to the far corner."""
    x, y = max(0, int(box[0])), max(0, int(box[1]))
    return Face(x, y, int(box[2] - x), int(box[3] - y), float(box[4]))
