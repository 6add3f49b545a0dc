"""Frames of images and videos, read in a background thread so decoding overlaps scoring.
"""

import queue
import threading

import cv2

from deepfake_detect.files import read_image
from deepfake_detect.media.budget import VideoError
from deepfake_detect.media.frames import iter_kept_frames, open_video, resize_frame
from deepfake_detect.inference.results import IMAGE
from deepfake_detect.media.budget import check_image_budget


def iter_image_frame(path, rules, max_pixels=None):
    """Yield (0, BGR image resized by RESIZE_RULES) for an image file; VideoError if unreadable,
    BudgetError (before decoding) if its header declares more than `max_pixels`."""
    check_image_budget(path, max_pixels)
    image = read_image(path)
    if image is None:
        raise VideoError("not an image OpenCV can decode (corrupt or unsupported format)")
    yield 0, resize_frame(image, rules)


def iter_media_frames(path, kind, cfg):
    """Yield (frame index, resized BGR frame) for an image or a video; VideoError on bad input,
    BudgetError for one over MAX_IMAGE_PIXELS or MAX_VIDEO_PIXELS (media/budget.py)."""
    if kind == IMAGE:
        return iter_image_frame(path, cfg.RESIZE_RULES, cfg.MAX_IMAGE_PIXELS)
    return iter_kept_frames(path, cfg.RESIZE_RULES, cfg.FRAMES_PER_SECOND, max_pixels=cfg.MAX_VIDEO_PIXELS)


def video_frame_rate(path):
    """The video's frames per second from its header (frame index / fps = seconds), or None when
    it cannot be read: then the input has persons but no timed segments."""
    try:
        capture = open_video(path)
    except VideoError:
        return None
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    return float(fps) if fps and fps > 0 else None


# Stands in for the frame index after one input's last frame in read_frames' stream.
END_OF_INPUT = object()


def read_frames(items, cfg, stop):
    """Yield (item, frame index, frame) for every frame of every (path, kind) item, then
    (item, END_OF_INPUT, error message or None) once per item, until `stop` (an Event) is set.
    Runs in the reading thread (prefetched)."""
    for item in items:
        if stop.is_set():
            return
        path, kind = item
        try:
            for index, frame in iter_media_frames(path, kind, cfg):
                yield item, index, frame
                if stop.is_set():
                    return
            yield item, END_OF_INPUT, None
        except VideoError as error:
            yield item, END_OF_INPUT, str(error)
        except Exception as error:  # noqa: BLE001 - one odd file must not stop the others
            yield item, END_OF_INPUT, f"{type(error).__name__}: {error}"


def prefetched(make_items, max_items):
    """Iterate `make_items(stop_event)` in a background thread, `max_items` ahead at most.

    Decoding the next frames (OpenCV releases the GIL) then overlaps with face detection and
    the model (TensorFlow releases it too) whenever a second core is free.
    """
    buffer = queue.Queue(maxsize=max_items)
    stop = threading.Event()
    done = object()

    def put_unless_stopped(item):
        # A bounded wait, so a consumer that stopped early never leaves this thread blocked.
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce():
        try:
            for item in make_items(stop):
                put_unless_stopped(item)
        finally:
            put_unless_stopped(done)

    thread = threading.Thread(target=produce, name="frame-reader", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
