"""Face crops from frames: the keep rule, the 30% margin, file names and the per-video index.

Shared by stage 01a (MTCNN), stage 01b (Azure) and detection, so all three crop alike. A
detector is any callable taking a list of RGB frames (H, W, 3 uint8) and returning, for each
frame, a list of Face, or a FrameDetectionError when that one frame could not be searched.
"""

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deepfake_detect.files import (completed_names, discard_partial_folder, finish_partial_folder, read_image,
                                   start_partial_folder, write_png, write_text_atomic)
from deepfake_detect.runner import ALREADY_DONE, FAILED, SKIPPED, Outcome

INDEX_FILE = "faces.csv"  # per video: every kept face, and every frame in which none was found
INDEX_COLUMNS = ("frame", "face", "file", "x", "y", "width", "height", "confidence")
# MTCNN's smallest network looks at 12x12 windows; smaller frames cannot hold a face.
MIN_FRAME_SIDE = 12


@dataclass(frozen=True)
class Face:
    """A detected face: box (x, y, width, height) in frame pixels; confidence None if unknown."""

    x: int
    y: int
    width: int
    height: int
    confidence: float | None = None


class FrameDetectionError(Exception):
    """Returned (not raised) by a detector in place of one frame's faces: that frame could not be
    searched (e.g. a cloud service rejected the image). Unlike "no face", it is not an answer."""


def keep_faces(faces, min_confidence):
    """The original's rule: one face is always kept; of 2+ faces, those above `min_confidence`.

    Faces without a confidence (Azure gives none) are always kept.
    """
    if len(faces) < 2:
        return list(faces)
    return [f for f in faces if f.confidence is None or f.confidence > min_confidence]


def expand_box(face, margin, frame_width, frame_height):
    """(x1, y1, x2, y2) of the face box grown by `margin` x its width/height on each side,
    clipped to the frame. Truncation to int follows the original's arithmetic."""
    margin_x, margin_y = face.width * margin, face.height * margin
    x1 = max(0, int(face.x - margin_x))
    y1 = max(0, int(face.y - margin_y))
    x2 = min(frame_width, int(face.x + face.width + margin_x))
    y2 = min(frame_height, int(face.y + face.height + margin_y))
    return x1, y1, x2, y2


def crop_face(frame, face, margin):
    """The crop of `frame` (H, W, C) around `face` with the margin; may be empty if off-frame."""
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = expand_box(face, margin, width, height)
    return frame[y1:y2, x1:x2]


def face_file_name(frame_file, face_number):
    """`<frame name>-NN.png`: e.g. abc-003.png, face 1 -> abc-003-01.png."""
    return f"{Path(frame_file).stem}-{face_number:02d}.png"


def index_rows(frame_file, faces):
    """Index rows for one frame's kept faces; one row with empty face columns if it has none."""
    if not faces:
        return [{"frame": Path(frame_file).name, "face": "", "file": "", "x": "", "y": "",
                 "width": "", "height": "", "confidence": ""}]
    return [{"frame": Path(frame_file).name, "face": number, "file": face_file_name(frame_file, number),
             "x": f.x, "y": f.y, "width": f.width, "height": f.height,
             "confidence": "" if f.confidence is None else f"{f.confidence:.4f}"}
            for number, f in enumerate(faces)]


def write_index(path, rows):
    """Write the per-video index CSV atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def read_index(path):
    """Rows of a per-video index as dicts (all values strings)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def find_video_folders(frames_root):
    """The finished per-video folders of stage 00's output, in name order.

    Raises FileNotFoundError with the fix when stage 00 has not been run.
    """
    frames_root = Path(frames_root)
    if not frames_root.is_dir():
        raise FileNotFoundError(f"frames folder {frames_root} does not exist: "
                                "run 00-convert_video_to_image.py first")
    return [frames_root / name for name in sorted(completed_names(frames_root))]


def list_frame_files(frames_dir):
    """The PNG frames of one video folder, in name order."""
    return sorted(p for p in Path(frames_dir).iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))


