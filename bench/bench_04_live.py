"""Benchmark: live scoring (04-detect_deepfakes.py --live) of a loopback stream of a sample take.

    python bench/bench_04_live.py --run runs/sample --config configs/sample.py [--minutes 10]

Streams with imageio-ffmpeg's ffmpeg in real time (-re) as MPEG-TS over HTTP on 127.0.0.1, read
by the same LiveStream as --live and Detector.stream, in this process:

1. the swap: each spliced take of the built-in sample (sample.make_partial_sample: a real take,
   then the same take with the face swapped from 5 s (astronaut) or 4 s (hopper)), scaled and
   padded to 640x360 at 25 fps. Reports alerts during the real part (false alarms) and the time
   from the swapped frame leaving ffmpeg (connection + its second in the take, as -re plays it) to
   the alert, which includes OpenCV's network buffering, the reader, scoring and the session;
2. the long run: the astronaut's take looped for --minutes: scored frames/s, dropped frames,
   latency from capture (the frame returned by OpenCV) to result, p50 and p95, and this process's
   resident memory every 10 s (first minute, last minute, max).

Prints a table and writes the figures as JSON (--out). docs/speed.md quotes them with the machine.
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepfake_detect import settings  # noqa: E402
from deepfake_detect.inference.scoring import Scorer, find_run_model  # noqa: E402
from deepfake_detect.inference.web_workers import resident_mb  # noqa: E402
from deepfake_detect.live.events import Alert, Update  # noqa: E402
from deepfake_detect.live.stream import LiveStream  # noqa: E402

SIZE, FPS = (640, 360), 25
MEMORY_EVERY_S = 10


def ffmpeg():
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_takes(folder):
    """{name: (640x360 25 fps mp4, second the swap starts)} from the partial sample."""
    from deepfake_detect.sample import SPLICES, make_partial_sample

    make_partial_sample(folder / "partial")
    takes = {}
    for person, swap in SPLICES.items():
        out = folder / f"spliced-{person}-640x360.mp4"
        subprocess.run([ffmpeg(), "-loglevel", "error", "-y", "-i", str(folder / "partial" / f"spliced-{person}.mp4"),
                        "-vf", f"scale=-2:{SIZE[1]},pad={SIZE[0]}:{SIZE[1]}:(ow-iw)/2:0", "-r", str(FPS),
                        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(FPS), str(out)], check=True)
        takes[person] = (out, swap)
    return takes


def serve(video, seconds=None):
    """(process, URL) of ffmpeg playing `video` in real time to one HTTP client; looped for `seconds`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/live.ts"
    loop = ["-stream_loop", "-1"] if seconds else []
    limit = ["-t", str(seconds)] if seconds else []
    process = subprocess.Popen([ffmpeg(), "-loglevel", "error", "-re", *loop, "-i", str(video), *limit,
                                "-c", "copy", "-f", "mpegts", "-listen", "1", url],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return process, url


def stream_events(scorer, cfg, url, on_event=None):
    """(events with their wall-clock times, the Summary, wall time of the connection)."""
    live = LiveStream(url, scorer, cfg)
    connected = time.monotonic()
    live.open()
    events = []
    for event in live:
        events.append((time.monotonic(), event))
        if on_event:
            on_event(event)
    return events, live.summary(), connected


def swap_run(scorer, cfg, video, swap):
    """Figures of one spliced take streamed once (the stream is known to end: no reconnecting)."""
    cfg = types.SimpleNamespace(**{**vars(cfg), "LIVE_RECONNECT_SECONDS": 0.5})
    process, url = serve(video)
    try:
        events, summary, connected = stream_events(scorer, cfg, url)
    finally:
        process.kill()
        process.wait()
    alerts = [(wall, event) for wall, event in events if isinstance(event, Alert)]
    false = [e.as_dict() for wall, e in alerts if e.since < swap - 0.5]
    after = [wall for wall, e in alerts if e.since >= swap - 0.5]
    after_in_stream = [e.time - swap for _, e in alerts if e.since >= swap - 0.5]
    fake_updates_before = [e.time for _, e in events
                           if isinstance(e, Update) and e.verdict == "FAKE" and e.time < swap - 0.5]
    return {"swap_s": swap, "alerts": [e.as_dict() for _, e in alerts], "false_alerts": false,
            "fake_updates_before_swap": len(fake_updates_before),
            "swap_to_alert_s": round(after[0] - connected - swap, 2) if after else None,
            # the same in the stream's own time: from the swap to the frame that raised the alert
            "swap_to_alert_stream_s": round(after_in_stream[0], 2) if after_in_stream else None,
            **counts(summary)}


def counts(summary):
    scored_per_s = summary.frames_scored / summary.seconds if summary.seconds else 0.0
    return {"seconds": round(summary.seconds, 1), "frames_read": summary.frames_read,
            "frames_scored": summary.frames_scored, "frames_dropped": summary.frames_dropped,
            "scored_per_s": round(scored_per_s, 1), "latency_ms": summary.latency_ms}


def long_run(scorer, cfg, video, minutes):
    """Figures of `video` looped for `minutes`, with this process's memory every MEMORY_EVERY_S."""
    memory, stop = [], threading.Event()

    def sample():
        started = time.monotonic()
        while not stop.wait(MEMORY_EVERY_S):
            memory.append((round(time.monotonic() - started), resident_mb(os.getpid())))

    cfg = types.SimpleNamespace(**{**vars(cfg), "LIVE_RECONNECT_SECONDS": 0.5})
    process, url = serve(video, seconds=minutes * 60)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, summary, _ = stream_events(scorer, cfg, url)
    finally:
        stop.set()
        process.kill()
        process.wait()
    first = [mb for t, mb in memory if t <= 60 and mb]
    last = [mb for t, mb in memory if t >= memory[-1][0] - 60 and mb] if memory else []
    return {**counts(summary), "minutes": minutes,
            "memory_mb": {"first_minute": round(max(first), 0) if first else None,
                          "last_minute": round(max(last), 0) if last else None,
                          "max": round(max(mb for _, mb in memory if mb), 0) if memory else None,
                          "samples": memory}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder or model (the demo's: runs/sample)")
    parser.add_argument("--config", default=None, help="settings (the demo's: configs/sample.py)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long run (0: skip it)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    cfg = settings.load_config(args.config)
    model = find_run_model(cfg.RUNS_DIR, args.run)
    scorer = Scorer(model)
    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "load_average_at_start": os.getloadavg(), "model": str(model), "input_size": scorer.input_size,
               "settings": {name: getattr(cfg, name) for name in ("LIVE_DETECT_EVERY", "LIVE_WINDOW_SECONDS",
                                                                  "LIVE_SMOOTHING_SECONDS", "LIVE_MIN_FAKE_SECONDS",
                                                                  "VIDEO_SCORE", "THRESHOLD", "CALIBRATE")}}
    with tempfile.TemporaryDirectory(prefix="bench-live-") as folder:
        takes = make_takes(Path(folder))
        figures["swaps"] = {name: swap_run(scorer, cfg, video, swap) for name, (video, swap) in takes.items()}
        for name, result in figures["swaps"].items():
            print(f"swap {name}: alert {result['swap_to_alert_s']} s after the swap "
                  f"({result['swap_to_alert_stream_s']} s in stream time), false alerts "
                  f"{len(result['false_alerts'])}, {result['scored_per_s']} scored frames/s, "
                  f"latency {result['latency_ms']}", flush=True)
        if args.minutes:
            figures["long"] = long_run(scorer, cfg, takes["astronaut"][0], args.minutes)
            long = figures["long"]
            print(f"long run {args.minutes:g} min: {long['scored_per_s']} scored frames/s, "
                  f"{long['frames_dropped']:,} of {long['frames_read']:,} dropped, latency {long['latency_ms']}, "
                  f"memory {long['memory_mb']['first_minute']} MB (first minute) -> "
                  f"{long['memory_mb']['last_minute']} MB (last), max {long['memory_mb']['max']} MB", flush=True)
    figures["load_average_at_end"] = os.getloadavg()
    print(f"machine: {figures['machine']}; load average {figures['load_average_at_start']} -> "
          f"{figures['load_average_at_end']}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
