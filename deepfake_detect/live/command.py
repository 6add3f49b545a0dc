"""04-detect_deepfakes.py --live SOURCE [--jsonl PATH|-] [--record PATH]: a live source checked
until it ends or Ctrl+C, with the terminal's live lines, JSON lines and the annotated video."""

import os
import sys

from deepfake_detect.live.events import Summary
from deepfake_detect.live.output import JsonLines, Recorder, Terminal
from deepfake_detect.live.source import SourceError
from deepfake_detect.live.stream import LiveStream


def parse_with_live(parser, argv=None):
    """Stage 04's arguments parsed with --live, --jsonl and --record added; --live with files or
    --serve is a usage error."""
    add_live_arguments(parser)
    args = parser.parse_args(argv)
    if args.live and (args.inputs or args.serve):
        parser.error("--live checks one source: give it no files and no --serve")
    if (args.jsonl or args.record) and not args.live:
        parser.error("--jsonl and --record go with --live SOURCE")
    return args


def add_live_arguments(parser):
    """--live, --jsonl and --record on stage 04's parser."""
    parser.add_argument("--live", metavar="SOURCE",
                        help="check a live source until it ends or Ctrl+C: a camera index (0), a device path, "
                             "an RTSP/HTTP/UDP URL, or a video file played at its own speed")
    parser.add_argument("--jsonl", metavar="PATH", help="with --live: one JSON object per line to PATH (- for stdout)")
    parser.add_argument("--record", metavar="PATH", help="with --live: write the annotated stream to this mp4")


def console(args):
    """Where stage 04's lines for people go: stderr with --jsonl -, so that stdout carries JSON lines only."""
    return sys.stderr if getattr(args, "jsonl", None) == "-" else sys.stdout


def quiet_video_backend():
    """Keep OpenCV's and FFmpeg's own messages (a warning per refused reconnect attempt) off the
    terminal: the summary says how many attempts failed and why the run ended."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg first opens
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def run_live(args, cfg, scorer):
    """Check args.live with a loaded Scorer; return the exit status (0, or 2 when the source
    cannot be opened)."""
    quiet_video_backend()
    recorder = Recorder(args.record, cfg) if args.record else None
    stream = LiveStream(args.live, scorer, cfg, on_frame=recorder.add if recorder else None)
    try:
        stream.open()
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        stream.reader.stop()
        print("live: stopped before the stream began", file=sys.stderr)
        return 0
    terminal = Terminal(console(args))
    outputs = [terminal] + ([JsonLines(args.jsonl)] if args.jsonl else [])
    terminal.print_lines([f"live: checking {args.live} (Ctrl+C ends it with a summary)"])
    summary = None
    try:
        for event in stream:
            for output in outputs:
                output.show(event)
            summary = event if isinstance(event, Summary) else summary
    except KeyboardInterrupt:
        pass
    finally:
        if summary is None:
            summary = stream.summary()
            for output in outputs:
                output.show(summary)
        for output in outputs:
            output.close()
        written = recorder.close() if recorder else None
    if written:
        print(f"  recorded: {written}", file=terminal.handle)
    return 0
