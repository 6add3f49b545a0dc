"""Decode budgets, checked from a file's header before anything is decoded.

A 3 MB PNG can declare 32000x32000 px and decode to 3 GB (OpenCV's own limit is 2^30 pixels);
a 6 MB video can last 40 minutes. So an image's size is read from its header (Pillow's format
parsers, which read headers only) and refused above MAX_IMAGE_PIXELS; a video's frame size and
duration are read from its container (frames.check_video_budget) and refused above
MAX_VIDEO_PIXELS and, for the web page, WEB_MAX_VIDEO_SECONDS. Stage 04's command line
(inference/reading.py), its web page (inference/web_workers.py) and stage 05
(evaluation/extract.py) all refuse the same files, each with one sentence (BudgetError).
"""

import struct

from deepfake_detect.frames import BudgetError, check_video_budget, megapixels, open_video
from deepfake_detect.inference.results import IMAGE


def image_size(path):
    """(width, height) of an image file read from its header by Pillow, without decoding it;
    None when no Pillow format parser understands the header.

    Pillow's own Image.open refuses large images (its decompression-bomb check) before saying
    their size, so the format parsers are called directly, as Image.open calls them.
    """
    from PIL import Image

    Image.init()
    with open(path, "rb") as handle:
        prefix = handle.read(16)
        for format_id in Image.ID:
            factory, accept = Image.OPEN[format_id]
            accepted = accept(prefix) if accept else True
            if not accepted or isinstance(accepted, str):  # a str: Pillow's "recognised but unsupported"
                continue
            handle.seek(0)
            try:
                with factory(handle, str(path)) as image:
                    return image.size
            except (SyntaxError, IndexError, TypeError, ValueError, OSError, struct.error):
                continue
    return None


def check_image_budget(path, max_pixels):
    """Raise BudgetError when the image at `path` declares more than `max_pixels` (MAX_IMAGE_PIXELS)
    pixels. An image whose header Pillow cannot read is left to the decoder (OpenCV reads a few
    formats Pillow does not) and to OpenCV's own limit."""
    size = image_size(path) if max_pixels else None
    if size and size[0] * size[1] > max_pixels:
        raise BudgetError(f"it declares {megapixels(*size)}, above MAX_IMAGE_PIXELS ({max_pixels / 1e6:,.1f} megapixels)")


def check_video_file_budget(path, max_pixels, max_seconds=None):
    """Raise BudgetError when the video at `path` announces frames above `max_pixels` or a duration
    above `max_seconds`; VideoError when it cannot be opened. Reads the container only."""
    capture = open_video(path)
    try:
        check_video_budget(capture, max_pixels, max_seconds)
    finally:
        capture.release()


def check_media_budget(path, kind, cfg, max_seconds=None):
    """Raise BudgetError (or VideoError for a video that cannot be opened) when the image or
    video at `path` (kind IMAGE or VIDEO) is over cfg's decode budgets."""
    if kind == IMAGE:
        check_image_budget(path, cfg.MAX_IMAGE_PIXELS)
    else:
        check_video_file_budget(path, cfg.MAX_VIDEO_PIXELS, max_seconds)

