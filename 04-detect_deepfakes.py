"""Stage 04: score new videos and images with a trained model, from the shell or a web page.

    videos, images, folders  +  RUNS_DIR/<run>/model.keras  ->  a table (and --csv / --json / --annotate)

    python 04-detect_deepfakes.py clip.mp4 photo.jpg folder/ [--run NAME_OR_PATH] [--details]
                                  [--csv scores.csv] [--json scores.json] [--annotate out/] [--explain]
    python 04-detect_deepfakes.py clip.mp4 --run runs/NAME/export/model_float32.tflite   # or .../saved_model
    python 04-detect_deepfakes.py --serve [--host 127.0.0.1] [--port 8000]   # the web page
    python 04-detect_deepfakes.py folder/ --ray [ADDRESS]     # scored by Ray actors on a cluster

Frames, faces and input scaling are exactly those of stages 00, 01a and 03 (shared code):
FRAMES_PER_SECOND frames per second, resized by RESIZE_RULES (images too, as one frame), MTCNN
faces kept and cropped with FACE_MARGIN, resized to the model's input size and scaled to [0, 1].
The model gives each face P(real) (= P(pristine)); P(fake) = 1 - P(real) is shown beside it. An
input's score combines its faces by VIDEO_SCORE ("mean", or "confident": the DFDC winner's rule)
and the verdict is FAKE when that P(real) is below THRESHOLD, else REAL, but UNCERTAIN when it
lies within UNCERTAIN_MARGIN of THRESHOLD (between 0.4 and 0.6 by default). The model is the
newest RUNS_DIR/<run>/model.keras unless --run says otherwise. Prints one row per input (scores made
up for illustration; long reasons cut):

    input                type   status       frames  faces  P(real)  P(fake)  verdict
    vids/abofeumbvv.mp4  video  scored           11      5    0.214    0.786  FAKE
    vids/abqwwspghj.mp4  video  scored           11     11    0.577    0.423  UNCERTAIN
    hopper.png           image  scored            1      1    0.912    0.088  REAL
    wall.png             image  no face           1      0        -        -  -          no face found in the image
    notes.txt            -      unsupported       -      -        -        -  -          not an image or video (...)
    P(real) = the model's probability that the faces are real (pristine); P(fake) = 1 - P(real). ...
    stage 04 finished in 12.0 s: 5 inputs (3 scored, 2 not scored)

--explain adds a Grad-CAM heatmap per face (explain.py) to --annotate, --details and --json;
--annotate also writes each video's P(fake) per frame as <name>-timeline.png (timeline.py).
Inputs without a score (no face, unreadable, unsupported) say why and carry no score.
Exit status: 0 every input scored, 1 some not, 2 usage, settings or model error.
"""

import json
import sys
from pathlib import Path

from tqdm import tqdm

from deepfake_detect import settings
from deepfake_detect.calibration import run_temperature
from deepfake_detect.inference.annotate import write_annotated
from deepfake_detect.inference.media import list_inputs
from deepfake_detect.inference.results import FAILED, SCORED, VIDEO, Result
from deepfake_detect.inference.scoring import ModelError, Scorer, find_run_model
from deepfake_detect.inference.verdicts import score_meaning
from deepfake_detect.export import is_exported
from deepfake_detect.files import write_csv, write_text_atomic
from deepfake_detect.jobs.console import Timer, warn
from deepfake_detect.jobs.outcome import Outcome

SUMMARY_COLUMNS = ("input", "type", "status", "frames", "faces", "p_real", "p_fake", "verdict",
                   "threshold", "score_rule", "reason", "seconds", "p_real_raw")
FACE_COLUMNS = ("input", "frame", "face", "x", "y", "width", "height", "detector_confidence",
                "p_real", "p_fake", "p_real_raw")
TABLE_HEADER = ("input", "type", "status", "frames", "faces", "P(real)", "P(fake)", "verdict")


def format_score(value):
    return "-" if value is None else f"{value:.3f}"


def table_row(result, name_width):
    """One fixed-width line of the table for a Result."""
    frames, faces = counts_of(result)
    cells = (f"{result.path:<{name_width}}", f"{result.kind or '-':<5}", f"{result.status:<11}",
             f"{'-' if frames is None else frames:>6}", f"{'-' if faces is None else faces:>5}",
             f"{format_score(result.p_real):>7}", f"{format_score(result.p_fake):>7}",
             f"{result.verdict or '-':<9}")
    line = "  ".join(cells)
    return f"{line}  {result.reason}" if result.reason else line.rstrip()


