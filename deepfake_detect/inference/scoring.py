"""Score videos and images with a trained run's model: the core shared by stage 04's command
line and its web page.

A video is read like stage 00 reads it (FRAMES_PER_SECOND, RESIZE_RULES, via
frames.iter_kept_frames), its faces are found and cropped like stage 01a does (MtcnnFaceDetector,
keep_faces, crop_face with FACE_MARGIN) and scaled like training (model.prepare_faces). An image
given directly is treated as one frame and goes through the same RESIZE_RULES first: training
frames were resized by width before MTCNN saw them, so resizing images the same way shows the
detector and the model faces at the scale they were trained on.

The model outputs P(pristine) = P(real) for each face. Faces are grouped into persons (tracks.py)
and each person's fake segments found (segments.py). A whole video or image gets one score,
also a P(real), from its face scores by VIDEO_SCORE: "mean" (the default), "confident" (the
DFDC winner's rule, see confident_score), "person_max" or "segment" (verdicts.judge_faces). Verdict: FAKE when that score is below THRESHOLD.
With CALIBRATE and a run's calibration.json, face scores are temperature-scaled first
(training/calibration.py); the raw scores stay in `p_real_raw`.
An input with no face, or that cannot be read, gets a status saying so and no score at all.
"""

import threading
import time
from pathlib import Path

import cv2
import numpy as np

from deepfake_detect.training.calibration import apply_temperature, read_temperature
from deepfake_detect.faces.crops import MIN_FRAME_SIDE, crop_kept_faces
from deepfake_detect.faces.detector import FrameDetectionError
from deepfake_detect.media.frames import resize_frame
from deepfake_detect.faces.mtcnn import MtcnnFaceDetector
from deepfake_detect.models.network import prepare_faces
from deepfake_detect.models.predictors import PREDICT_BATCH, ModelError, is_exported, load_predictor, predict_p_real
from deepfake_detect.media.kinds import classify_file
from deepfake_detect.media.reading import END_OF_INPUT, prefetched, read_frames, video_frame_rate
from deepfake_detect.inference.results import FAILED, IMAGE, NO_FACE, UNREADABLE, VIDEO, FaceScore, Result
from deepfake_detect.inference.verdicts import judge_faces

MODEL_FILE = "model.keras"  # what stage 03 writes in each run folder

