"""The Python API: a Detector scores images and videos as stage 04 does, from your own code.

    from deepfake_detect import Detector

    detector = Detector.load("runs/sample")     # a run folder, model.keras, a SavedModel or a .tflite
    result = detector.score("clip.mp4")         # a video or image path, or an RGB numpy array
    print(result.verdict, result.p_fake)

    for event in detector.stream(0):            # a camera, stream URL or file, live (docs/live.md)
        print(event.as_dict())

`score` returns the Result that 04-detect_deepfakes.py prints a row for (inference/results.py):
its status, P(real) (1 = real, 0 = deepfake), P(fake), verdict and a FaceScore per face (with
its `person`), the persons (`result.persons`: PersonScore), the fake segments of a video
(`result.segments`: Segment, start and end in seconds) and the score under every VIDEO_SCORE rule
(`result.p_real_by_rule`).
records.input_record(result) gives its fields as docs/results.md describes them.
"""

from pathlib import Path

import numpy as np

from deepfake_detect import settings
from deepfake_detect.inference.scoring import Scorer, find_run_model


class Detector:
    """A trained model and the face detector, loaded once, with the settings they score by
    (THRESHOLD, VIDEO_SCORE, FRAMES_PER_SECOND, ...: `detector.cfg`)."""

    def __init__(self, scorer, cfg):
        self.scorer = scorer
        self.cfg = cfg

    @classmethod
    def load(cls, model, config=None):
        """A Detector for `model`: a run folder, a run name in RUNS_DIR, a model.keras, a
        SavedModel folder or a .tflite file, with the settings of config.py overridden by the
        file `config`. Loading takes seconds (TensorFlow, the model and MTCNN). Raises
        models.predictors.ModelError when there is no usable model, settings.ConfigError for bad settings."""
        cfg = settings.load_config(config)
        return cls(Scorer(find_run_model(cfg.RUNS_DIR, model)), cfg)

    @property
    def model_path(self):
        return self.scorer.model_path

    def score(self, media, explain=False):
        """The Result for `media`: a path to an image or a video (its kind read from its content),
        or an RGB uint8 numpy array (H, W, 3) scored as an image. `explain` adds a Grad-CAM
        heatmap to each face when the model is a Keras one."""
        if isinstance(media, np.ndarray):
            return self.scorer.score_array(media, self.cfg, explain=explain)
        return self.scorer.score_file(Path(media), self.cfg, explain=explain)

    def score_many(self, paths, explain=False):
        """Yield the Result of each path in `paths`, in order; the next files are read while
        the current one is scored."""
        yield from self.scorer.score_files([Path(p) for p in paths], self.cfg, explain=explain)

    def stream(self, source, on_frame=None):
        """Check a live source as 04-detect_deepfakes.py --live does: a camera index (0), a device
        path, a stream URL (rtsp://, http://, udp://) or a video file played at its own speed.
        Returns an opened LiveStream (live/stream.py); iterating it yields an Update at least every
        LIVE_UPDATE_SECONDS and an Alert when a person turns FAKE, and last the Summary when the
        source ends (`break` early and ask `.summary()`; use it in a `with` block to stop reading).
        Each has `as_dict()`, the --jsonl line (docs/live.md). `on_frame(frame, faces)` is called
        after each scored frame. Raises live.source.SourceError when the source cannot be opened."""
        from deepfake_detect.live.stream import LiveStream

        return LiveStream(source, self.scorer, self.cfg, on_frame).open()
