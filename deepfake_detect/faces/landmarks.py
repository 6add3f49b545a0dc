"""Facial landmarks: found once in stage 01 (dlib's predictors, else MTCNN's five keypoints), kept in
faces.csv in crop coordinates, and turned into the face outline that self-blending masks (issue 25).

A landmark set is (model, points): `model` names where the points come from ("dlib68", "dlib5" or
"mtcnn5"), `points` is an (N, 2) float array of x, y. The outline of a face is the
polygon whose convex hull self_blend fills: the 68 points themselves, or for five points an ellipse
from forehead to chin built around the eyes (five points alone span only the inner face).
"""

import numpy as np

# LANDMARK_MODEL values -> the face_recognition_models function giving the predictor's file.
# dlib's 68-point model was trained on iBUG 300-W, whose licence excludes commercial use; its
# 5-point model (dlib's own annotations) is free for any use (CC0). docs/01-faces.md says so.
DLIB_MODELS = {"dlib68": "pose_predictor_model_location", "dlib5": "pose_predictor_five_point_model_location"}
LANDMARK_MODELS = (*DLIB_MODELS, None)
# faces.csv columns that hold a face's landmarks (older faces.csv files have neither).
LANDMARK_COLUMNS = ("landmark_model", "landmarks")
# Five-point models: (indexes of the first eye's points, of the second eye's) per model.
EYE_POINTS = {"dlib5": ((0, 1), (2, 3)), "mtcnn5": ((0,), (1,))}
# The face ellipse around two eye centres, in eye distances: half-width, half-height, and how far
# below the eyes its centre lies: from the forehead (~1.0 above the eyes, as the paper's 81-point
# hull reaches) to the chin (~1.6 below), cheeks ~1.05 out.
ELLIPSE_HALF_WIDTH, ELLIPSE_HALF_HEIGHT, ELLIPSE_DROP = 1.05, 1.3, 0.3
OUTLINE_POINTS = 24  # points on a five-point face's ellipse
MAX_OUTLINE_POINTS = 68  # outlines are padded with NaN to this many rows inside the input pipeline


# ------------------------------------------------------------------ finding them (stage 01)

class DlibLandmarks:
    """dlib's shape predictor (from face-recognition-models), loaded once, run on a frame's face box."""

    def __init__(self, model="dlib5"):
        import dlib
        import face_recognition_models

        if model not in DLIB_MODELS:
            raise ValueError(f"LANDMARK_MODEL = {model!r}: choose one of {', '.join(map(repr, LANDMARK_MODELS))}")
        self.model = model
        self._predictor = dlib.shape_predictor(getattr(face_recognition_models, DLIB_MODELS[model])())
        self._rectangle = dlib.rectangle

    def __call__(self, frame_rgb, face):
        """(N, 2) float32 points of `face` (a faces.crops.Face box) in frame pixels."""
        box = self._rectangle(int(face.x), int(face.y), int(face.x + face.width), int(face.y + face.height))
        shape = self._predictor(np.ascontiguousarray(frame_rgb), box)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


# This process's predictors, loaded once each (stage 01 crops many videos per worker process).
_finders = {}


def finder_for(model):
    """This process's DlibLandmarks for LANDMARK_MODEL, loaded on first use; None when the setting
    is None (then the detector's own keypoints, MTCNN's five, are recorded)."""
    if not model:
        return None
    if model not in _finders:
        _finders[model] = DlibLandmarks(model)
    return _finders[model]


def face_landmarks(finder, frame_rgb, face):
    """(model, points in frame pixels) for one kept face: dlib's when a finder is given and it
    answers, else the detector's own keypoints (MTCNN's five), else (None, None)."""
    if finder is not None:
        try:
            points = finder(frame_rgb, face)
            if len(points) and np.isfinite(points).all():
                return finder.model, points
        except RuntimeError:  # dlib refuses a degenerate box; the keypoints below still serve
            pass
    keypoints = getattr(face, "keypoints", None)
    if keypoints:
        return getattr(face, "keypoint_model", "mtcnn5"), np.array(keypoints, np.float32)
    return None, None


def to_crop(points, crop_origin):
    """Frame-pixel points -> crop pixels, the crop's top-left corner being `crop_origin` (x1, y1)."""
    return np.asarray(points, np.float32) - np.array(crop_origin, np.float32)


