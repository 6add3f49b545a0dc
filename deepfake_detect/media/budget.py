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

from deepfake_detect.media.frames import BudgetError, megapixels


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

