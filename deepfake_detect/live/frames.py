"""One live frame's faces: found by the face detector or followed from the last boxes, cropped and
scored exactly as stage 04 does for a file (RESIZE_RULES, keep_faces, FACE_MARGIN, the model's
input scaling, the run's calibration).

Following: between two detections (LIVE_DETECT_EVERY) each face's box is moved and scaled by the
optical flow of the corners inside it (follow_box), so the crop stays on the face as the
detector would have placed it. MTCNN costs about eight times what the model does for one face,
so this is what lets a 2-core CPU score most frames; the next detection corrects any drift.
Measured on the sample's swapped takes, crops at stale, unmoved boxes made the demo's 64-px model
flicker between real and fake (P(fake) 0.14-0.99 within a swapped second); followed, they read
as the detector's crops do.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from deepfake_detect.training.calibration import apply_temperature
from deepfake_detect.faces.crops import MIN_FRAME_SIDE, crop_face, keep_faces
from deepfake_detect.faces.detector import Face
from deepfake_detect.media.frames import resize_factor, resize_frame
from deepfake_detect.models.network import prepare_faces

# Live frames hold one or a few faces: a fixed batch this small is traced once and costs a
# quarter of stage 04's PREDICT_BATCH (16) for a single face.
LIVE_PREDICT_BATCH = 4
FOLLOW_CORNERS = 60        # corners followed per face between two detections
FOLLOW_MIN_CORNERS = 6     # fewer found or followed: the box stays where it was


@dataclass
class LiveFace:
    """A face of one live frame: its box (x, y, width, height) in the frame as given, P(real)
    (calibrated when the run has a temperature and CALIBRATE), the network's own P(real), and
    whether the detector found it in this frame (False: followed from the last boxes)."""

    box: tuple
    p_real: float
    p_real_raw: float
    detected: bool = True
    person: int | None = None

    @property
    def p_fake(self):
        return 1.0 - self.p_real


def predict_live(predictor, crops_rgb, input_size):
    """Raw P(real) per RGB crop, in fixed chunks of LIVE_PREDICT_BATCH (padded)."""
    batch = prepare_faces(crops_rgb, input_size)
    padded = np.zeros((LIVE_PREDICT_BATCH, input_size, input_size, 3), np.float32)
    scores = []
    for start in range(0, len(batch), LIVE_PREDICT_BATCH):
        chunk = batch[start:start + LIVE_PREDICT_BATCH]
        padded[:] = 0
        padded[:len(chunk)] = chunk
        scores += [float(p) for p in np.asarray(predictor.predict(padded)).reshape(-1)[:len(chunk)]]
    return scores


def warm_up(scorer):
    """Trace the model at the live batch shape and run the detector once now, so that the first
    frames are not a second late (their first calls build TensorFlow's functions)."""
    predict_live(scorer.predictor, [np.zeros((scorer.input_size, scorer.input_size, 3), np.uint8)],
                 scorer.input_size)
    scorer.detector([np.zeros((360, 640, 3), np.uint8)])


def grey(frame_bgr):
    """The frame in grey levels, what follow_boxes compares."""
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)


def follow_box(before, after, box):
    """`box` (x, y, width, height) moved and scaled as the face inside it moved from grey frame
    `before` to `after`: corners found in the box are followed by pyramidal Lucas-Kanade optical
    flow, and the box takes their median shift and the change of their spread. Unchanged when too
    few corners can be followed (a blank or blurred face)."""
    x, y, width, height = (int(v) for v in box)
    x0, y0 = max(0, x), max(0, y)
    patch = before[y0:y + height, x0:x + width]
    if patch.size == 0:
        return box
    corners = cv2.goodFeaturesToTrack(patch, maxCorners=FOLLOW_CORNERS, qualityLevel=0.01, minDistance=4)
    if corners is None or len(corners) < FOLLOW_MIN_CORNERS:
        return box
    corners = (corners.reshape(-1, 2) + (x0, y0)).astype(np.float32)
    moved, found, _ = cv2.calcOpticalFlowPyrLK(before, after, corners, None, winSize=(21, 21), maxLevel=3)
    kept = found.reshape(-1).astype(bool)
    if kept.sum() < FOLLOW_MIN_CORNERS:
        return box
    old, new = corners[kept], moved.reshape(-1, 2)[kept]
    shift = np.median(new - old, axis=0)
    spread_old = np.median(np.linalg.norm(old - old.mean(axis=0), axis=1))
    spread_new = np.median(np.linalg.norm(new - new.mean(axis=0), axis=1))
    scale = float(np.clip(spread_new / spread_old, 0.8, 1.25)) if spread_old > 1 else 1.0
    centre_x, centre_y = x + width / 2 + shift[0], y + height / 2 + shift[1]
    width, height = width * scale, height * scale
    return (round(centre_x - width / 2), round(centre_y - height / 2), round(width), round(height))