def load_frame_rgb(path):
    """Read a frame as RGB uint8 (H, W, 3), or return (None, reason) style via ValueError."""
    image = read_image(path)
    if image is None:
        raise ValueError("unreadable image (missing, empty or not a PNG/JPEG)")
    if min(image.shape[:2]) < MIN_FRAME_SIDE:
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} px, too small to hold a face")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def crop_faces_of_video(frames_dir, faces_root, detect, cfg, batch_size=8, on_problem=None):
    """Detect, keep, crop and save the faces of every frame in `frames_dir`.

    Output: `faces_root/<video>/<frame>-NN.png` plus INDEX_FILE, built in a partial folder and
    renamed when complete. `detect(list of RGB frames) -> list of list of Face`. Frames that
    cannot be read are reported through `on_problem(message)` and left out of the index.
    Returns the video's Outcome with counts frames, faces, frames_without_face, unreadable_frames.

    A frame for which `detect` returns a FrameDetectionError is reported through `on_problem`
    too, and the others go on; but then the video is left unfinished (Outcome FAILED, counts
    {"failed_frames": n}, nothing written), so that a rerun retries it instead of recording
    the frame as one without a face.
    """
    frames_dir = Path(frames_dir)
    video = frames_dir.name
    final_dir = Path(faces_root) / video
    if final_dir.is_dir():
        return Outcome(video, ALREADY_DONE)
    frame_files = list_frame_files(frames_dir)
    if not frame_files:
        return Outcome(video, SKIPPED, f"no PNG frames in {frames_dir}")
    partial = start_partial_folder(final_dir)
    counts = {"frames": 0, "faces": 0, "frames_without_face": 0, "unreadable_frames": 0}
    rows = []
    failed_frames = 0
    try:
        for start in range(0, len(frame_files), batch_size):
            batch_files, batch_images = [], []
            for path in frame_files[start:start + batch_size]:
                try:
                    batch_images.append(load_frame_rgb(path))
                    batch_files.append(path)
                except ValueError as error:
                    counts["unreadable_frames"] += 1
                    if on_problem:
                        on_problem(f"{path}: {error}")
            if not batch_images:
                continue
            for path, image, faces in zip(batch_files, batch_images, detect(batch_images)):
                if isinstance(faces, FrameDetectionError):
                    failed_frames += 1
                    if on_problem:
                        on_problem(f"{path}: {faces}")
                    continue
                kept = keep_faces(faces, cfg.MULTI_FACE_MIN_CONFIDENCE)
                saved = []
                for face in kept:
                    crop = crop_face(image, face, cfg.FACE_MARGIN)
                    if crop.size == 0:
                        continue  # a box entirely outside the frame
                    write_png(partial / face_file_name(path, len(saved)), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                    saved.append(face)
                rows += index_rows(path, saved)
                counts["frames"] += 1
                counts["faces"] += len(saved)
                counts["frames_without_face"] += not saved
        if failed_frames:
            discard_partial_folder(partial)
            return Outcome(video, FAILED, f"{failed_frames} of {len(frame_files)} frames could not be searched "
                           "for faces; video left unfinished so that a rerun retries it",
                           {"failed_frames": failed_frames})
        if counts["frames"] == 0:
            discard_partial_folder(partial)
            return Outcome(video, SKIPPED, "no frame of this video could be read", counts)
        write_index(partial / INDEX_FILE, rows)
    except BaseException:
        discard_partial_folder(partial)
        raise
    finish_partial_folder(partial, final_dir)
    return Outcome(video, counts=counts)


class MtcnnDetector:
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
        configure_tensorflow_devices(threads)
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


def configure_tensorflow_devices(threads=None):
    """Let TensorFlow grow GPU memory as needed instead of taking it all, when GPUs exist.

    The original called set_memory_growth(gpus[0]) unconditionally and crashed with IndexError
    on machines without a GPU; with none this does nothing. Quietens TensorFlow's start-up logs.
    `threads`, if given, caps TensorFlow's CPU threads, so that several worker processes do
    not each start one thread per core.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow already started in this process; its threads stay as they are
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised by an earlier call in this process
