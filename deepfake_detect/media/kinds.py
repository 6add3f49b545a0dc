"""Which files are images and which are videos: by their first bytes, or by name in folders.
"""

from pathlib import Path

from deepfake_detect.inference.results import IMAGE, NOT_FOUND, UNREADABLE, UNSUPPORTED, VIDEO, Result

# Image files picked from folders (by name); given directly, any file is tried by its content.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

SNIFF_BYTES = 16  # enough for every signature in sniff_media_kind
# ISO media files ("ftyp") are videos, except photos: the major brands of HEIF (HEIC) and AVIF
# still images (ISO/IEC 23008-12, AV1 Image File Format). AVIF image sequences ("avis") stay videos.
STILL_IMAGE_BRANDS = (b"mif1", b"heic", b"heix", b"heim", b"heis", b"avif")


def sniff_media_kind(header):
    """IMAGE, VIDEO or None from a file's first bytes (its format signature), whatever its name.

    Images: PNG, JPEG, BMP, WebP, TIFF, HEIC/AVIF photos (ISO media with a still-image brand).
    Videos: MP4/MOV/M4V/3GP (other ISO media), AVI, MKV/WebM, MPEG program/elementary streams, FLV.
    """
    if header.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")):
        return IMAGE
    if header.startswith(b"BM") and len(header) >= 14:
        return IMAGE
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return IMAGE
    if header[4:8] == b"ftyp" and header[8:12] in STILL_IMAGE_BRANDS:
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


def ignored_note(ignored):
    """The warning about files list_inputs found in folders but will not score, naming a few."""
    example = ", ".join(Path(p).name for p in ignored[:3])
    return (f"ignored {len(ignored):,} file{'s' * (len(ignored) != 1)} in the folders that are "
            f"not images or videos by name ({example}{', ...' if len(ignored) > 3 else ''})")
