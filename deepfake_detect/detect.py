"""Score videos and images with a trained run's model: the core shared by stage 04's command
line and its web page.

A video is read like stage 00 reads it (FRAMES_PER_SECOND, RESIZE_RULES, via
frames.iter_kept_frames), its faces are found and cropped like stage 01a does (MtcnnDetector,
keep_faces, crop_face with FACE_MARGIN) and scaled like training (model.prepare_faces). An image
given directly is treated as one frame and goes through the same RESIZE_RULES first: training
frames were resized by width before MTCNN saw them, so resizing images the same way shows the
detector and the model faces at the scale they were trained on.

The model outputs P(pristine) = P(real) for each face. A whole video or image gets one score,
also a P(real), from its face scores by VIDEO_SCORE: "mean" (the default) or "confident" (the
DFDC winner's rule, see confident_score). Verdict: FAKE when that score is below THRESHOLD.
With CALIBRATE and a run's calibration.json, face scores are temperature-scaled first
(calibration.py); the raw scores stay in `p_real_raw`.
An input with no face, or that cannot be read, gets a status saying so and no score at all.
"""

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from deepfake_detect.calibration import apply_temperature, read_temperature
from deepfake_detect.devices import configure_tensorflow
from deepfake_detect.export import is_exported, load_exported
from deepfake_detect.faces import MIN_FRAME_SIDE, FrameDetectionError, crop_face, keep_faces
from deepfake_detect.mtcnn_detector import MtcnnDetector
from deepfake_detect.files import read_image
from deepfake_detect.frames import VideoError, iter_kept_frames, resize_frame
from deepfake_detect.model import load_model, prepare_faces

MODEL_FILE = "model.keras"  # what stage 03 writes in each run folder

# Statuses of a Result; only SCORED carries a score.
SCORED, NO_FACE, UNREADABLE, UNSUPPORTED, NOT_FOUND, FAILED = (
    "scored", "no face", "unreadable", "unsupported", "not found", "failed")
IMAGE, VIDEO = "image", "video"
UNCERTAIN = "UNCERTAIN"  # the verdict for a score within UNCERTAIN_MARGIN of THRESHOLD

# Image files picked from folders (by name); given directly, any file is tried by its content.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# Faces go through the model in chunks of this fixed size, the last one padded: a new batch
# shape makes TensorFlow retrace the model (about 1 s on a 2-core CPU), a fixed one never does.
PREDICT_BATCH = 16
SNIFF_BYTES = 16  # enough for every signature in sniff_media_kind


class ModelError(RuntimeError):
    """No usable model: the message names the path and what to do."""


# ------------------------------------------------------------------ results

@dataclass
class FaceScore:
    """One scored face. `box` is (x, y, width, height) in the resized frame the detector saw."""

    frame: int                      # frame index in the video (0 for an image)
    number: int                     # face number within its frame: 0, 1, ...
    box: tuple
    detector_confidence: float | None
    p_real: float                   # the model's P(pristine), calibrated when the run has a temperature
    crop: np.ndarray | None = None  # RGB crop as the model saw it before resizing
    heatmap: np.ndarray | None = None  # Grad-CAM map for P(fake) in [0, 1], only with explain (explain.py)
    p_real_raw: float | None = None  # the network's own output, before calibration

    @property
    def p_fake(self):
        return 1.0 - self.p_real


@dataclass
class Result:
    """What became of one input. `p_real` and `verdict` are None unless status is SCORED."""

    path: str
    kind: str | None = None         # IMAGE, VIDEO or None when unknown
    status: str = SCORED
    reason: str = ""
    frame_indices: list = field(default_factory=list)  # every frame read, with a face or not
    faces: list = field(default_factory=list)          # FaceScore, in frame order
    p_real: float | None = None
    p_real_raw: float | None = None  # from the uncalibrated face scores
    verdict: str | None = None      # "REAL" | "FAKE" | "UNCERTAIN"
    seconds: float = 0.0
    frames_bgr: dict | None = None  # frame index -> resized BGR frame, only when asked for

    @property
    def p_fake(self):
        return None if self.p_real is None else 1.0 - self.p_real

    @property
    def scored(self):
        return self.status == SCORED


