"""Stage 05's face extraction: labelled datasets -> face crops, extracted once into a cache.

Frames and faces go through exactly the training stages' code and settings: frames by
frames.iter_kept_frames (FRAMES_PER_SECOND, RESIZE_RULES, as stage 00), faces by MTCNN as the
original ran it (faces/mtcnn), kept and cropped by inference.scoring.find_face_crops (faces/crops' one crop loop)
(keep_faces, crop_face with FACE_MARGIN, as stage 01a and stage 04). The crops are cached, so
every further model scored on the same dataset costs only its own time (evaluation/scores.py):

    EVAL_CACHE_DIR/<dataset name>-<key>/        key: 12 hex digits of a SHA-256 of face_cache_key()
        key.json                                what the key was made of (folder, settings, detector, perturbation)
        <video>/faces.json                      status, frames read, reason, one entry per kept face,
                                                and the video file's size and mtime when it was read
        <video>/<video>-<frame>-<NN>.png        the crops (BGR PNG, the size MTCNN's box gave)
        .<video>.partial-<host>-<pid>/          a video being extracted (cleared by the next run)

A video's folder appears only once all its crops are written (files.start_partial_folder), so
a killed run resumes where it stopped. Changing any setting in EXTRACTION_SETTINGS, the dataset
folder, the detector or the perturbation gives another key, hence a fresh cache, never stale crops.
Within a cache, a video counts as cached only while its file has the size and modification time
recorded in its faces.json (as stage 03's crop cache keys on them): a replaced video is extracted
again, alone.

Perturbations (the robustness sweep, evaluation/robustness.py) plug in here: extract_faces takes
an optional perturb.Perturbation. A video perturbation (`applies_to_video`) re-encodes each
video before frames are read; a frame perturbation changes each kept, resized frame before face
detection. Its `cache_tag` is part of the cache key, so perturbed crops are cached apart.
"""

import hashlib
import json
import os
import socket
import types
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from deepfake_detect.datasets.discovery import SPLITS, read_dataset
from deepfake_detect.evaluation.perturb import Perturbation
from deepfake_detect.files import (PARTIAL_MARK, discard_partial_folder, finish_partial_folder, read_image,
                                   remove_stale_partials, start_partial_folder, write_png, write_text_atomic)
from deepfake_detect.media.budget import VideoError
from deepfake_detect.media.frames import iter_kept_frames
from deepfake_detect.inference.results import NO_FACE, SCORED, UNREADABLE
from deepfake_detect.jobs.console import warn
from deepfake_detect.jobs.outcome import ALREADY_DONE, DONE, FAILED, SKIPPED, Outcome
from deepfake_detect.jobs.pool import run_jobs
from deepfake_detect.faces.mtcnn import (count_detector_threads, count_detector_workers, load_worker_detector,
                                            start_detector_worker)

# The settings that decide which crops a video gives; all of them are in the cache key.
EXTRACTION_SETTINGS = ("FRAMES_PER_SECOND", "RESIZE_RULES", "FACE_MARGIN", "MULTI_FACE_MIN_CONFIDENCE")
# The detector's identity, in the key too: other steps or weights would find other faces.
DETECTOR_ID = "mtcnn-0.1-steps"
VIDEO_RECORD = "faces.json"  # per video: its status (SCORED, NO_FACE, UNREADABLE), frames, reason, faces


class DatasetError(ValueError):
    """A --dataset cannot be evaluated; the message names the folder and the fix."""


@dataclass(frozen=True)
class EvalDataset:
    """A labelled dataset given as --dataset NAME=FOLDER[:SPLIT], with its videos (dataset.Video)."""

    name: str
    folder: Path
    videos: tuple
    problems: tuple = ()  # lines about videos left out while reading the layout
    layout: str = ""      # dataset.read_dataset's name for the folder's layout
    split: str | None = None          # the official split selected with :SPLIT, None: every video
    split_source: str = "all videos"  # where that split comes from (its list file), for the report


@dataclass(frozen=True)
class ExtractionJob:
    """One video to extract into `cache_dir` (one job of jobs.pool.run_jobs; `name` orders the outcomes)."""

    name: str
    video: object
    cache_dir: Path
    perturbation: Perturbation | None = None  # None: the clean faces


