"""Benchmark stage 01b's client: what it sends per frame, and its own cost per request.

    .venv/bin/python bench/bench_01b_azure.py [VIDEO ...]     (default: $DFDC_SAMPLE_DIR/videos/*.mp4)

Azure itself cannot be measured offline, and with AZURE_CALLS_PER_MINUTE = 20 (free tier) the
rate limit, 3 s per frame, dwarfs everything here. What this measures, on stage 00's frames of
the given videos:

1. bytes uploaded per frame as PNG (what 01b sends) and as JPEG quality 95, and encoding time;
2. requests per second against a local HTTP/1.1 server that answers at once, for the
   client (one reused requests.Session) and for requests.post per frame (a new connection
   each time). On the loopback a connection costs almost nothing, so this bounds the client's
   own overhead; over the internet a new connection also costs a TLS handshake per frame.

Each measurement is the best of `--repeat` runs, in one run of this script, on one machine.
"""

import argparse
import os
import platform
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deepfake_detect import settings  # noqa: E402
from deepfake_detect.faces.azure import KEY_HEADER, AzureFaceDetector  # noqa: E402
from deepfake_detect.media.frames import iter_kept_frames  # noqa: E402

BENCH_KEY = "0123456789abcdef0123456789abcdef"  # only ever sent to 127.0.0.1


class InstantFaceService(BaseHTTPRequestHandler):
    """Answers every POST like the Face service finding no face, keeping connections open."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle on, the body would wait for the client's
    # delayed ACK (40 ms) on a kept-alive connection, and time the server, not the client.
    disable_nagle_algorithm = True

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args):
        pass


def best_seconds(action, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def load_frames(videos, cfg):
    """Stage 00's kept, resized frames of `videos` as RGB arrays."""
    frames = []
    for video in videos:
        for _, frame in iter_kept_frames(video, cfg.RESIZE_RULES, cfg.FRAMES_PER_SECOND):
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return frames


def bench_payload(frames, repeat):
    for name, extension, params in (("PNG", ".png", []), ("JPEG q95", ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])):
        sizes = [len(cv2.imencode(extension, f, params)[1]) for f in frames]
        seconds = best_seconds(lambda: [cv2.imencode(extension, f, params) for f in frames], repeat)
        print(f"  {name:9s} {sum(sizes) / len(sizes) / 1024:7.0f} KB per frame on average, "
              f"{seconds / len(frames) * 1000:5.1f} ms to encode")


def bench_requests(frames, repeat):
    server = ThreadingHTTPServer(("127.0.0.1", 0), InstantFaceService)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        bodies = [cv2.imencode(".png", f)[1].tobytes() for f in frames]
        detector = AzureFaceDetector("face", endpoint, BENCH_KEY, calls_per_minute=None)
        url = endpoint + "/face/v1.2/detect"
        headers = {KEY_HEADER: BENCH_KEY, "Content-Type": "application/octet-stream"}

        def original_style():
            for body in bodies:
                requests.post(url, params=detector.params, headers=headers, data=body, timeout=30).json()

        def client_post_only():
            for body in bodies:
                detector._post(body)  # the client's request path, without encoding

        session_seconds = best_seconds(client_post_only, repeat)
        fresh_seconds = best_seconds(original_style, repeat)
        client_seconds = best_seconds(lambda: detector(frames), repeat)
        detector.close()
    finally:
        server.shutdown()
        server.server_close()
    count = len(frames)
    print(f"  requests.post per frame:            {count / fresh_seconds:6.0f} requests/s")
    print(f"  one reused Session (01b client):    {count / session_seconds:6.0f} requests/s "
          f"({fresh_seconds / session_seconds:.1f}x)")
    print(f"  01b client with PNG encoding:       {count / client_seconds:6.0f} frames/s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    videos = args.videos
    if not videos:
        sample = os.environ.get("DFDC_SAMPLE_DIR")
        if not sample:
            parser.error("give videos, or set DFDC_SAMPLE_DIR=/work/shared/dfdc_sample")
        videos = sorted(Path(sample, "videos").glob("*.mp4"))
    cfg = settings.load_config()
    frames = load_frames(videos, cfg)
    height, width = frames[0].shape[:2]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"Python {platform.python_version()}, requests {requests.__version__}")
    print(f"{len(frames)} frames of {len(videos)} videos, {width}x{height} after stage 00's resize")
    print("payload per frame:")
    bench_payload(frames, args.repeat)
    print("client against a local server that answers at once:")
    bench_requests(frames, args.repeat)
    per_minute = cfg.AZURE_CALLS_PER_MINUTE
    if per_minute:
        print(f"at AZURE_CALLS_PER_MINUTE = {per_minute}: {60 / per_minute:.1f} s per frame, "
              f"{len(frames) / len(videos) * 60 / per_minute:.0f} s per video of these")


if __name__ == "__main__":
    main()