# ------------------------------------------------------------- video score

def confident_score(p_real, confident=0.8):
    """The DFDC winner's video score, in P(real) terms.

    Selim Seferbekov's `confident_strategy` (github.com/selimsef/dfdc_deepfake_challenge,
    kernel_utils.py) works on per-face P(fake) with t = 0.8:
        fakes = count(pred > t)
        if fakes > len(pred) // 2.5 and fakes > 11: mean(pred[pred > t])
        elif count(pred < 0.2) > 0.9 * len(pred):   mean(pred[pred < 0.2])
        else:                                       mean(pred)
    With P(real) = 1 - P(fake), "P(fake) > 0.8" is "P(real) < 0.2" and the means map over, so:
    more than 11 confidently fake faces making up over 40% of them decide alone; failing that,
    over 90% confidently real faces decide alone; otherwise the plain mean. He scored 32 frames
    per video; at one frame per second a 10-s clip has about 10 faces, too few for the fake
    branch (> 11), so on short clips only the confidently-real branch can differ from the mean.
    """
    p_real = np.asarray(p_real, dtype=np.float64)
    size = len(p_real)
    low = 1.0 - confident  # 0.2
    confidently_fake = np.count_nonzero(p_real < low)
    if confidently_fake > size // 2.5 and confidently_fake > 11:
        return float(np.mean(p_real[p_real < low]))
    if np.count_nonzero(p_real > confident) > 0.9 * size:
        return float(np.mean(p_real[p_real > confident]))
    return float(np.mean(p_real))


def combine_face_scores(p_real, rule):
    """One P(real) for a video or image from its faces' P(real); None when there is no face.

    rule: "mean" (every face counts alike) or "confident" (confident_score).
    """
    if not len(p_real):
        return None
    if rule == "mean":
        return float(np.mean(p_real))
    if rule == "confident":
        return confident_score(p_real)
    raise ValueError(f"VIDEO_SCORE = {rule!r}: choose mean or confident")


def score_meaning(cfg):
    """One sentence saying what the scores mean, shown under every table and on the web page."""
    rule = ("mean of its face scores" if cfg.VIDEO_SCORE == "mean"
            else "DFDC winner's confident-faces rule over its face scores")
    return (f"P(real) = the model's probability that the faces are real (pristine); "
            f"P(fake) = 1 - P(real). An input's score is the {rule} (VIDEO_SCORE={cfg.VIDEO_SCORE}); "
            f"verdict FAKE when P(real) < {cfg.THRESHOLD} (THRESHOLD)" + uncertain_meaning(cfg) + ".")


def uncertain_meaning(cfg):
    """The clause of score_meaning about the UNCERTAIN band; empty when the band is off."""
    if not cfg.UNCERTAIN_MARGIN:
        return ""
    low, high = cfg.THRESHOLD - cfg.UNCERTAIN_MARGIN, cfg.THRESHOLD + cfg.UNCERTAIN_MARGIN
    return (f", UNCERTAIN when {low:g} < P(real) < {high:g} (within UNCERTAIN_MARGIN={cfg.UNCERTAIN_MARGIN:g} "
            f"of it: too close to call)")


def verdict_of(p_real, threshold, margin=0.0):
    """"FAKE" when P(real) < threshold, else "REAL"; "UNCERTAIN" instead of either when P(real)
    lies strictly within `margin` of the threshold; None without a score."""
    if p_real is None:
        return None
    if margin and threshold - margin < p_real < threshold + margin:
        return UNCERTAIN
    return "FAKE" if p_real < threshold else "REAL"


# ------------------------------------------------------------ media kinds