@dataclass
class Extraction:
    """What extract_faces did: the cache folder and each video's Outcome."""

    cache_dir: Path
    outcomes: list = field(default_factory=list)

    @property
    def extracted(self):
        """Videos extracted by this call (not found in the cache); failed ones are not."""
        return sum(o.status in (DONE, SKIPPED) for o in self.outcomes)

    @property
    def reused(self):
        return sum(o.status == ALREADY_DONE for o in self.outcomes)


# ------------------------------------------------------------------ datasets

def parse_dataset_argument(text):
    """'NAME=FOLDER[:SPLIT]' -> (NAME, Path(FOLDER), SPLIT or None); a bare FOLDER is named after
    its last part. SPLIT (train, val, test) selects a dataset's official split."""
    name, separator, folder = text.partition("=")
    if not separator:
        name, folder = None, text
    head, colon, split = folder.rpartition(":")
    if colon and split in SPLITS:
        folder = head
    elif colon and split and not any(c in split for c in "/\\") and not Path(folder).exists():
        raise DatasetError(f"--dataset {text!r}: split {split!r} is not one of {', '.join(SPLITS)}")
    else:
        split = None
    name = Path(folder).name if name is None else name
    if not name or not folder or "/" in name or "\\" in name:
        raise DatasetError(f"--dataset {text!r}: write NAME=FOLDER[:SPLIT], e.g. dfdc=/data/dfdc_train_part_0 "
                           "or ffpp=/data/FF++:test")
    return name, Path(folder), split


def select_split(listing, split, name):
    """(videos, source) of the official `split` of a dataset.Listing; every video with source
    "all videos" when `split` is None. Raises DatasetError when no list gives that split."""
    if split is None:
        return listing.videos, "all videos"
    if split not in listing.split_sources:
        given = ", ".join(listing.split_sources) or "none"
        raise DatasetError(f"dataset {name}: {listing.layout} in this folder has no official {split} split "
                           f"(official splits found: {given}; lists are looked for in the folder and in "
                           f"SPLIT_LISTS_DIR): drop ':{split}' to score every video")
    return [v for v in listing.videos if v.split == split], listing.split_sources[split]


def load_dataset(name, folder, cfg, split=None):
    """The labelled videos of `folder`, read like stage 00 reads VIDEOS_DIR (any layout of
    dataset.read_dataset), only those of the official `split` when given. Raises DatasetError when
    the folder is missing, has no video, or gives no labels (a plain folder of videos cannot be
    evaluated), or has no official list for `split`."""
    dataset_cfg = types.SimpleNamespace(**vars(cfg))
    dataset_cfg.VIDEOS_DIR, dataset_cfg.METADATA_FILE = Path(folder), Path(folder) / "metadata.json"
    try:
        listing = read_dataset(dataset_cfg)
    except FileNotFoundError:
        raise DatasetError(f"dataset {name}: folder {folder} does not exist") from None
    videos, source = select_split(listing, split, name)
    problems = listing.problems
    if not videos:
        raise DatasetError(f"dataset {name}: no labelled video in {folder} " + (f"({problems[0]})" if problems else
                           f"(video files ending {', '.join(cfg.VIDEO_EXTENSIONS)})"))
    unlabelled = [v for v in videos if v.label is None]
    if unlabelled:
        raise DatasetError(f"dataset {name}: {folder} gives no labels (videos without one: {len(unlabelled):,}): "
                           f"add a DFDC metadata.json or put the videos in real/ and fake/ subfolders")
    return EvalDataset(name, Path(folder), tuple(videos), tuple(problems), listing.layout, split, source)


def load_datasets(cfg, arguments):
    """[EvalDataset] for each --dataset NAME=FOLDER[:SPLIT]. Raises DatasetError."""
    datasets = [load_dataset(name, folder, cfg, split)
                for name, folder, split in map(parse_dataset_argument, arguments)]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise DatasetError(f"--dataset names must differ: {', '.join(names)}")
    return datasets


# ------------------------------------------------------------------ the cache

