"""What became of one input scored by stage 04: a Result with its FaceScores.

Only a SCORED result carries a score (`p_real`, P(pristine): 1 = real, 0 = deepfake) and a
verdict; the other statuses say why there is none.
"""

from dataclasses import dataclass, field

import numpy as np

# Statuses of a Result; only SCORED carries a score.
SCORED, NO_FACE, UNREADABLE, UNSUPPORTED, NOT_FOUND, FAILED = (
    "scored", "no face", "unreadable", "unsupported", "not found", "failed")

IMAGE, VIDEO = "image", "video"

UNCERTAIN = "UNCERTAIN"  # the verdict for a score within UNCERTAIN_MARGIN of THRESHOLD


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
    person: int | None = None       # 1, 2, ... by first appearance in the video (tracks.py)
    overlay: str | None = None      # Grad-CAM overlay as a data: URI, made when the crop is dropped (scoring.py)

    @property
    def p_fake(self):
        return 1.0 - self.p_real


@dataclass
class PersonScore:
    """One person (a track of faces, tracks.py) of an input: their faces' mean P(real) and verdict."""

    person: int                     # 1, 2, ... by first appearance
    faces: int                      # faces in the track
    first_seconds: float | None     # time of the first and the last face (None for an image)
    last_seconds: float | None
    p_real: float                   # mean P(real) of the person's faces
    verdict: str

    @property
    def p_fake(self):
        return 1.0 - self.p_real


@dataclass
class Segment:
    """A span of one person's video where P(fake) stays above the threshold (segments.py)."""

    person: int
    start: float                    # seconds from the start of the video
    end: float
    p_fake: float                   # mean smoothed P(fake) over the span's frames
    frames: int                     # sampled frames in the span

    @property
    def seconds(self):
        return self.end - self.start


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
    fps: float | None = None        # the video's frame rate: frame index / fps = seconds
    persons: list = field(default_factory=list)   # PersonScore per person, by number
    segments: list = field(default_factory=list)  # Segment per fake span, by person then start
    p_real_by_rule: dict = field(default_factory=dict)  # {VIDEO_SCORE rule: P(real)}, every rule on these faces

    @property
    def p_fake(self):
        return None if self.p_real is None else 1.0 - self.p_real

    @property
    def scored(self):
        return self.status == SCORED

    def counts(self):
        """(frames read, faces scored); (None, None) when nothing could be read."""
        if not self.frame_indices:
            return None, None
        return len(self.frame_indices), len(self.faces)

    def faces_by_person(self):
        """{person: [FaceScore, ...]} in person order, each in frame order."""
        by_person = {}
        for face in sorted(self.faces, key=lambda face: (face.person or 0, face.frame)):
            by_person.setdefault(face.person, []).append(face)
        return by_person

    def faces_by_frame(self):
        """{frame index: [FaceScore, ...]} for the frames with a face, in frame order."""
        by_frame = {}
        for face in sorted(self.faces, key=lambda face: face.frame):
            by_frame.setdefault(face.frame, []).append(face)
        return by_frame