def find_run_model(runs_dir, run=None):
    """Path of the model.keras to use: `run` as a run folder, a .keras file or a run name in
    `runs_dir`; by default the run folder in `runs_dir` whose model.keras is newest.
    Raises ModelError naming what is missing."""
    runs_dir = Path(runs_dir)
    if run:
        candidate = Path(run)
        if candidate.is_file() or is_exported(candidate):
            return candidate  # a .keras or .tflite file, or a SavedModel folder (training/export.py)
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
        self.detector = detector or MtcnnFaceDetector()
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
            from deepfake_detect.inference.explain import GradCam

            self._grad_cam = GradCam(self.model, PREDICT_BATCH)
        return self._grad_cam.explain(prepare_faces(crops_rgb, self.input_size))

    def score_file(self, path, cfg, kind=None, keep_frames=False, explain=False, progress=None, keep_crops=True):
        """Result for one file; `kind` (IMAGE/VIDEO) skips the content check when already known."""
        return next(self.score_files([path], cfg, kinds=[kind], keep_frames=keep_frames,
                                     explain=explain, progress=progress, keep_crops=keep_crops))

    def score_array(self, image_rgb, cfg, name="array", keep_frames=False, explain=False):
        """Result (path `name`) for an RGB uint8 image array (H, W, 3), scored as the same image
        read from a file: resized by RESIZE_RULES, as one frame. Raises ValueError for another
        shape or type."""
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image of shape (height, width, 3), "
                             f"got {image_rgb.dtype} of shape {image_rgb.shape}")
        frame = resize_frame(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), cfg.RESIZE_RULES)
        stream = iter([((name, IMAGE), 0, frame), ((name, IMAGE), END_OF_INPUT, None)])
        return self._score_stream(stream, cfg, keep_frames, explain)

    def score_files(self, paths, cfg, kinds=None, keep_frames=False, read_ahead=True, explain=False,
                    progress=None, keep_crops=True):
        """Yield a Result per path, in order. Frames of the next files are read in a background
        thread meanwhile (read_ahead=False: all in this thread, to compare or debug).
        `keep_frames` keeps each input's resized frames (for annotation; the command line reads
        them again instead, see annotate.py); `keep_crops=False` drops each face's crop once it
        is scored, so that memory stays flat however long a video is (the command line; the web
        page shows crops); `explain` adds a Grad-CAM heatmap to each face when the model allows
        (can_explain); `progress(frames read)` is called after each frame of an input."""
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
            stream = prefetched(lambda stop: read_frames(items, cfg, stop), max_items=2 * cfg.MTCNN_BATCH_SIZE)
        else:
            stream = read_frames(items, cfg, threading.Event())
        for position in range(len(paths)):
            if position in early:
                yield early[position]
            else:
                yield self._score_stream(stream, cfg, keep_frames, explain, progress, keep_crops)

    def _score_stream(self, stream, cfg, keep_frames, explain=False, progress=None, keep_crops=True):
        """Consume one input's frames from the reading stream and score them.

        Faces are scored as they are found, PREDICT_BATCH at a time, and with `keep_crops=False`
        their crops dropped at once: what is held grows by one small FaceScore per face, not by
        a crop. Whatever goes wrong, this input's frames are read to their end marker, so the
        next input starts at its own first frame.
        """
        started = time.perf_counter()
        batch, faces, pending, frame_indices, frames_kept, unsearched = [], [], [], [], {}, []
        failure = None
        explain = explain and self.can_explain
        for (path, kind), index, frame in stream:
            if index is END_OF_INPUT:
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
                        found = self._detect_faces(batch, cfg, unsearched)
                        faces += found
                        pending = self._score_pending(pending + found, explain, keep_crops, PREDICT_BATCH)
                    except Exception as error:  # noqa: BLE001 - reported in the row, others go on
                        failure = error
                batch = []
        else:
            raise RuntimeError("the frame reader stopped before the end of an input")
        result = Result(path, kind, frame_indices=frame_indices, frames_bgr=frames_kept if keep_frames else None)
        try:
            if failure is not None:
                raise failure
            found = self._detect_faces(batch, cfg, unsearched)
            faces += found
            self._score_pending(pending + found, explain, keep_crops, 1)
            self._conclude(result, faces, unsearched, read_error, cfg)
        except Exception as error:  # noqa: BLE001 - reported in the row, the other inputs go on
            result.status, result.reason = FAILED, f"{type(error).__name__}: {error}"
            result.faces, result.p_real, result.verdict = [], None, None
        result.seconds = time.perf_counter() - started
        return result

    def _score_pending(self, pending, explain, keep_crops, at_least):
        """Score the faces of `pending` (raw P(real), and a heatmap with `explain`) in whole
        chunks of `at_least` faces; return those left for the next call. Without `keep_crops`,
        each crop is dropped once scored (with a heatmap, its overlay kept as a data: URI)."""
        from deepfake_detect.inference.explain import overlay_heatmap
        from deepfake_detect.inference.records import crop_data_uri

        ready = len(pending) - len(pending) % at_least
        if not ready:
            return pending
        chosen = pending[:ready]
        crops = [face.crop for face in chosen]
        raw, heatmaps = (self.explain_faces(crops) if explain else (self.predict_p_real(crops), [None] * ready))
        for face, p_raw, heatmap in zip(chosen, raw, heatmaps):
            face.p_real_raw, face.heatmap = p_raw, heatmap
            if not keep_crops:
                if heatmap is not None:  # what --json keeps of the crop: a small JPEG (~5 KB)
                    face.overlay = crop_data_uri(overlay_heatmap(face.crop, heatmap))
                face.crop = None
        return pending[ready:]

    def _conclude(self, result, faces, unsearched, read_error, cfg):
        """Set the status, reason and, when there are faces (each with its raw P(real)), the
        scores of `result`."""
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
            raw = [face.p_real_raw for face in faces]
            calibrated = apply_temperature(raw, self.temperature if cfg.CALIBRATE else None)
            for face, p_real in zip(faces, calibrated):
                face.p_real = float(p_real)
            result.faces = faces
            result.fps = video_frame_rate(result.path) if result.kind == VIDEO else None
            judged = judge_faces(faces, result.frame_indices, result.fps, cfg)
            result.p_real, result.p_real_raw, result.verdict = judged.p_real, judged.p_real_raw, judged.verdict
            result.persons, result.segments, result.p_real_by_rule = judged.persons, judged.segments, judged.by_rule
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


def find_face_crops(detector, batch, cfg, unsearched):
    """FaceScores (p_real not yet set) of the kept faces in [(frame index, BGR frame)], found,
    kept and cropped by the one crop loop of stage 01 (faces.crops.crop_kept_faces).

    Frames the detector could not search (a FrameDetectionError in place of their faces)
    are appended to `unsearched`, as (frame index, error)."""
    usable = [(index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)) for index, frame in batch
              if min(frame.shape[:2]) >= MIN_FRAME_SIDE]
    faces = []
    for (index, _), kept in zip(usable, crop_kept_faces(detector, [rgb for _, rgb in usable], cfg)):
        if isinstance(kept, FrameDetectionError):
            unsearched.append((index, kept))
            continue
        faces += [FaceScore(index, number, (face.x, face.y, face.width, face.height), face.confidence, float("nan"), crop)
                  for number, (face, crop) in enumerate(kept)]
    return faces
