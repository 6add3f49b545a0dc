"""Stage 04: score new videos and images with a trained model, from the shell or a web page.

    videos, images, folders  +  RUNS_DIR/<run>/model.keras  ->  a table (and --csv / --json / --annotate)

    python 04-detect_deepfakes.py clip.mp4 photo.jpg folder/ [--run NAME_OR_PATH] [--details]
                                  [--csv scores.csv] [--json scores.json] [--annotate out/] [--explain]
    python 04-detect_deepfakes.py clip.mp4 --run runs/NAME/export/model_float32.tflite   # or .../saved_model
    python 04-detect_deepfakes.py --serve [--host 127.0.0.1] [--port 8000]   # the web page (waitress)
    WEB_TOKEN=... python 04-detect_deepfakes.py --serve --host 0.0.0.0    # beyond loopback: a token, or --no-auth
    python 04-detect_deepfakes.py folder/ --ray [ADDRESS]     # scored by Ray actors on a cluster
    python 04-detect_deepfakes.py --live 0 [--jsonl -] [--record out.mp4]   # a camera, URL or file, live (docs/live.md)

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

Files declaring more than MAX_IMAGE_PIXELS (images) or MAX_VIDEO_PIXELS per frame (videos) in
their header are not decoded: their row says "unreadable" and why, and the others go on.
--explain adds a Grad-CAM heatmap per face (explain.py) to --annotate, --details and --json;
--annotate also writes each video's P(fake) per frame as <name>-timeline.png (timeline.py).
Inputs without a score (no face, unreadable, unsupported) say why and carry no score. The fields
of --csv and --json (the web API's too) are described in docs/results.md.
Exit status: 0 every input scored, 1 some not, 2 usage, settings or model error.
"""

import sys
from pathlib import Path

from deepfake_detect import arguments, settings
from deepfake_detect.inference import records
from deepfake_detect.inference.batch import score_and_show
from deepfake_detect.inference.results import SCORED
from deepfake_detect.inference.scoring import Scorer, find_run_model
from deepfake_detect.inference.verdicts import score_meaning
from deepfake_detect.jobs.console import Timer, warn
from deepfake_detect.live.command import console, parse_with_live, run_live
from deepfake_detect.media.kinds import ignored_note, list_inputs
from deepfake_detect.models.predictors import ModelError, is_exported
from deepfake_detect.training.calibration import run_temperature


def parse_args(argv=None):
    parser = arguments.new_parser(__doc__)
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
    parser.add_argument("--no-auth", action="store_true",
                        help="serve beyond loopback without WEB_TOKEN: anyone on the network can use the page")
    parser.add_argument("--debug", action="store_true",
                        help="serve with werkzeug's development server instead of waitress")
    arguments.add_ray_argument(parser)
    args = parse_with_live(parser, argv)
    if not args.serve and not args.inputs and not args.live:
        parser.error("give videos, images or folders to score, --live SOURCE, or --serve for the web page")
    if args.serve and args.inputs:
        parser.error("--serve scores what is uploaded to the page: give it no files")
    return args


def detect_files(args, cfg, scorer, model_path):
    """Score every input of `args` with `scorer` (with --ray: Ray actors loading `model_path`), print
    the table, write the files; return exit status."""
    files, ignored = list_inputs(args.inputs, cfg.VIDEO_EXTENSIONS, exclude=args.annotate)
    if ignored:
        warn(ignored_note(ignored))
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
    results = score_and_show(files, cfg, scorer, model_path, args.annotate, args.explain, args.details)
    calibration = run_temperature(model_path, cfg)[1]
    print(score_meaning(cfg))
    print(calibration)
    written = records.write_results_csv(args.csv, results, cfg, args.details) if args.csv else []
    if args.json:
        document = records.results_document(results, cfg, model_path, calibration, args.details, args.explain)
        written.append(records.write_results_json(args.json, document))
    scored = sum(r.status == SCORED for r in results)
    print(f"stage 04 finished in {timer.seconds:,.1f} s: {len(results):,} inputs "
          f"({scored:,} scored, {len(results) - scored:,} not scored)")
    for path in written + ([args.annotate] if args.annotate else []):
        print(f"  output: {path}")
    return 0 if all(r.status == SCORED for r in results) else 1  # results is never empty here


def main(argv=None, scorer=None):
    """`scorer`: an already loaded Scorer to reuse (tests load one for many runs)."""
    args = parse_args(argv)
    try:
        cfg = arguments.apply_ray_flag(settings.load_config(args.config), None if args.serve else args.ray)
        if args.serve:
            cfg.RAY_ADDRESS = None  # the web page scores in its own process
        model_path = scorer.model_path if scorer else None
        if scorer is None:
            model_path = find_run_model(cfg.RUNS_DIR, args.run)
            print(settings.describe_settings(cfg, ["THRESHOLD", "VIDEO_SCORE", "FRAMES_PER_SECOND",
                                                   "RESIZE_RULES", "FACE_MARGIN", "MULTI_FACE_MIN_CONFIDENCE"])
                  + f", model={model_path}" + (f", engine=Ray at {cfg.RAY_ADDRESS}" if cfg.RAY_ADDRESS else ""),
                  file=console(args))
            # Ray's actors and the web page's worker processes load their own
            scorer = None if (cfg.RAY_ADDRESS and not args.live) or args.serve else Scorer(model_path)
    except (settings.ConfigError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.live:
        return run_live(args, cfg, scorer)
    if args.serve:
        from deepfake_detect.inference.web import serve

        return serve(scorer, cfg, host=args.host or cfg.WEB_HOST, port=args.port or cfg.WEB_PORT,
                     model_path=model_path, no_auth=args.no_auth, debug=args.debug)
    return detect_files(args, cfg, scorer, model_path)


if __name__ == "__main__":
    sys.exit(main())
