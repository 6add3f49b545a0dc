"""Face crops from frames: the keep rule, the 30% margin, the one crop loop, file names and the per-video index.

Shared by stage 01a (MTCNN), stage 01b (Azure), detection (04) and stage 05, so all crop alike
(crop_kept_faces). The face detectors are FaceDetectors (faces/detector.py).
"""

import csv
from pathlib import Path

import cv2

from deepfake_detect.faces.detector import FrameDetectionError
from deepfake_detect.files import (completed_names, discard_partial_folder, finish_partial_folder, read_image,
                                   start_partial_folder, write_csv, write_png)
from deepfake_detect.jobs.outcome import ALREADY_DONE, FAILED, SKIPPED, Outcome

INDEX_FILE = "faces.csv"  # per video: every kept face, and every frame in which none was found
INDEX_COLUMNS = ("frame", "face", "file", "x", "y", "width", "height", "confidence")
# MTCNN's smallest network looks at 12x12 windows; smaller frames cannot hold a face.
MIN_FRAME_SIDE = 12


def keep_faces(faces, min_confidence):
    """The original's rule: one face is always kept; of 2+ faces, those above `min_confidence`.

    Faces without a confidence (Azure gives none) are always kept.
    """
    if len(faces) < 2:
        return list(faces)
    return [f for f in faces if f.confidence is None or f.confidence > min_confidence]


def expand_box(face, margin, frame_width, frame_height):
    """(x1, y1, x2, y2) of the face box grown by `margin` x its width/height on each side,
    clipped to the frame. Truncation to int follows the original's arithmetic."""
    margin_x, margin_y = face.width * margin, face.height * margin
    x1 = max(0, int(face.x - margin_x))
    y1 = max(0, int(face.y - margin_y))
    x2 = min(frame_width, int(face.x + face.width + margin_x))
    y2 = min(frame_height, int(face.y + face.height + margin_y))
    return x1, y1, x2, y2


def crop_face(frame, face, margin):
    """The crop of `frame` (H, W, C) around `face` with the margin; may be empty if off-frame."""
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = expand_box(face, margin, width, height)
    return frame[y1:y2, x1:x2]


def crop_kept_faces(detect, frames_rgb, cfg):
    """The one crop loop of stages 01, 04 and 05: for each RGB frame, [(Face, crop)] of the faces
    `detect` (a FaceDetector) found, kept by keep_faces (MULTI_FACE_MIN_CONFIDENCE) and cropped
    with FACE_MARGIN; a box entirely outside the frame gives no crop and is left out. In place of
    a frame's list: the FrameDetectionError the detector returned when it could not search it."""
    if not frames_rgb:
        return []
    results = []
    for frame, found in zip(frames_rgb, detect(frames_rgb)):
        if isinstance(found, FrameDetectionError):
            results.append(found)
            continue
        kept = keep_faces(found, cfg.MULTI_FACE_MIN_CONFIDENCE)
        crops = [(face, crop_face(frame, face, cfg.FACE_MARGIN)) for face in kept]
        results.append([(face, crop) for face, crop in crops if crop.size])
    return results


def face_file_name(frame_file, face_number):
    """`<frame name>-NN.png`: e.g. abc-003.png, face 1 -> abc-003-01.png."""
    return f"{Path(frame_file).stem}-{face_number:02d}.png"


def index_rows(frame_file, faces):
    """Index rows for one frame's kept faces; one row with empty face columns if it has none."""
    if not faces:
        return [{"frame": Path(frame_file).name, "face": "", "file": "", "x": "", "y": "",
                 "width": "", "height": "", "confidence": ""}]
    return [{"frame": Path(frame_file).name, "face": number, "file": face_file_name(frame_file, number),
             "x": f.x, "y": f.y, "width": f.width, "height": f.height,
             "confidence": "" if f.confidence is None else f"{f.confidence:.4f}"}
            for number, f in enumerate(faces)]


def write_index(path, rows):
    """Write the per-video index CSV atomically."""
    write_csv(path, rows, INDEX_COLUMNS)