def format_points(points):
    """'x y x y ...' with one decimal, for faces.csv; '' for None."""
    if points is None:
        return ""
    return " ".join(f"{value:.1f}" for value in np.asarray(points, np.float32).reshape(-1))


def parse_points(text):
    """faces.csv's 'x y x y ...' -> (N, 2) float32, or None when empty or malformed."""
    try:
        values = np.array(text.split(), np.float32) if text else np.zeros(0, np.float32)
    except ValueError:
        return None
    if values.size < 4 or values.size % 2 or not np.isfinite(values).all():
        return None
    return values.reshape(-1, 2)


def index_columns(model, points):
    """The LANDMARK_COLUMNS of one faces.csv row."""
    return {"landmark_model": model or "", "landmarks": format_points(points)}


def read_row_landmarks(row):
    """(model, points) of one faces.csv row, or (None, None) for a row without (older files)."""
    points = parse_points(row.get("landmarks") or "")
    model = row.get("landmark_model") or None
    return (model, points) if model and points is not None else (None, None)


# ------------------------------------------------------------------ the face's outline (training)

def eye_centres(model, points):
    """The two eye centres of a five-point set (dlib5: the mean of each eye's two corners)."""
    first, second = EYE_POINTS[model]
    return points[list(first)].mean(axis=0), points[list(second)].mean(axis=0)


def ellipse_outline(eye_a, eye_b, count=OUTLINE_POINTS):
    """(count, 2) points on the forehead-to-chin ellipse of a face whose eyes are at eye_a and eye_b."""
    eye_a, eye_b = np.asarray(eye_a, np.float64), np.asarray(eye_b, np.float64)
    if eye_a[0] > eye_b[0]:
        eye_a, eye_b = eye_b, eye_a
    across = eye_b - eye_a
    distance = max(float(np.hypot(*across)), 1e-3)
    unit_x = across / distance
    unit_y = np.array([-unit_x[1], unit_x[0]])  # image y points down: "down the face"
    centre = (eye_a + eye_b) / 2 + unit_y * ELLIPSE_DROP * distance
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return (centre + np.outer(np.cos(angles) * ELLIPSE_HALF_WIDTH * distance, unit_x)
            + np.outer(np.sin(angles) * ELLIPSE_HALF_HEIGHT * distance, unit_y)).astype(np.float32)


def face_outline(model, points):
    """The polygon (K, 2) around the face that self-blending masks: 68 points as they are (their
    hull runs along the jaw and brows), five points as the forehead-to-chin ellipse around their eyes."""
    points = np.asarray(points, np.float32)
    if model in EYE_POINTS and len(points) >= 2:
        return ellipse_outline(*eye_centres(model, points))
    return points


def fallback_outline(width, height, margin):
    """The outline of a crop whose faces.csv row has no landmarks (older files): the face box lies
    in the middle of the crop, `margin` of its size out on each side, so the eyes are placed where
    MTCNN puts them in its box (about 35% down, 30% and 70% across)."""
    box_width, box_height = width / (1 + 2 * margin), height / (1 + 2 * margin)
    left, top = (width - box_width) / 2, (height - box_height) / 2
    eye_y = top + 0.38 * box_height
    return ellipse_outline((left + 0.3 * box_width, eye_y), (left + 0.7 * box_width, eye_y))


def scale_outline(outline, from_size, to_size):
    """An outline in a crop of `from_size` (width, height) -> in the crop resized to `to_size`."""
    factors = np.array(to_size, np.float32) / np.maximum(np.array(from_size, np.float32), 1)
    return np.asarray(outline, np.float32) * factors


def pad_outline(outline, rows=MAX_OUTLINE_POINTS):
    """(rows, 2) float32: the outline, then NaN rows (a fixed shape for tf.data); longer ones thinned."""
    outline = np.asarray(outline, np.float32)
    if len(outline) > rows:
        outline = outline[np.linspace(0, len(outline) - 1, rows).astype(int)]
    padded = np.full((rows, 2), np.nan, np.float32)
    padded[:len(outline)] = outline
    return padded


def unpad_outline(padded):
    """The rows of a padded outline that hold points."""
    padded = np.asarray(padded, np.float32)
    return padded[np.isfinite(padded).all(axis=1)]
