"""The face detector interface: FaceDetector (MTCNN and Azure implement it), the Face it finds, FrameDetectionError."""

from dataclasses import dataclass


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


class FaceDetector:
    """A face detector: called with a list of RGB frames (H, W, 3 uint8), it returns for each
    frame a list of Face, or a FrameDetectionError when that one frame could not be searched.
    MtcnnFaceDetector (faces/mtcnn.py) and AzureFaceDetector (faces/azure.py) are the two; the
    one crop loop (faces/crops.crop_kept_faces) takes any of them. Not to be confused with
    deepfake_detect.Detector, the public API that scores deepfakes."""

    def __call__(self, images_rgb):
        raise NotImplementedError