def table_header(name_width):
    widths = (name_width, 5, 11, 6, 5, 7, 7, 9)
    aligned = [f"{title:>{w}}" if title in ("frames", "faces", "P(real)", "P(fake)") else f"{title:<{w}}"
               for title, w in zip(TABLE_HEADER, widths)]
    return "  ".join(aligned).rstrip()


def detail_lines(result):
    """Per-frame lines under a row (--details): every frame read, with its faces' scores."""
    by_frame = {}
    for face in result.faces:
        by_frame.setdefault(face.frame, []).append(face)
    lines = []
    for index in result.frame_indices:
        faces = by_frame.get(index, [])
        where = f"frame {index}" if result.kind == VIDEO else "image"
        if not faces:
            lines.append(f"    {where}: no face")
        for face in faces:
            x, y, width, height = face.box
            lines.append(f"    {where} face {face.number}: box {width}x{height} at ({x},{y})  "
                         f"P(real) {face.p_real:.3f}  P(fake) {face.p_fake:.3f}" + gradcam_note(face))
    return lines


def gradcam_note(face):
    """'  Grad-CAM peak at 40%,70% of the crop' for a face with a heatmap (--explain), else ''."""
    if face.heatmap is None:
        return ""
    from deepfake_detect.inference.explain import heatmap_peak

    peak_x, peak_y = heatmap_peak(face.heatmap)
    return f"  Grad-CAM peak at {peak_x:.0%},{peak_y:.0%} (x,y) of the crop"


def gradcam_records(result):
    """--explain in the JSON: per face its heatmap's peak and the overlay as a data: URI."""
    from deepfake_detect.inference.explain import heatmap_peak, overlay_heatmap
    from deepfake_detect.inference.web import crop_data_uri

    return [{"frame": face.frame, "face": face.number,
             "peak": dict(zip(("x", "y"), heatmap_peak(face.heatmap))),
             "heatmap": [[round(float(v), 4) for v in row] for row in face.heatmap],
             "overlay": crop_data_uri(overlay_heatmap(face.crop, face.heatmap))}
            for face in result.faces if face.heatmap is not None and face.crop is not None]


def counts_of(result):
    """(frames read, faces scored), None for both when nothing could be read."""
    if not result.frame_indices:
        return None, None
    return len(result.frame_indices), len(result.faces)


def summary_record(result, cfg):
    """The CSV/JSON fields of one input (scores as numbers, empty/None when not scored)."""
    frames, faces = counts_of(result)
    return {
        "input": result.path, "type": result.kind, "status": result.status,
        "frames": frames, "faces": faces,
        "p_real": result.p_real, "p_fake": result.p_fake, "verdict": result.verdict,
        "threshold": cfg.THRESHOLD, "score_rule": cfg.VIDEO_SCORE, "reason": result.reason,
        "seconds": round(result.seconds, 3),  # this input's own time, start-up excluded
        "p_real_raw": result.p_real_raw,  # before calibration (equal to p_real without a temperature)
    }


def face_records(result):
    """One record per face, plus one with empty face fields for each frame without a face."""
    by_frame = {}
    for face in result.faces:
        by_frame.setdefault(face.frame, []).append(face)
    records = []
    for index in result.frame_indices:
        faces = by_frame.get(index, [])
        if not faces:
            records.append({"input": result.path, "frame": index, "face": None, "x": None, "y": None,
                            "width": None, "height": None, "detector_confidence": None,
                            "p_real": None, "p_fake": None, "p_real_raw": None})
        for face in faces:
            x, y, width, height = face.box
            records.append({"input": result.path, "frame": index, "face": face.number, "x": x, "y": y,
                            "width": width, "height": height,
                            "detector_confidence": face.detector_confidence,
                            "p_real": face.p_real, "p_fake": face.p_fake, "p_real_raw": face.p_real_raw})
    return records


def csv_cells(record):
    """A record with None as an empty cell and floats to 9 significant digits: the full precision
    of the model's float32 scores, so nothing computed from the file differs from the JSON."""
    return {k: ("" if v is None else f"{v:.9g}" if isinstance(v, float) else v) for k, v in record.items()}