def read_index(path):
    """Rows of a per-video index as dicts (all values strings)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def find_video_folders(frames_root):
    """The finished per-video folders of stage 00's output, in name order.

    Raises FileNotFoundError with the fix when stage 00 has not been run.
    """
    frames_root = Path(frames_root)
    if not frames_root.is_dir():
        raise FileNotFoundError(f"frames folder {frames_root} does not exist: "
                                "run 00-convert_video_to_image.py first")
    return [frames_root / name for name in sorted(completed_names(frames_root))]


def list_frame_files(frames_dir):
    """The PNG frames of one video folder, in name order."""
    return sorted(p for p in Path(frames_dir).iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))


def load_frame_rgb(path):
    """Read a frame as RGB uint8 (H, W, 3), or return (None, reason) style via ValueError."""
    image = read_image(path)
    if image is None:
        raise ValueError("unreadable image (missing, empty or not a PNG/JPEG)")
    if min(image.shape[:2]) < MIN_FRAME_SIDE:
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} px, too small to hold a face")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def crop_faces_of_video(frames_dir, faces_root, detect, cfg, batch_size=8, on_problem=None):
    """Detect, keep, crop and save the faces of every frame in `frames_dir`.

    Output: `faces_root/<video>/<frame>-NN.png` plus INDEX_FILE, built in a partial folder and
    renamed when complete. `detect(list of RGB frames) -> list of list of Face`. Frames that
    cannot be read are reported through `on_problem(message)` and left out of the index.
    Returns the video's Outcome with counts frames, faces, frames_without_face, unreadable_frames.

    A frame for which `detect` returns a FrameDetectionError is reported through `on_problem`
    too, and the others go on; but then the video is left unfinished (Outcome FAILED, counts
    {"failed_frames": n}, nothing written), so that a rerun retries it instead of recording
    the frame as one without a face.
    """
    frames_dir = Path(frames_dir)
    video = frames_dir.name
    final_dir = Path(faces_root) / video
    if final_dir.is_dir():
        return Outcome(video, ALREADY_DONE)
    frame_files = list_frame_files(frames_dir)
    if not frame_files:
        return Outcome(video, SKIPPED, f"no PNG frames in {frames_dir}")
    partial = start_partial_folder(final_dir)
    counts = {"frames": 0, "faces": 0, "frames_without_face": 0, "unreadable_frames": 0}
    rows = []
    failed_frames = 0
    try:
        for start in range(0, len(frame_files), batch_size):
            batch_files, batch_images = [], []
            for path in frame_files[start:start + batch_size]:
                try:
                    batch_images.append(load_frame_rgb(path))
                    batch_files.append(path)
                except ValueError as error:
                    counts["unreadable_frames"] += 1
                    if on_problem:
                        on_problem(f"{path}: {error}")
            for path, kept in zip(batch_files, crop_kept_faces(detect, batch_images, cfg)):
                if isinstance(kept, FrameDetectionError):
                    failed_frames += 1
                    if on_problem:
                        on_problem(f"{path}: {kept}")
                    continue
                for number, (_, crop) in enumerate(kept):
                    write_png(partial / face_file_name(path, number), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                saved = [face for face, _ in kept]
                rows += index_rows(path, saved)
                counts["frames"] += 1
                counts["faces"] += len(saved)
                counts["frames_without_face"] += not saved
        if failed_frames:
            discard_partial_folder(partial)
            return Outcome(video, FAILED, f"{failed_frames} of {len(frame_files)} frames could not be searched "
                           "for faces; video left unfinished so that a rerun retries it",
                           {"failed_frames": failed_frames})
        if counts["frames"] == 0:
            discard_partial_folder(partial)
            return Outcome(video, SKIPPED, "no frame of this video could be read", counts)
        write_index(partial / INDEX_FILE, rows)
    except BaseException:
        discard_partial_folder(partial)
        raise
    finish_partial_folder(partial, final_dir)
    return Outcome(video, counts=counts)
