"""The record of a scored input, one schema for stage 04's --json and --csv and the web API.

An input record holds an input's status and scores (`input_record`); its `face_scores` hold a
face record per face (`face_records`). The JSON document of --json wraps the input records with
the model and the settings (`results_document`); the web API answers one input record with the
same context fields. The CSV files are the flat view of the same records, under the same
names. docs/results.md describes every field; SCHEMA_VERSION changes when a field's name or
meaning does.
"""

import base64
import json
from pathlib import Path

import cv2

from deepfake_detect import settings
from deepfake_detect.files import write_csv, write_text_atomic
from deepfake_detect.inference.verdicts import score_meaning, verdict_of

SCHEMA_VERSION = 2  # 2: `person` on faces; `fps`, `persons` and `segments` on inputs

# The CSV columns, in the order of the JSON records. A CSV has no document around its rows, so
# each input row repeats the context (threshold, margin, rule) and each face row names its input.
INPUT_COLUMNS = ("input", "type", "status", "frames", "faces", "p_real", "p_fake", "verdict", "p_real_raw",
                 "seconds", "reason", "fps", "persons", "segments", "p_real_by_rule", "threshold", "uncertain_margin", "score_rule")
FACE_FIELDS = ("frame", "face", "person", "x", "y", "width", "height", "detector_confidence", "p_real", "p_fake", "verdict",
               "p_real_raw")
FACE_COLUMNS = ("input", *FACE_FIELDS, "heatmap_peak_x", "heatmap_peak_y")

CROP_DISPLAY_SIDE = 160  # px; crops in data: URIs are shrunk to this