def write_results_csv(path, results, cfg, details):
    """PATH: one row per input; with details also PATH's `<stem>-faces.csv`, one row per face.
    Returns the paths written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, [csv_cells(summary_record(r, cfg)) for r in results], SUMMARY_COLUMNS)
    written = [path]
    if details:
        faces_path = path.with_name(f"{path.stem}-faces{path.suffix or '.csv'}")
        write_csv(faces_path, [csv_cells(f) for r in results for f in face_records(r)], FACE_COLUMNS)
        written.append(faces_path)
    return written


def write_results_json(path, results, cfg, model_path, details, explain=False):
    """Everything in one JSON file: model, settings, score meaning, one object per input."""
    inputs = []
    for result in results:
        record = summary_record(result, cfg)
        if details:
            record["faces_detail"] = face_records(result)
        if explain:
            record["gradcam"] = gradcam_records(result)
        inputs.append(record)
    document = {"model": str(model_path), "score_meaning": score_meaning(cfg),
                "calibration": run_temperature(model_path, cfg)[1],
                "threshold": cfg.THRESHOLD, "score_rule": cfg.VIDEO_SCORE,
                "settings": settings.public_settings(cfg), "inputs": inputs}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(document, indent=2, default=str) + "\n")
    return path


def annotation_path(out_dir, result, used):
    """`out_dir/<name>-annotated.png|.mp4`, numbered when two inputs share a name."""
    stem = Path(result.path).stem
    suffix = ".mp4" if result.kind == VIDEO else ".png"
    candidate, number = Path(out_dir) / f"{stem}-annotated{suffix}", 1
    while candidate in used:
        number += 1
        candidate = Path(out_dir) / f"{stem}-{number}-annotated{suffix}"
    used.add(candidate)
    return candidate


def write_annotations(result, path, cfg, explain):
    """The annotated image or video at `path` (heatmaps under the boxes with --explain) and,
    for a video, its P(fake) timeline beside it as `<name>-timeline.png`."""
    if explain:
        from deepfake_detect.inference.explain import paint_result_frames

        paint_result_frames(result, cfg.FACE_MARGIN)
    write_annotated(result, path, cfg.THRESHOLD, cfg.FRAMES_PER_SECOND)
    if result.kind == VIDEO:
        from deepfake_detect.inference.timeline import frame_series, write_timeline_png

        write_timeline_png(frame_series(result.frame_indices, result.faces), cfg.THRESHOLD,
                           path.with_name(path.name.replace("-annotated.mp4", "-timeline.png")),
                           title=f"{Path(result.path).name}: P(fake) per frame")


def exit_code(results):
    """0 when every input was scored, else 1."""
    return 0 if results and all(r.status == SCORED for r in results) else 1


# --ray: each Ray actor's scorer, loaded once by start_scorer (the model and MTCNN take seconds).
_scorer, _keep_frames, _explain = None, False, False


def start_scorer(model_path, keep_frames, explain):
    """Ray actor set-up: load the model and MTCNN once for this actor."""
    global _scorer, _keep_frames, _explain
    _scorer, _keep_frames, _explain = Scorer(model_path), keep_frames, explain


def score_input(path, cfg):
    """Ray job: one input's Result, scored by this actor's scorer."""
    return _scorer.score_file(path, cfg, keep_frames=_keep_frames, explain=_explain)


def score_inputs(files, cfg, scorer, model_path, keep_frames, explain):
    """Results of `files`, in order: scored here by `scorer`, or with --ray by Ray actors that each
    load the model once (one per RAY_CPUS_PER_ACTOR CPUs or RAY_GPUS_PER_ACTOR GPUs)."""
    if not cfg.RAY_ADDRESS:
        yield from scorer.score_files(files, cfg, keep_frames=keep_frames, explain=explain)
        return
    from deepfake_detect.jobs import ray_cluster

    results = ray_cluster.run_on_cluster(score_input, files, cfg, start_scorer, (str(model_path), keep_frames, explain),
                                  ordered=True)
    for path, result in zip(files, results):
        yield Result(str(path), status=FAILED, reason=result.reason) if isinstance(result, Outcome) else result


def parse_args(argv=None):
    parser = settings.new_parser(__doc__)
    parser.add_argument("inputs", nargs="*", type=Path, help="video files, image files and folders")
    parser.add_argument("--run", default=None, metavar="PATH_OR_NAME",
                        help="run folder, run name in RUNS_DIR or a .keras file (default: newest run)")
    parser.add_argument("--details", action="store_true", help="also show and write per-frame and per-face scores")
    parser.add_argument("--csv", type=Path, metavar="PATH", help="write the rows to this CSV file")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the rows to this JSON file")
    parser.add_argument("--annotate", type=Path, metavar="DIR",
                        help="write each input with its face boxes and scores drawn to this folder")
    parser.add_argument("--explain", action="store_true",
                        help="Grad-CAM heatmap per face (where the evidence for fake lies) in --annotate, "
                             "--details and --json; needs a .keras model")
    parser.add_argument("--serve", action="store_true", help="start the local web page instead")
    parser.add_argument("--host", default=None, help="web page address (default: config WEB_HOST)")
    parser.add_argument("--port", type=int, default=None, help="web page port (default: config WEB_PORT)")
    settings.add_ray_argument(parser)
    args = parser.parse_args(argv)
    if not args.serve and not args.inputs:
        parser.error("give videos, images or folders to score, or --serve for the web page")
    if args.serve and args.inputs:
        parser.error("--serve scores what is uploaded to the page: give it no files")
    return args


def detect_files(args, cfg, scorer, model_path=None):
    """Score every input of `args` with `scorer` (with --ray: Ray actors loading `model_path`), print
    the table, write the files; return exit status."""
    model_path = model_path or scorer.model_path
    files, ignored = list_inputs(args.inputs, cfg.VIDEO_EXTENSIONS, exclude=args.annotate)
    if ignored:
        example = ", ".join(p.name for p in ignored[:3])
        warn(f"ignored {len(ignored):,} file{'s' * (len(ignored) != 1)} in the folders that are "
             f"not images or videos by name ({example}{', ...' if len(ignored) > 3 else ''})")
    if not files:
        print("error: no image or video files in " + ", ".join(map(str, args.inputs)), file=sys.stderr)
        return 2
    if args.annotate:
        args.annotate.mkdir(parents=True, exist_ok=True)
        settings.save_settings(cfg, args.annotate, "04")
    if args.explain and is_exported(model_path):
        warn(f"--explain: {model_path} is an exported model; Grad-CAM needs the run's model.keras, "
             f"so the inputs are scored without heatmaps")
    elif args.explain and scorer is not None:
        scorer.explain_faces([])  # builds and traces Grad-CAM before the first input, not during it
    timer = Timer()
    name_width = min(60, max(len("input"), *(len(str(p)) for p in files)))
    tqdm.write(table_header(name_width))
    results, used_names = [], set()
    bar = tqdm(total=len(files), desc="stage 04 inputs", unit="input", dynamic_ncols=True)
    try:
        for result in score_inputs(files, cfg, scorer, model_path, bool(args.annotate), args.explain):
            results.append(result)
            tqdm.write(table_row(result, name_width))
            if args.details:
                for line in detail_lines(result):
                    tqdm.write(line)
            if args.annotate and result.status == SCORED:
                write_annotations(result, annotation_path(args.annotate, result, used_names), cfg, args.explain)
            result.frames_bgr = None  # frees the frames as soon as they are drawn
            bar.update(1)
    finally:
        bar.close()
    print(score_meaning(cfg))
    print(run_temperature(model_path, cfg)[1])
    written = []
    if args.csv:
        written += write_results_csv(args.csv, results, cfg, args.details)
    if args.json:
        written.append(write_results_json(args.json, results, cfg, model_path, args.details, args.explain))
    scored = sum(r.status == SCORED for r in results)
    print(f"stage 04 finished in {timer.seconds:,.1f} s: {len(results):,} inputs "
          f"({scored:,} scored, {len(results) - scored:,} not scored)")
    for path in written + ([args.annotate] if args.annotate else []):
        print(f"  output: {path}")
    return exit_code(results)


def main(argv=None, scorer=None):
    """`scorer`: an already loaded Scorer to reuse (tests load one for many runs)."""
    args = parse_args(argv)
    try:
        cfg = settings.apply_ray_flag(settings.load_config(args.config), None if args.serve else args.ray)
        if args.serve:
            cfg.RAY_ADDRESS = None  # the web page scores in its own process
        model_path = scorer.model_path if scorer else None
        if scorer is None:
            model_path = find_run_model(cfg.RUNS_DIR, args.run)
            print(settings.describe_settings(cfg, ["THRESHOLD", "VIDEO_SCORE", "FRAMES_PER_SECOND",
                                                   "RESIZE_RULES", "FACE_MARGIN", "MULTI_FACE_MIN_CONFIDENCE"])
                  + f", model={model_path}" + (f", engine=Ray at {cfg.RAY_ADDRESS}" if cfg.RAY_ADDRESS else ""))
            scorer = None if cfg.RAY_ADDRESS else Scorer(model_path)  # Ray's actors load their own
    except (settings.ConfigError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.serve:
        from deepfake_detect.inference.web import serve

        return serve(scorer, cfg, host=args.host or cfg.WEB_HOST, port=args.port or cfg.WEB_PORT)
    return detect_files(args, cfg, scorer, model_path)


if __name__ == "__main__":
    sys.exit(main())
