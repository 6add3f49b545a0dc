"""Decode budgets for images and videos, checked from a file's header before anything is decoded,
and the errors saying why a video or image cannot be used (VideoError; BudgetError when over budget).

A 3 MB PNG can declare 32000x32000 px and decode to 3 GB (OpenCV's own limit is 2^30 pixels);
a 6 MB video can last 40 minutes. So an image's size is read from its header (Pillow's format
parsers, which read headers only) and refused above MAX_IMAGE_PIXELS; a video's frame size and
duration are read from its container (check_video_budget) and refused above
MAX_VIDEO_PIXELS and, for the web page, WEB_MAX_VIDEO_SECONDS. Stage 04's command line
(media/reading.py), its web page (inference/web_workers.py) and stage 05
(evaluation/extract.py) all refuse the same files, each with one sentence (BudgetError).
"""

import math
import struct

import cv2

# Frames a second assumed, to bound the count of a video whose container gives neither its
# length nor its frame rate (count_frames_within): above nearly every camera's rate.
ASSUMED_MAX_FPS = 60


class VideoError(ValueError):
    """A video cannot be used; the message is the one-line reason shown to the user."""


class BudgetError(VideoError):
    """An image or video larger than a decode budget (MAX_IMAGE_PIXELS, MAX_VIDEO_PIXELS,
    WEB_MAX_VIDEO_SECONDS), found from its header before anything is decoded."""


def megapixels(width, height):
    """'12,000x9,000 px (108.0 megapixels)' for messages."""
    return f"{int(width):,}x{int(height):,} px ({width * height / 1e6:,.1f} megapixels)"


def video_budget_problem(width, height, fps, frame_count, max_pixels=None, max_seconds=None):
    """The sentence saying why a video whose container announces `width` x `height` px, `fps`
    and `frame_count` is over budget (MAX_VIDEO_PIXELS per frame, `max_seconds` long), or None.
    Unknown values (0, negative, NaN) are not held against the video."""
    if max_pixels and width > 0 and height > 0 and width * height > max_pixels:
        return f"its frames are {megapixels(width, height)}, above MAX_VIDEO_PIXELS ({max_pixels / 1e6:,.1f} megapixels)"
    if max_seconds and fps > 0 and frame_count > 0 and math.isfinite(frame_count / fps) \
            and frame_count / fps > max_seconds:
        return (f"it lasts {frame_count / fps:,.0f} s ({int(frame_count):,} frames at {fps:,.3g} fps), "
                f"above WEB_MAX_VIDEO_SECONDS ({max_seconds:,} s)")
    return None


def check_video_budget(capture, max_pixels=None, max_seconds=None):
    """Raise BudgetError when an open capture's container announces frames above `max_pixels` or
    a duration above `max_seconds` (None: no limit); nothing is decoded. A container that does
    not say how many frames it holds (a live-recorded MKV or WebM) is measured instead, by
    count_frames_within: then the capture is left at an unknown position, to be released."""
    fps, count = capture.get(cv2.CAP_PROP_FPS), capture.get(cv2.CAP_PROP_FRAME_COUNT)
    problem = video_budget_problem(capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT),
                                   fps, count, max_pixels, max_seconds)
    if problem:
        raise BudgetError(problem)
    if max_seconds and not (count > 0 and math.isfinite(count)):
        count_frames_within(capture, fps, max_seconds)


def count_frames_within(capture, fps, max_seconds):
    """Raise BudgetError when `capture` holds more frames than `max_seconds` allow at `fps`
    (ASSUMED_MAX_FPS when the container does not say). Grabs frames without converting them, and
    never more than the budget allows plus one: a longer video costs no more than an allowed one."""
    known = fps > 0 and math.isfinite(fps)
    limit = int(max_seconds * (fps if known else ASSUMED_MAX_FPS))
    for _ in range(limit + 1):
        if not capture.grab():
            return
    rate = f"{fps:,.3g} fps" if known else f"at most {ASSUMED_MAX_FPS} fps"
    raise BudgetError(f"its container does not say how long it lasts, and it holds more than {limit:,} frames "
                      f"({rate}): above WEB_MAX_VIDEO_SECONDS ({max_seconds:,} s)")


def webp_size(header):
    """(width, height) from a WebP file's first 30 bytes (VP8X canvas, VP8 or VP8L frame), or None.
    Read here because Pillow's WebP parser asks libwebp for an animation decoder, which allocates
    the whole canvas."""
    if len(header) < 30 or header[:4] != b"RIFF" or header[8:12] != b"WEBP":
        return None
    chunk = header[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(header[24:27], "little"), 1 + int.from_bytes(header[27:30], "little")
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", header[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(header[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def image_size(path):
    """(width, height) of an image file read from its header, without decoding it; None when no
    parser understands the header.

    Pillow's own Image.open refuses large images (its decompression-bomb check) before saying
    their size, so its format parsers are called directly, as Image.open calls them (WebP's
    header is read by webp_size).
    """
    from PIL import Image

    Image.init()
    with open(path, "rb") as handle:
        prefix = handle.read(30)
        if prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
            return webp_size(prefix)
        for format_id in Image.ID:
            factory, accept = Image.OPEN[format_id]
            accepted = accept(prefix) if accept else True
            if not accepted or isinstance(accepted, str):  # a str: Pillow's "recognised but unsupported"
                continue
            handle.seek(0)
            try:
                with factory(handle, str(path)) as image:
                    return image.size
            except Exception:  # noqa: BLE001 - a hostile header may break a parser in any way: try the next
                continue
    return None


def check_image_budget(path, max_pixels):
    """Raise BudgetError when the image at `path` declares more than `max_pixels` (MAX_IMAGE_PIXELS)
    pixels. An image whose header Pillow cannot read is left to the decoder (OpenCV reads a few
    formats Pillow does not) and to OpenCV's own limit."""
    size = image_size(path) if max_pixels else None
    if size and size[0] * size[1] > max_pixels:
        raise BudgetError(f"it declares {megapixels(*size)}, above MAX_IMAGE_PIXELS ({max_pixels / 1e6:,.1f} megapixels)")

