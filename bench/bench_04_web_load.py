"""Benchmark stage 04's web page under load: K concurrent clients send a mix of good and hostile
uploads for a bounded time to a real server on 127.0.0.1 that this script starts itself.

    python bench/bench_04_web_load.py [--clients 8] [--seconds 60] [--workers 2]

The server is `04-detect_deepfakes.py --serve` (waitress, WEB_WORKERS scoring processes, a token)
with a freshly built EfficientNet-B0 at 128 px (weights=None: the speed of a trained one). Each
client loops, for --seconds, over uploads to POST /api/detect picked at random (fixed seed) from:

  image      a 512x512 portrait JPEG (one face)                     -> 200
  video      a 2-s 10-fps portrait clip (2 kept frames)              -> 200
  bomb       a 19 KB PNG declaring 32000x32000 px                    -> 413 (MAX_IMAGE_PIXELS)
  long       a 30-frame video declaring 3,000 s (0.01 fps)           -> 413 (WEB_MAX_VIDEO_SECONDS)
  junk       an MP4 header and 4 KB of random bytes                  -> 422
  text       a text file named .png                                  -> 415
  no token   the image without the token                             -> 401

It reports requests/s, p50 and p95 latency per kind, the answers by status, and the peak
resident memory of the server process (VmHWM) and of its workers (sampled), as a Markdown table.
Takes --seconds plus about 40 s to start the server (2 workers loading the model on 2 cores).
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import requests

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
sys.path.insert(0, str(REPO_DIR / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_04_detect import build_model  # noqa: E402
from test_04_web_hostile import free_port, memory_kb, worker_pids, write_long_video, write_png_bomb  # noqa: E402

TOKEN = "bench-token-" + "z" * 24
# How often each kind is sent (weights): mostly good uploads, a steady share of hostile ones.
MIX = {"image": 4, "video": 2, "bomb": 1, "long": 1, "junk": 1, "text": 1, "no token": 1}
CLIENT_TIMEOUT_S = 300


def write_uploads(folder):
    """{kind: (file name, bytes)} of every kind in MIX."""
    from deepfake_detect.sample import portrait_images
    from test_04_detect import write_portrait_video

    folder.mkdir(parents=True, exist_ok=True)
    portrait = cv2.resize(portrait_images()["hopper"], (512, 512))
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(portrait, cv2.COLOR_RGB2BGR))
    clip = write_portrait_video(folder / "clip.mp4", cv2.resize(portrait, (320, 320)))
    return {"image": ("portrait.jpg", jpeg.tobytes()), "video": ("clip.mp4", clip.read_bytes()),
            "bomb": ("bomb.png", write_png_bomb(folder / "bomb.png").read_bytes()),
            "long": ("long.mp4", write_long_video(folder / "long.mp4").read_bytes()),
            "junk": ("junk.mp4", b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(4096)),
            "text": ("notes.png", b"just some notes\n" * 20), "no token": ("portrait.jpg", jpeg.tobytes())}


def start_server(folder, workers):
    """(process, base URL) of a stage 04 server on a free port, once it answers."""
    model = build_model(folder / "runs" / "bench" / "model.keras")
    config = folder / "config.py"
    config.write_text(f"RUNS_DIR = Path({str(model.parent.parent)!r})\nWEB_WORKERS = {workers}\n")
    port = free_port()
    env = {**os.environ, "WEB_TOKEN": TOKEN, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(folder)}
    process = subprocess.Popen([sys.executable, "04-detect_deepfakes.py", "--config", str(config), "--serve",
                                "--port", str(port)], cwd=REPO_DIR, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            requests.get(url + "/", timeout=1)
            return process, url
        except requests.ConnectionError:
            if process.poll() is not None:
                sys.exit("the server stopped while starting")
            time.sleep(0.5)
    process.kill()
    sys.exit("the server did not start within 5 minutes")


def run_client(url, uploads, until, seed, answers):
    """Send uploads picked by MIX until `until` (monotonic); append (kind, status, seconds)."""
    pick = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    while time.monotonic() < until:
        kind = pick.choices(kinds, weights)[0]
        name, content = uploads[kind]
        headers = {} if kind == "no token" else {"Authorization": f"Bearer {TOKEN}"}
        started = time.monotonic()
        try:
            status = requests.post(url + "/api/detect", files={"file": (name, content)}, headers=headers,
                                   timeout=CLIENT_TIMEOUT_S).status_code
        except requests.RequestException as error:
            status = type(error).__name__
        answers.append((kind, status, time.monotonic() - started))


def sample_worker_memory(server_pid, stop, peak):
    """Keep peak["workers_mb"] = the largest sum of the workers' VmRSS seen, until `stop` is set."""
    while not stop.is_set():
        total = 0
        for pid in worker_pids(server_pid):
            try:
                total += memory_kb(pid)
            except (OSError, AssertionError):
                pass
        peak["workers_mb"] = max(peak.get("workers_mb", 0), total / 1024)
        stop.wait(0.5)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def report(answers, seconds, peak, start_rss_mb, args):
    """The Markdown lines of the results."""
    by_kind = defaultdict(list)
    for kind, status, latency in answers:
        by_kind[kind].append((status, latency))
    lines = [f"{len(answers):,} requests in {seconds:.0f} s from {args.clients} clients: "
             f"{len(answers) / seconds:.1f} requests/s; server (waitress, {args.workers} workers)",
             "", "| kind | requests | p50 s | p95 s | answers |", "|---|---|---|---|---|"]
    for kind in MIX:
        rows = by_kind.get(kind, [])
        if not rows:
            continue
        latencies = [latency for _, latency in rows]
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(Counter(s for s, _ in rows).items(),
                                                                              key=str))
        lines.append(f"| {kind} | {len(rows)} | {percentile(latencies, 0.5):.2f} | {percentile(latencies, 0.95):.2f} "
                     f"| {statuses} |")
    statuses = Counter(status for _, status, _ in answers)
    lines += ["", "answers by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items(), key=str)),
              f"server memory: {start_rss_mb:,.0f} MB at start, peak {peak['server_mb']:,.0f} MB (VmHWM), "
              f"{peak['server_end_mb']:,.0f} MB at the end; workers together: peak {peak.get('workers_mb', 0):,.0f} MB"]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (K)")
    parser.add_argument("--seconds", type=float, default=60, help="how long the clients send")
    parser.add_argument("--workers", type=int, default=2, help="WEB_WORKERS of the server")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-04-web-") as temporary:
        folder = Path(temporary)
        uploads = write_uploads(folder / "uploads")
        process, url = start_server(folder, args.workers)
        try:
            start_rss_mb = memory_kb(process.pid) / 1024
            answers, peak, stop = [], {}, threading.Event()
            sampler = threading.Thread(target=sample_worker_memory, args=(process.pid, stop, peak), daemon=True)
            sampler.start()
            started = time.monotonic()
            clients = [threading.Thread(target=run_client, args=(url, uploads, started + args.seconds, seed, answers))
                       for seed in range(args.clients)]
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            seconds = time.monotonic() - started
            stop.set()
            peak["server_mb"] = memory_kb(process.pid, "VmHWM") / 1024
            peak["server_end_mb"] = memory_kb(process.pid) / 1024
        finally:
            process.terminate()
            process.wait(timeout=30)
    print("\n".join(report(answers, seconds, peak, start_rss_mb, args)))
    print(f"latency medians over all kinds: {statistics.median(a[2] for a in answers):.2f} s")


if __name__ == "__main__":
    main()