def follow_boxes(before, after, boxes):
    """Each of `boxes` followed from grey frame `before` to `after` (follow_box)."""
    return [follow_box(before, after, box) for box in boxes]


def find_boxes(scorer, frame_bgr, cfg):
    """The boxes (x, y, width, height), in the frame's own coordinates, of the faces
    `scorer.detector` finds and keep_faces keeps in the frame resized by RESIZE_RULES."""
    factor = resize_factor(frame_bgr.shape[1], cfg.RESIZE_RULES)
    resized = resize_frame(frame_bgr, cfg.RESIZE_RULES)
    if min(resized.shape[:2]) < MIN_FRAME_SIDE:
        return []
    faces = keep_faces(scorer.detector([cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)])[0], cfg.MULTI_FACE_MIN_CONFIDENCE)
    return [tuple(round(v / factor) for v in (face.x, face.y, face.width, face.height)) for face in faces]


def score_boxes(scorer, frame_bgr, cfg, boxes, detected=False):
    """[LiveFace] of the faces at `boxes` (frame coordinates) of one BGR frame, cropped from the
    frame resized by RESIZE_RULES, as stage 04 crops a video's frames; `detected`: the boxes were
    found in this very frame."""
    factor = resize_factor(frame_bgr.shape[1], cfg.RESIZE_RULES)
    rgb = cv2.cvtColor(resize_frame(frame_bgr, cfg.RESIZE_RULES), cv2.COLOR_BGR2RGB)
    kept, crops = [], []
    for box in boxes:
        crop = crop_face(rgb, Face(*(round(v * factor) for v in box)), cfg.FACE_MARGIN)
        if crop.size:
            kept.append(tuple(int(v) for v in box))
            crops.append(crop)
    if not crops:
        return []
    raw = predict_live(scorer.predictor, crops, scorer.input_size)
    calibrated = apply_temperature(raw, scorer.temperature if cfg.CALIBRATE else None)
    return [LiveFace(box, float(p_real), p_raw, detected) for box, p_raw, p_real in zip(kept, raw, calibrated)]


def score_frame(scorer, frame_bgr, cfg, boxes=None):
    """[LiveFace] of one BGR frame: its faces found by the detector when `boxes` is None, else
    those at `boxes` (the last detection's, followed)."""
    if boxes is None:
        return score_boxes(scorer, frame_bgr, cfg, find_boxes(scorer, frame_bgr, cfg), detected=True)
    return score_boxes(scorer, frame_bgr, cfg, boxes)


LIVE_FRAME = "live-frame"  # the kind of a web worker task holding one JPEG frame of the page's live view


def frame_task(jpeg):
    """A web worker task (web_workers.py) scoring one JPEG frame in memory: never written to disk."""
    return {"kind": LIVE_FRAME, "name": "a live frame", "jpeg": bytes(jpeg)}


def score_frame_task(scorer, task, cfg):
    """The answer to a frame_task: {"faces": [{"box", "p_real", "p_real_raw", "detected"}]}, or
    None when the bytes do not decode as an image."""
    image = cv2.imdecode(np.frombuffer(task["jpeg"], np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    faces = score_frame(scorer, image, cfg)
    return {"faces": [{"box": list(face.box), "p_real": face.p_real, "p_real_raw": face.p_real_raw,
                       "detected": face.detected} for face in faces],
            "width": int(image.shape[1]), "height": int(image.shape[0])}