def sniff_media_kind(header):
    """IMAGE, VIDEO or None from a file's first bytes (its format signature), whatever its name.

    Images: PNG, JPEG, BMP, WebP, TIFF. Videos: MP4/MOV/M4V/3GP (ISO media), AVI,
    MKV/WebM, MPEG program/elementary streams, FLV.
    """
    if header.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")):
        return IMAGE
    if header.startswith(b"BM") and len(header) >= 14:
        return IMAGE
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return IMAGE
    if header[4:8] == b"ftyp" or (header[:4] == b"RIFF" and header[8:12] == b"AVI "):
        return VIDEO
    if header.startswith((b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"FLV\x01")):
        return VIDEO
    return None


def media_kind_by_name(path, video_extensions):
    """IMAGE or VIDEO by the file's extension, None when it is neither."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return IMAGE
    if suffix in video_extensions:
        return VIDEO
    return None


def classify_file(path, video_extensions):
    """(kind, problem) for a file: its kind by content, else by name; problem is a Result or None.

    Content wins, so a PNG named .jpg, or a video without extension, is still scored. A file
    whose content is unknown but whose name says image/video is still tried (OpenCV reads
    more formats than sniff_media_kind knows) and reported as unreadable if it fails.
    """
    path = Path(path)
    if not path.exists():
        return None, Result(str(path), status=NOT_FOUND, reason="no such file or folder")
    try:
        with open(path, "rb") as handle:
            header = handle.read(SNIFF_BYTES)
    except OSError as error:
        return None, Result(str(path), status=UNREADABLE, reason=f"cannot open: {error.strerror or error}")
    by_name = media_kind_by_name(path, video_extensions)
    if not header:
        return by_name, Result(str(path), by_name, UNREADABLE, "empty file (0 bytes)")
    kind = sniff_media_kind(header) or by_name
    if kind is None:
        return None, Result(str(path), status=UNSUPPORTED,
                            reason=f"not an image or video (neither its content nor its name {path.suffix or '(no extension)'})")
    return kind, None


def list_inputs(paths, video_extensions, exclude=None):
    """Expand files and folders into the files to score, in the order given.

    Folders are searched recursively for image/video files by name (hidden files and the
    folder `exclude`, e.g. the annotation output, are left out). Returns (files, ignored)
    with `ignored` the other files found in folders, which get no row.
    """
    files, ignored = [], []
    exclude = Path(exclude).resolve() if exclude else None
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        for found in sorted(path.rglob("*")):
            relative = found.relative_to(path)
            if not found.is_file() or any(part.startswith(".") for part in relative.parts):
                continue
            if exclude and exclude in found.resolve().parents:
                continue
            if media_kind_by_name(found, video_extensions):
                files.append(found)
            else:
                ignored.append(found)
    return files, ignored


# ------------------------------------------------------------ reading frames

def iter_image_frame(path, rules):
    """Yield (0, BGR image resized by RESIZE_RULES) for an image file; VideoError if unreadable."""
    image = read_image(path)
    if image is None:
        raise VideoError("not an image OpenCV can decode (corrupt or unsupported format)")
    yield 0, resize_frame(image, rules)


def iter_media_frames(path, kind, cfg):
    """Yield (frame index, resized BGR frame) for an image or a video; VideoError on bad input."""
    if kind == IMAGE:
        return iter_image_frame(path, cfg.RESIZE_RULES)
    return iter_kept_frames(path, cfg.RESIZE_RULES, cfg.FRAMES_PER_SECOND)


_END = object()  # marks the end of one input's frames in the reading thread's stream


def _read_all(items, cfg, stop):
    """Yield (item, frame index, frame) for every frame of every (path, kind) item, then
    (item, _END, error message or None) once per item. Runs in the reading thread."""
    for item in items:
        if stop.is_set():
            return
        path, kind = item
        try:
            for index, frame in iter_media_frames(path, kind, cfg):
                yield item, index, frame
                if stop.is_set():
                    return
            yield item, _END, None
        except VideoError as error:
            yield item, _END, str(error)
        except Exception as error:  # noqa: BLE001 - one odd file must not stop the others
            yield item, _END, f"{type(error).__name__}: {error}"


def prefetched(make_items, max_items):
    """Iterate `make_items(stop_event)` in a background thread, `max_items` ahead at most.

    Decoding the next frames (OpenCV releases the GIL) then overlaps with face detection and
    the model (TensorFlow releases it too) whenever a second core is free.
    """
    buffer = queue.Queue(maxsize=max_items)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in make_items(stop):
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        finally:
            while not stop.is_set():
                try:
                    buffer.put(done, timeout=0.1)
                    break
                except queue.Full:
                    continue

    thread = threading.Thread(target=produce, name="frame-reader", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


# ------------------------------------------------------------------ the model

def find_run_model(runs_dir, run=None):
    """Path of the model.keras to use: `run` as a run folder, a .keras file or a run name in
    `runs_dir`; by default the run folder in `runs_dir` whose model.keras is newest.
    Raises ModelError naming what is missing."""
    runs_dir = Path(runs_dir)
    if run:
        candidate = Path(run)
        if candidate.is_file() or is_exported(candidate):
            return candidate  # a .keras or .tflite file, or a SavedModel folder (export.py)
        for folder in (candidate, runs_dir / str(run)):
            if (folder / MODEL_FILE).is_file():
                return folder / MODEL_FILE
        raise ModelError(f"--run {run}: no {MODEL_FILE} in {candidate} or {runs_dir / str(run)}; "
                         f"train one with 03-train_cnn.py or give a run folder that holds one")
    models = [p for p in runs_dir.glob(f"*/{MODEL_FILE}") if not p.parent.name.startswith(".")] \
        if runs_dir.is_dir() else []
    models.sort(key=lambda p: p.stat().st_mtime)
    if not models:
        raise ModelError(f"no trained model in {runs_dir} (looked for {runs_dir}/<run>/{MODEL_FILE}): "
                         f"run 03-train_cnn.py first, or give one with --run PATH")
    return models[-1]


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


class KerasPredictor:
    """P(real) from a stage 03 model.keras; the other predictors are in export.py."""

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


class Scorer:
    """The detector and the model, loaded once and used for every input.

    `Scorer(model_path)` loads both (several seconds); `score_files` and `score_file` then
    return Results, reading every setting from the `cfg` they are given. Not safe to call
    from two threads at once: such callers hold `scorer.lock`.
    """

    def __init__(self, model_path, detector=None):
        self.model_path = Path(model_path)
        self.predictor = load_predictor(model_path)
        self.model = self.predictor.keras_model  # None for exported models (no Grad-CAM)
        self.input_size = self.predictor.input_size
        self._grad_cam = None
        self.detector = detector or MtcnnDetector()
        # Applied only when cfg.CALIBRATE is True; calibration_note says which, for the output.
        self.temperature, self.calibration_note = read_temperature(model_path)
        self.lock = threading.Lock()
        self.predict_p_real([])  # traces the model now, so the first input is not slower

    def predict_p_real(self, crops_rgb):
        """Raw P(real) for each RGB face crop, as a float list (see predict_p_real)."""
        return predict_p_real(self.predictor, crops_rgb, self.input_size)

    @property
    def can_explain(self):
        """True when the model is a Keras model, which Grad-CAM needs (exports are not)."""
        return self.model is not None

    def explain_faces(self, crops_rgb):
        """(P(real) list, Grad-CAM heatmap list) for RGB face crops, in one pass (explain.py)."""
        if self._grad_cam is None:
            from deepfake_detect.explain import GradCam

            self._grad_cam = GradCam(self.model, PREDICT_BATCH)
        return self._grad_cam.explain(prepare_faces(crops_rgb, self.input_size))

    def score_file(self, path, cfg, kind=None, keep_frames=False, explain=False, progress=None):
        """Result for one file; `kind` (IMAGE/VIDEO) skips the content check when already known."""
        return next(self.score_files([path], cfg, kinds=[kind], keep_frames=keep_frames,
                                     explain=explain, progress=progress))

    def score_files(self, paths, cfg, kinds=None, keep_frames=False, read_ahead=True, explain=False,
                    progress=None):
        """Yield a Result per path, in order. Frames of the next files are read in a background
        thread meanwhile (read_ahead=False: all in this thread, to compare or debug).
        `keep_frames` keeps each input's resized frames (for annotation); `explain` adds a
        Grad-CAM heatmap to each face when the model allows (can_explain); `progress(frames
        read)` is called after each frame of an input."""
        kinds = kinds or [None] * len(paths)
        items, early = [], {}  # early: position -> Result of a file that is not even read
        for position, (path, kind) in enumerate(zip(paths, kinds)):
            problem = None
            if kind is None:
                kind, problem = classify_file(path, cfg.VIDEO_EXTENSIONS)
            if problem:
                early[position] = problem
            else:
                items.append((str(path), kind))
        if read_ahead:
            stream = prefetched(lambda stop: _read_all(items, cfg, stop), max_items=2 * cfg.MTCNN_BATCH_SIZE)
        else:
            stream = _read_all(items, cfg, threading.Event())
        for position in range(len(paths)):
            if position in early:
                yield early[position]
            else:
                yield self._score_stream(stream, cfg, keep_frames, explain, progress)

    def _score_stream(self, stream, cfg, keep_frames, explain=False, progress=None):
        """Consume one input's frames from the reading stream and score them.

        Whatever goes wrong, this input's frames are read to their end marker, so the next
        input starts at its own first frame.
        """
        started = time.perf_counter()
        batch, faces, frame_indices, frames_kept, unsearched = [], [], [], {}, []
        failure = None
        for (path, kind), index, frame in stream:
            if index is _END:
                read_error = frame
                break
            frame_indices.append(index)
            if progress:
                progress(len(frame_indices))
            if keep_frames:
                frames_kept[index] = frame
            batch.append((index, frame))
            if len(batch) >= cfg.MTCNN_BATCH_SIZE:
                if failure is None:
                    try:
                        faces += self._detect_faces(batch, cfg, unsearched)
                    except Exception as error:  # noqa: BLE001 - reported in the row, others go on
                        failure = error
                batch = []
        else:
            raise RuntimeError("the frame reader stopped before the end of an input")
        result = Result(path, kind, frame_indices=frame_indices, frames_bgr=frames_kept if keep_frames else None)
        try:
            if failure is not None:
                raise failure
            faces += self._detect_faces(batch, cfg, unsearched)
            self._conclude(result, faces, unsearched, read_error, cfg, explain)
        except Exception as error:  # noqa: BLE001 - reported in the row, the other inputs go on
            result.status, result.reason = FAILED, f"{type(error).__name__}: {error}"
            result.faces, result.p_real, result.verdict = [], None, None
        result.seconds = time.perf_counter() - started
        return result

    def _conclude(self, result, faces, unsearched, read_error, cfg, explain=False):
        """Set the status, reason and, when there are faces, the scores of `result`."""
        frame_count = len(result.frame_indices)
        if read_error and not frame_count:
            result.status, result.reason = UNREADABLE, read_error
        elif unsearched and not faces:
            result.status = FAILED
            result.reason = f"{len(unsearched)} of {frame_count} frames could not be searched for faces"
        elif not faces:
            result.status = NO_FACE
            result.reason = self._no_face_reason(result.kind, result.frame_indices, read_error)
        else:
            crops = [f.crop for f in faces]
            raw, heatmaps = (self.explain_faces(crops) if explain and self.can_explain
                             else (self.predict_p_real(crops), [None] * len(faces)))
            calibrated = apply_temperature(raw, self.temperature if cfg.CALIBRATE else None)
            for face, p_raw, p_real, heatmap in zip(faces, raw, calibrated, heatmaps):
                face.p_real_raw, face.p_real, face.heatmap = p_raw, float(p_real), heatmap
            result.faces = faces
            result.p_real = combine_face_scores([f.p_real for f in faces], cfg.VIDEO_SCORE)
            result.p_real_raw = combine_face_scores(raw, cfg.VIDEO_SCORE)
            result.verdict = verdict_of(result.p_real, cfg.THRESHOLD, cfg.UNCERTAIN_MARGIN)
            problems = [f"stopped early: {read_error}"] if read_error else []
            if unsearched:
                problems.append(f"{len(unsearched)} frames could not be searched for faces")
            result.reason = "; ".join(problems)

    def _no_face_reason(self, kind, frame_indices, error):
        if kind == IMAGE:
            return "no face found in the image"
        reason = f"no face found in {len(frame_indices)} frame{'s' * (len(frame_indices) != 1)}"
        return f"{reason} ({error})" if error else reason

    def _detect_faces(self, batch, cfg, unsearched):
        return find_face_crops(self.detector, batch, cfg, unsearched)


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


def find_face_crops(detector, batch, cfg, unsearched):
    """FaceScores (p_real not yet set) of the kept faces in [(frame index, BGR frame)], found,
    kept and cropped as stage 01a does (keep_faces, crop_face with FACE_MARGIN).

    Frames the detector could not search (a FrameDetectionError in place of their faces)
    are appended to `unsearched`, as (frame index, error)."""
    usable = [(index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)) for index, frame in batch
              if min(frame.shape[:2]) >= MIN_FRAME_SIDE]
    if not usable:
        return []
    found = detector([rgb for _, rgb in usable])
    faces = []
    for (index, rgb), detected in zip(usable, found):
        if isinstance(detected, FrameDetectionError):
            unsearched.append((index, detected))
            continue
        number = 0
        for face in keep_faces(detected, cfg.MULTI_FACE_MIN_CONFIDENCE):
            crop = crop_face(rgb, face, cfg.FACE_MARGIN)
            if crop.size == 0:
                continue  # a box entirely outside the frame, skipped as stage 01a does
            faces.append(FaceScore(index, number, (face.x, face.y, face.width, face.height),
                                   face.confidence, float("nan"), crop))
            number += 1
    return faces


# ------------------------------------------------------------ annotation

def face_colour(p_real, threshold):
    """BGR box colour: green for a face that reads real, red for one that reads fake."""
    return (60, 180, 60) if p_real >= threshold else (40, 40, 220)


def annotate_frame(frame_bgr, faces, threshold):
    """A copy of the frame with each face's box and "P(fake) 0.83" drawn on it."""
    canvas = frame_bgr.copy()
    scale = max(0.4, canvas.shape[1] / 1000)
    thickness = max(1, round(2 * scale))
    for face in faces:
        x, y, width, height = face.box
        colour = face_colour(face.p_real, threshold)
        cv2.rectangle(canvas, (x, y), (x + width, y + height), colour, thickness)
        label = f"{verdict_of(face.p_real, threshold)} P(fake) {face.p_fake:.2f}"
        (text_width, text_height), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, thickness)
        top = max(0, y - text_height - base - 4)
        cv2.rectangle(canvas, (x, top), (x + text_width + 4, top + text_height + base + 4), colour, -1)
        cv2.putText(canvas, label, (x + 2, top + text_height + 2), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return canvas


def annotated_frames(result, threshold):
    """[(frame index, annotated BGR frame)] for a Result scored with keep_frames=True."""
    by_frame = {}
    for face in result.faces:
        by_frame.setdefault(face.frame, []).append(face)
    return [(index, annotate_frame(frame, by_frame.get(index, []), threshold))
            for index, frame in sorted((result.frames_bgr or {}).items())]


def write_annotated(result, out_path, threshold, frames_per_second=1):
    """Write the annotated image (PNG) or video (mp4v, one kept frame per 1/fps s) to out_path.

    Written under a temporary name and renamed, so a killed run leaves no half file.
    Returns out_path, or None when the result has no frames.
    """
    import os

    from deepfake_detect.files import write_png

    frames = annotated_frames(result, threshold)
    if not frames:
        return None
    out_path = Path(out_path)
    if result.kind == IMAGE:
        write_png(out_path, frames[0][1])
        return out_path
    temporary = out_path.with_name(f".{out_path.stem}.tmp-{os.getpid()}{out_path.suffix}")
    height, width = frames[0][1].shape[:2]
    writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), frames_per_second, (width, height))
    try:
        if not writer.isOpened():
            raise OSError(f"OpenCV cannot write {out_path}")
        for _, frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    os.replace(temporary, out_path)
    return out_path