def face_cache_key(dataset, cfg, perturbation=None):
    """What decides a dataset's crops: its folder, EXTRACTION_SETTINGS, the detector, the perturbation."""
    from importlib.metadata import version

    key = {"dataset": dataset.name, "folder": str(Path(dataset.folder).resolve()),
           "settings": {name: _plain(getattr(cfg, name)) for name in EXTRACTION_SETTINGS},
           "detector": f"{DETECTOR_ID} on mtcnn {version('mtcnn')}",
           "perturbation": getattr(perturbation, "cache_tag", None)}
    if dataset.layout.startswith("FaceForensics++"):
        # One FF++ folder holds each video at several compressions under the same name: the
        # level read (in the layout's name) decides the crops. Other layouts' keys stay as they were.
        key["layout"] = dataset.layout
    return key


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def cache_folder(dataset, cfg, cache_root=None, perturbation=None):
    """EVAL_CACHE_DIR/<dataset name>-<12 hex digits of the key>[-<perturbation tag>]."""
    key = face_cache_key(dataset, cfg, perturbation)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    tag = f"-{key['perturbation']}" if key["perturbation"] else ""
    return Path(cache_root or cfg.EVAL_CACHE_DIR) / f"{dataset.name}-{digest}{tag}"


def read_video_record(cache_dir, video_name):
    """faces.json of one cached video, or None when the video is not in the cache."""
    path = Path(cache_dir) / video_name / VIDEO_RECORD
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def load_crops(cache_dir, record):
    """The RGB crops of one cached video, in faces.json order. Raises OSError on a missing one."""
    crops = []
    for entry in record["faces"]:
        image = read_image(Path(cache_dir) / record["video"] / entry["file"])
        if image is None:
            raise OSError(f"cached crop {entry['file']} of {record['video']} is missing or unreadable: "
                          f"delete {Path(cache_dir) / record['video']} to extract it again")
        crops.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return crops


# ------------------------------------------------------------------ extraction

def extract_video(job, cfg):
    """Find, keep and crop one video's faces into job.cache_dir/<video>/; return its Outcome.

    An unreadable video is cached as such (status "unreadable", Outcome skipped with the
    reason) so that further models do not try it again; a video whose frames the detector
    could not search is left out of the cache (failed), so that a rerun retries it.
    """
    from deepfake_detect.inference.scoring import find_face_crops

    video, perturbation = job.video, job.perturbation
    final_dir = Path(job.cache_dir) / video.name
    if is_cached(job.cache_dir, video):
        return Outcome(video.name, ALREADY_DONE)
    stamp = source_stamp(video.path)  # before reading: a file replaced meanwhile is not taken for this one
    detector = load_worker_detector()
    partial = start_partial_folder(final_dir)
    try:
        source = video.path
        if perturbation is not None and perturbation.applies_to_video:
            source = partial / ".reencoded.mp4"
            perturbation.reencode(video.path, source)
        frames, faces, unsearched, batch, error = [], [], [], [], None
        try:
            # MAX_VIDEO_PIXELS: a video announcing huge frames is cached as unreadable, with the reason
            for index, frame in iter_kept_frames(source, cfg.RESIZE_RULES, cfg.FRAMES_PER_SECOND,
                                                 max_pixels=cfg.MAX_VIDEO_PIXELS):
                if perturbation is not None and not perturbation.applies_to_video:
                    frame = perturbation.apply(frame, index, video.name)
                frames.append(index)
                batch.append((index, frame))
                if len(batch) >= cfg.MTCNN_BATCH_SIZE:
                    faces += find_face_crops(detector, batch, cfg, unsearched)
                    batch = []
        except VideoError as problem:
            error = str(problem)
        faces += find_face_crops(detector, batch, cfg, unsearched)
        if unsearched:
            discard_partial_folder(partial)
            return Outcome(video.name, FAILED, f"{len(unsearched)} of {len(frames)} frames could not be "
                           "searched for faces; left out of the cache so that a rerun retries it")
        record = write_video_record(partial, video, frames, faces, error, stamp)
        Path(partial / ".reencoded.mp4").unlink(missing_ok=True)
    except BaseException:
        discard_partial_folder(partial)
        raise
    retire_outdated(final_dir)
    finish_partial_folder(partial, final_dir)
    status = SKIPPED if record["status"] == UNREADABLE else DONE
    return Outcome(video.name, status, record["reason"] if status == SKIPPED else "",
                   {"frames": len(frames), "faces": len(faces)})