def crop_data_uri(crop_rgb, side=CROP_DISPLAY_SIDE):
    """A face crop (RGB uint8) as a `data:image/jpeg;base64,...` URI, shrunk to at most `side` px."""
    height, width = crop_rgb.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale < 1:
        crop_rgb = cv2.resize(crop_rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                              interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii") if ok else ""


def context_fields(cfg):
    """The settings that give the scores their meaning, shared by every record of one run."""
    return {"threshold": cfg.THRESHOLD, "uncertain_margin": cfg.UNCERTAIN_MARGIN, "score_rule": cfg.VIDEO_SCORE}


def input_record(result, cfg=None):
    """One input's fields (scores as numbers, None when not scored); with `cfg`, the context
    fields too (the CSV's flat rows)."""
    frames, faces = result.counts()
    record = {"input": result.path, "type": result.kind, "status": result.status, "frames": frames,
              "faces": faces, "p_real": result.p_real, "p_fake": result.p_fake, "verdict": result.verdict,
              "p_real_raw": result.p_real_raw,  # before calibration (equal to p_real without a temperature)
              "seconds": round(result.seconds, 3),  # this input's own time, start-up excluded
              "reason": result.reason, "fps": result.fps,
              "persons": [person_record(person) for person in result.persons],
              "segments": [segment_record(segment) for segment in result.segments],
              "p_real_by_rule": dict(result.p_real_by_rule)}
    return {**record, **context_fields(cfg)} if cfg is not None else record


def person_record(person):
    """One person's fields (results.PersonScore): number, faces, first and last seconds, scores."""
    return {"person": person.person, "faces": person.faces,
            "first_seconds": None if person.first_seconds is None else round(person.first_seconds, 3),
            "last_seconds": None if person.last_seconds is None else round(person.last_seconds, 3),
            "p_real": person.p_real, "p_fake": person.p_fake, "verdict": person.verdict}


def segment_record(segment):
    """One fake segment's fields (results.Segment): person, start and end in seconds, P(fake)."""
    return {"person": segment.person, "start": round(segment.start, 3), "end": round(segment.end, 3),
            "p_fake": segment.p_fake, "frames": segment.frames}


def flat_cell(name, value):
    """A CSV cell for a list field: persons as "1:REAL:0.031;2:FAKE:0.912" (person:verdict:P(fake)),
    segments as "2:4.0-9.5:0.910" (person:start-end seconds:P(fake)), p_real_by_rule as
    "mean:0.52;confident:0.52;person_max:0.08;segment:0.08"; "" when empty."""
    if name == "persons":
        return ";".join(f"{p['person']}:{p['verdict']}:{p['p_fake']:.3f}" for p in value)
    if name == "p_real_by_rule":
        return ";".join(f"{rule}:{p_real:.9g}" for rule, p_real in value.items())
    return ";".join(f"{s['person']}:{s['start']:.1f}-{s['end']:.1f}:{s['p_fake']:.3f}" for s in value)


def face_record(face, cfg, heatmap=False, overlay=False, crop=False):
    """One face's fields; with `heatmap` its Grad-CAM peak and map, with `overlay` and `crop` the
    Grad-CAM overlay and the crop as data: URIs (each only when the face has them)."""
    from deepfake_detect.inference.explain import heatmap_peak, overlay_heatmap

    x, y, width, height = (int(v) for v in face.box)
    record = {"frame": face.frame, "face": face.number, "person": face.person, "x": x, "y": y, "width": width, "height": height,
              "detector_confidence": None if face.detector_confidence is None else float(face.detector_confidence),
              "p_real": face.p_real, "p_fake": face.p_fake,
              "verdict": verdict_of(face.p_real, cfg.THRESHOLD, cfg.UNCERTAIN_MARGIN), "p_real_raw": face.p_real_raw}
    if face.heatmap is not None:
        record["heatmap_peak_x"], record["heatmap_peak_y"] = heatmap_peak(face.heatmap)
        if heatmap:
            record["heatmap"] = [[round(float(v), 4) for v in row] for row in face.heatmap]
        if overlay and face.overlay is not None:
            record["overlay"] = face.overlay  # made while scoring, before its crop was dropped
        elif overlay and face.crop is not None:
            record["overlay"] = crop_data_uri(overlay_heatmap(face.crop, face.heatmap))
    if crop and face.crop is not None:
        record["crop"] = crop_data_uri(face.crop)
    return record


def face_records(result, cfg, heatmap=False, overlay=False):
    """A face record per face, and for each frame read without a face one record whose face
    fields are None, in frame order."""
    by_frame = result.faces_by_frame()
    records = []
    for index in result.frame_indices:
        faces = by_frame.get(index, [])
        if not faces:
            records.append({name: index if name == "frame" else None for name in FACE_FIELDS})
        records += [face_record(face, cfg, heatmap, overlay) for face in faces]
    return records


def results_document(results, cfg, model_path, calibration, faces=False, explain=False):
    """The --json document: schema version, model, settings and an input record per result;
    with `faces` or `explain` each record has its face_scores (with `explain`, the heatmaps)."""
    inputs = []
    for result in results:
        record = input_record(result)
        if faces or explain:
            record["face_scores"] = face_records(result, cfg, heatmap=explain, overlay=explain)
        inputs.append(record)
    return {"schema": SCHEMA_VERSION, "model": str(model_path), "score_meaning": score_meaning(cfg),
            "calibration": calibration, **context_fields(cfg), "settings": settings.public_settings(cfg),
            "inputs": inputs}


def csv_cells(record):
    """A record with None as an empty cell and floats to 9 significant digits: the full precision
    of the model's float32 scores, so nothing computed from the file differs from the JSON."""
    return {k: ("" if v is None else f"{v:.9g}" if isinstance(v, float) else flat_cell(k, v)
                if isinstance(v, (list, dict)) else v) for k, v in record.items()}


def write_results_csv(path, results, cfg, faces=False):
    """PATH: an input record per row; with `faces` also PATH's `<stem>-faces.csv`, a face
    record per row. Returns the paths written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, [csv_cells(input_record(r, cfg)) for r in results], INPUT_COLUMNS)
    written = [path]
    if faces:
        faces_path = path.with_name(f"{path.stem}-faces{path.suffix or '.csv'}")
        rows = [csv_cells({"input": r.path, **face}) for r in results for face in face_records(r, cfg)]
        write_csv(faces_path, rows, FACE_COLUMNS)
        written.append(faces_path)
    return written


def write_results_json(path, document):
    """Write a results_document to `path` (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(document, indent=2, default=str) + "\n")
    return path
