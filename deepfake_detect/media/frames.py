"""Pick and resize video frames the way the original DeepFake-Detect did.

Used by stage 00 (frames saved as PNG) and by detection (frames kept in memory), so both
see exactly the same frames.
"""

import math
from pathlib import Path

import cv2

from deepfake_detect.media.budget import VideoError, check_video_budget


def resize_factor(width, rules):
    """Scale factor for a frame `width` pixels wide: the first (max_width, factor) rule that fits.

    With the original's rules: x2 below 300 px, x1 for 300-1000, x0.5 for 1001-1900, x0.33 above.
    """
    for max_width, factor in rules:
        if max_width is None or width <= max_width:
            return factor
    raise ValueError("RESIZE_RULES has no rule for any width")


def resize_frame(frame, rules):
    """Resize a frame (H, W, 3) by its width's factor with INTER_AREA, as the original did."""
    height, width = frame.shape[:2]
    factor = resize_factor(width, rules)
    if factor == 1:
        return frame
    size = (int(width * factor), int(height * factor))  # int() truncates like the original
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def frame_step(fps, frames_per_second=1):
    """Keep every `frame_step`-th frame (index 0, step, 2*step, ...).

    The original kept frame i when i % floor(fps) == 0: at 29.97 fps every 29th frame.
    Raises VideoError when fps is missing, 0 or not a number.
    """
    if fps is None or not math.isfinite(fps) or fps <= 0:
        raise VideoError("frame rate missing or 0 in the video header")
    return max(1, math.floor(fps / frames_per_second))


def open_video(path):
    """Open a video with OpenCV; raise VideoError with the reason if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise VideoError("file not found")
    if path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes)")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoError("not a readable video (OpenCV cannot open it)")
    return capture


def iter_kept_frames(path, rules, frames_per_second=1, stats=None, max_pixels=None):
    """Yield (frame index, resized BGR frame) for each kept frame of the video at `path`.

    `max_pixels` (MAX_VIDEO_PIXELS): a video whose container announces larger frames raises
    BudgetError before any frame is decoded.

    Frames that are not kept are only grabbed, never decoded into images, which is what makes
    this faster than reading every frame. Raises VideoError when the video cannot be opened,
    has no frame rate, or yields no frame at all. If given, the dict `stats` receives
    "decoded" (frames read) and "announced" (frames the header promised, 0 if unknown).
    """
    capture = open_video(path)
    stats = {} if stats is None else stats
    try:
        check_video_budget(capture, max_pixels)
        step = frame_step(capture.get(cv2.CAP_PROP_FPS), frames_per_second)
        stats["announced"] = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        index = 0
        while capture.grab():
            if index % step == 0:
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    break  # a frame that cannot be decoded mid-file: keep what came before
                yield index, resize_frame(frame, rules)
            index += 1
        stats["decoded"] = index
        if index == 0:
            raise VideoError("no frame could be decoded (truncated or corrupt video)")
    finally:
        capture.release()


def frame_file_name(video_name, kept_number):
    """`<video>-NNN.png`, NNN counting kept frames 000, 001, ... as the original named them."""
    return f"{video_name}-{kept_number:03d}.png"