def source_stamp(path):
    """{"size", "mtime_ns"} of a video file: what tells a cached video from a replaced one."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_cached(cache_dir, video):
    """True when `video`'s crops are in `cache_dir` and were made from the file as it is now
    (same size and modification time). A record without a stamp (older cache) is not trusted."""
    record = read_video_record(cache_dir, video.name)
    return record is not None and record.get("source") == source_stamp(video.path)


def retire_outdated(final_dir):
    """Delete the cached folder of a video whose file was replaced, first renamed to a partial
    name of this process, so that a kill midway leaves a folder the next run clears."""
    final_dir = Path(final_dir)
    if not final_dir.exists():
        return
    aside = final_dir.with_name(f".{final_dir.name}-replaced{PARTIAL_MARK}{socket.gethostname()}-{os.getpid()}")
    os.replace(final_dir, aside)
    discard_partial_folder(aside)


def write_video_record(folder, video, frames, faces, error, stamp=None):
    """Write the crops (PNG) and faces.json of one video into `folder`; return the record.
    `stamp`: source_stamp of the file read, kept as "source"."""
    entries = []
    for face in faces:
        file_name = f"{video.name}-{face.frame:05d}-{face.number:02d}.png"
        write_png(folder / file_name, cv2.cvtColor(face.crop, cv2.COLOR_RGB2BGR))
        x, y, width, height = face.box
        entries.append({"frame": face.frame, "face": face.number, "file": file_name, "x": int(x), "y": int(y),
                        "width": int(width), "height": int(height),
                        "detector_confidence": None if face.detector_confidence is None
                        else float(face.detector_confidence)})
    if error and not frames:
        status, reason = UNREADABLE, error
    elif not faces:
        status, reason = NO_FACE, f"no face found in {len(frames)} frames" + (f" ({error})" if error else "")
    else:
        status, reason = SCORED, f"stopped early: {error}" if error else ""
    record = {"video": video.name, "status": status, "reason": reason, "frames": frames, "faces": entries,
              "source": stamp}
    write_text_atomic(folder / VIDEO_RECORD, json.dumps(record, indent=1) + "\n")
    return record


def extract_faces(dataset, cfg, cache_root=None, perturbation=None, workers=None, progress=True):
    """Make sure every video of `dataset` has its crops in the cache; return an Extraction.

    Videos already in the cache folder for these settings (and perturbation) are not touched.
    One job per video through jobs.pool.run_jobs, so any engine it offers applies here too.
    `workers`: processes (default MTCNN_WORKERS, else faces.mtcnn.count_detector_workers's
    one per CORES_PER_DETECTOR cores).
    `progress=False`: no progress bar (the robustness sweep shows one over its points).
    """
    folder = cache_folder(dataset, cfg, cache_root, perturbation)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "key.json").is_file():
        write_text_atomic(folder / "key.json", json.dumps(face_cache_key(dataset, cfg, perturbation), indent=2) + "\n")
    remove_stale_partials(folder)
    jobs = [ExtractionJob(video.name, video, folder, perturbation) for video in dataset.videos]
    todo = [job for job in jobs if not is_cached(folder, job.video)]
    workers = count_detector_workers(workers, cfg)
    done = run_jobs(extract_video, todo, cfg, workers, desc=f"stage 05 faces of {dataset.name}",
                    initializer=start_detector_worker, initargs=(count_detector_threads(workers),),
                    progress=progress) if todo else []
    done_names = {outcome.name for outcome in done}
    already = [Outcome(job.name, ALREADY_DONE) for job in jobs if job.name not in done_names]
    return Extraction(folder, done + already)


def extract_datasets(datasets, cfg, workers=None):
    """{dataset name: Extraction} of extract_faces on each dataset, in turn, after warning about the
    videos its layout left out."""
    extractions = {}
    for dataset in datasets:
        for problem in dataset.problems:
            warn(f"{dataset.name}: {problem}")
        extractions[dataset.name] = extract_faces(dataset, cfg, workers=workers)
    return extractions
