"""Boxes and P(fake) drawn on a scored input's frames, written as a PNG or an mp4 (--annotate),
with a video's P(fake) timeline beside it. Frames are drawn and written one at a time, read
again from the input's file when the scorer kept none (the command line), so memory stays flat.
"""

import os
from pathlib import Path

import cv2

from deepfake_detect.files import write_png
from deepfake_detect.inference.results import IMAGE, VIDEO
from deepfake_detect.inference.verdicts import verdict_of


def face_colour(p_real, threshold):
    """BGR box colour: green for a face that reads real, red for one that reads fake."""
    return (60, 180, 60) if p_real >= threshold else (40, 40, 220)


def annotate_frame(frame_bgr, faces, threshold):
    """A copy of the frame with each face's box and "person 2: FAKE P(fake) 0.83" drawn on it."""
    canvas = frame_bgr.copy()
    scale = max(0.4, canvas.shape[1] / 1000)
    thickness = max(1, round(2 * scale))
    for face in faces:
        x, y, width, height = face.box
        colour = face_colour(face.p_real, threshold)
        cv2.rectangle(canvas, (x, y), (x + width, y + height), colour, thickness)
        who = f"person {face.person}: " if face.person else ""
        label = f"{who}{verdict_of(face.p_real, threshold)} P(fake) {face.p_fake:.2f}"
        (text_width, text_height), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, thickness)
        top = max(0, y - text_height - base - 4)
        cv2.rectangle(canvas, (x, top), (x + text_width + 4, top + text_height + base + 4), colour, -1)
        cv2.putText(canvas, label, (x + 2, top + text_height + 2), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return canvas


def annotated_frames(result, threshold):
    """[(frame index, annotated BGR frame)] for a Result scored with keep_frames=True."""
    return list(iter_annotated(result, sorted((result.frames_bgr or {}).items()), threshold))


def iter_annotated(result, frames, threshold, margin=None):
    """Yield (frame index, annotated BGR frame) for each (index, BGR frame) of `frames`, one at a
    time; with `margin` (FACE_MARGIN) each face's Grad-CAM heatmap is painted under its box."""
    by_frame = result.faces_by_frame()
    for index, frame in frames:
        faces = by_frame.get(index, [])
        if margin is not None and faces:
            from deepfake_detect.inference.explain import paint_heatmaps

            frame = paint_heatmaps(frame, faces, margin)
        yield index, annotate_frame(frame, faces, threshold)


def result_frames(result, cfg):
    """(frame index, resized BGR frame) of a scored input, one at a time: its kept frames, or
    else read again from its file by the reader that scored it (media/reading.py: the same
    FRAMES_PER_SECOND and RESIZE_RULES, so the same frames). Reading again costs a second decode
    but holds one frame at a time, however long the video (the command line keeps none)."""
    if result.frames_bgr is not None:
        yield from sorted(result.frames_bgr.items())
        return
    from deepfake_detect.media.budget import VideoError
    from deepfake_detect.media.reading import iter_media_frames

    try:
        yield from iter_media_frames(result.path, result.kind, cfg)
    except VideoError:
        return  # where scoring's read stopped too (its reason says "stopped early")


def write_annotated(result, out_path, threshold, frames_per_second=1, frames=None):
    """Write the annotated image (PNG) or video (mp4v, one kept frame per 1/fps s) to out_path,
    frame by frame. `frames`: (index, annotated BGR frame) pairs (default: annotated_frames).

    Written under a temporary name and renamed, so a killed run leaves no half file.
    Returns out_path, or None when the result has no frames.
    """
    frames = iter(annotated_frames(result, threshold) if frames is None else frames)
    first = next(frames, None)
    if first is None:
        return None
    out_path = Path(out_path)
    if result.kind == IMAGE:
        write_png(out_path, first[1])
        return out_path
    temporary = out_path.with_name(f".{out_path.stem}.tmp-{os.getpid()}{out_path.suffix}")
    height, width = first[1].shape[:2]
    writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), frames_per_second, (width, height))
    try:
        if not writer.isOpened():
            raise OSError(f"OpenCV cannot write {out_path}")
        writer.write(first[1])
        for _, frame in frames:
            writer.write(frame)
    except BaseException:
        writer.release()
        temporary.unlink(missing_ok=True)
        raise
    writer.release()
    os.replace(temporary, out_path)
    return out_path


def annotation_path(out_dir, result, used):
    """`out_dir/<name>-annotated.png|.mp4`, numbered when two inputs share a name; `used` is the
    set of paths already given out, and gets this one."""
    stem = Path(result.path).stem
    suffix = ".mp4" if result.kind == VIDEO else ".png"
    candidate, number = Path(out_dir) / f"{stem}-annotated{suffix}", 1
    while candidate in used:
        number += 1
        candidate = Path(out_dir) / f"{stem}-{number}-annotated{suffix}"
    used.add(candidate)
    return candidate


def write_annotations(result, path, cfg, explain):
    """The annotated image or video at `path` (heatmaps under the boxes with `explain`) and,
    for a video, its P(fake) timeline beside it as `<name>-timeline.png`."""
    frames = iter_annotated(result, result_frames(result, cfg), cfg.THRESHOLD,
                            cfg.FACE_MARGIN if explain else None)
    write_annotated(result, path, cfg.THRESHOLD, cfg.FRAMES_PER_SECOND, frames)
    if result.kind == VIDEO:
        from deepfake_detect.inference.records import segment_record
        from deepfake_detect.inference.timeline import frame_series, person_series, segment_spans, write_timeline_png

        write_timeline_png(frame_series(result), cfg.THRESHOLD,
                           path.with_name(path.name.replace("-annotated.mp4", "-timeline.png")),
                           title=f"{Path(result.path).name}: P(fake) per frame", persons=person_series(result),
                           spans=segment_spans([segment_record(s) for s in result.segments], result.fps))
