"""Stage 01b (frames -> face crops with Azure) against a real local HTTP server that speaks Azure.

    .venv/bin/pytest tests/test_01b_azure.py

FakeAzure is an http.server on 127.0.0.1, started by the tests, that answers like the Face
service (POST /face/v1.2/detect) and Image Analysis 3.2 (POST /vision/v3.2/analyze): it checks
the key header, the octet-stream body, the query parameters and each service's image limits,
answers their JSON and error bodies, and can be told to fail (429 with Retry-After, 503, 401,
400 for one portrait, a slow answer, malformed JSON, a redirect). For frames made from
deepfake_detect.sample.portrait_images() it returns a fixed, hand-measured face rectangle,
scaled to the image it received. No network beyond 127.0.0.1; runs in about five seconds.
"""

import importlib
import json
import os
import subprocess
import sys
import threading
import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import pytest

from conftest import folder_contents, write_video_frames
from conftest import write_config as write_config_file
from deepfake_detect.faces.azure import (AzureFaceDetector, AzureSetupError, AzureStopError, ImageLimits,
                                   ImageRejectedError, RateLimiter, check_endpoint, check_key,
                                   parse_retry_after)
from deepfake_detect.faces.crops import INDEX_FILE, read_index
from deepfake_detect.files import PARTIAL_MARK
from deepfake_detect.sample import portrait_images

stage01b = importlib.import_module("01b-crop_faces_with_azure-vision-api")
REPO_DIR = Path(__file__).resolve().parent.parent
KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"   # what the fake server accepts; must never be printed
FRAME_WIDTH = 256  # frames are the portraits at half size
# Face boxes (left, top, width, height) measured by hand on the full-size portraits, brows to
# mouth as the Face service draws them; at half size: astronaut (92, 36, 40, 50), hopper (95, 75, 70, 80).
PORTRAIT_BOXES = {"astronaut": (184, 72, 80, 100), "hopper": (190, 150, 140, 160)}
PORTRAIT_SIZES = {"astronaut": (512, 512), "hopper": (512, 600)}  # width, height


# ------------------------------------------------------------------ the fake Azure

class FakeAzure:
    """Both Azure APIs on 127.0.0.1:<port>; `plan` lists failures for the next requests, in order."""

    def __init__(self):
        self.requests = []       # one dict per request: path, query, key, content_type, size, format
        self.plan = []           # e.g. ["429", "503"]: consumed one per request, then answers normally
        self.refused_portrait = None   # answer 400 InvalidImage to this portrait
        self.vision_error_style = "nested"
        self.slow_seconds = 1.0
        self.retry_after = "0"
        self.delay_seconds = 0.0  # before every answer (kill-and-rerun test)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                fake.handle(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # -- answering

    def handle(self, handler):
        parts = urlsplit(handler.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR) if body else None
        record = {"path": parts.path, "query": parse_qs(parts.query), "key": handler.headers.get("Ocp-Apim-Subscription-Key"),
                  "content_type": handler.headers.get("Content-Type"), "bytes": len(body),
                  "size": None if image is None else (image.shape[1], image.shape[0]), "format": _format_of(body)}
        with self._lock:
            self.requests.append(record)
            action = self.plan.pop(0) if self.plan else None
        time.sleep(self.delay_seconds)
        service = {"/face/v1.2/detect": "face", "/vision/v3.2/analyze": "vision"}.get(parts.path)
        if service is None:
            return self.send(handler, 404, {"error": {"code": "404", "message": "Resource not found"}})
        if record["key"] != KEY:
            return self.send(handler, 401, {"error": {"code": "401", "message": "Access denied due to invalid "
                                                      "subscription key or wrong API endpoint."}})
        if action == "429":
            return self.send(handler, 429, {"error": {"code": "429", "message": "Rate limit is exceeded."}},
                             {"Retry-After": self.retry_after})
        if action == "503":
            return self.send(handler, 503, {"error": {"code": "ServiceUnavailable", "message": "busy"}})
        if action == "slow":
            time.sleep(self.slow_seconds)
        if action == "malformed":
            return self.send_bytes(handler, 200, b'[{"faceRectangle": {"left": 1', "application/json")
        if action == "redirect":
            handler.send_response(307)
            handler.send_header("Location", f"{self.endpoint}/elsewhere")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        if record["content_type"] != "application/octet-stream":
            return self.send(handler, 415, {"error": {"code": "BadArgument", "message": "Invalid media type."}})
        problem = self.check_request(service, record, image)
        if problem:
            return self.send_error_body(handler, service, *problem)
        portrait = _which_portrait(image)
        if portrait and portrait == self.refused_portrait:
            return self.send_error_body(handler, service, "InvalidImage", "Decoding error, image format unsupported.")
        faces = [{"faceRectangle": _box_in(portrait, image)}] if portrait else []
        if service == "face":
            return self.send(handler, 200, faces)
        for face in faces:  # Image Analysis 3.2 once gave age and gender; the client must ignore them
            face.update({"age": 46, "gender": "Female"})
        return self.send(handler, 200, {"faces": faces, "requestId": "9d7f6e1c",
                                        "metadata": {"width": image.shape[1], "height": image.shape[0],
                                                     "format": record["format"].capitalize()}})

    def check_request(self, service, record, image):
        """(code, message) of what the real service would refuse, or None."""
        if service == "face":
            if record["query"] != {"detectionModel": ["detection_03"], "returnFaceId": ["false"]}:
                return "BadArgument", f"unexpected query {record['query']}"
            if not 1024 <= record["bytes"] <= 6 * 1024 * 1024:
                return "InvalidImageSize", "Image size is too small or too big."
            if image is None:
                return "InvalidImage", "Decoding error, image format unsupported."
            if min(record["size"]) < 36 or max(record["size"]) > 4096:
                return "InvalidImageSize", "Image size is too small or too big."
        else:
            if record["query"] != {"visualFeatures": ["Faces"]}:
                return "InvalidRequest", f"unexpected query {record['query']}"
            if record["bytes"] > 4 * 1024 * 1024:
                return "InvalidImageSize", "The input image is too large."
            if image is None:
                return "InvalidImageFormat", "Input data is not a valid image."
            if min(record["size"]) <= 50:
                return "InvalidImageDimension", "The input image dimensions are out of range."
        return None

    def send_error_body(self, handler, service, code, message):
        if service == "vision" and self.vision_error_style == "flat":
            return self.send(handler, 400, {"code": code, "message": message, "requestId": "1a2b"})
        body = {"error": {"code": code, "message": message}}
        if service == "vision":
            body = {"error": {"code": "InvalidRequest", "message": message, "innererror": {"code": code,
                                                                                          "message": message}}}
        return self.send(handler, 400, body)

    def send(self, handler, status, body, headers=None):
        self.send_bytes(handler, status, json.dumps(body).encode(), "application/json", headers)

    @staticmethod
    def send_bytes(handler, status, data, content_type, headers=None):
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the timeout test)


def _format_of(body):
    for magic, name in ((b"\x89PNG", "png"), (b"\xff\xd8", "jpeg"), (b"BM", "bmp")):
        if body.startswith(magic):
            return name
    return "unknown"


def _which_portrait(image):
    """'astronaut', 'hopper' or None (a flat frame): told apart by the aspect ratio, as sent."""
    if image is None or image.std() < 10:
        return None
    ratio = image.shape[0] / image.shape[1]
    for name, (width, height) in PORTRAIT_SIZES.items():
        if abs(ratio - height / width) < 0.02:
            return name
    return None


def _box_in(portrait, image):
    """The portrait's face rectangle, in the pixels of the image as received."""
    left, top, width, height = PORTRAIT_BOXES[portrait]
    scale_x = image.shape[1] / PORTRAIT_SIZES[portrait][0]
    scale_y = image.shape[0] / PORTRAIT_SIZES[portrait][1]
    return {"left": round(left * scale_x), "top": round(top * scale_y),
            "width": round(width * scale_x), "height": round(height * scale_y)}


# ------------------------------------------------------------------ fixtures

@pytest.fixture(autouse=True)
def no_proxy_for_this_machine(monkeypatch):
    """requests would send even 127.0.0.1 through an HTTP(S)_PROXY set on a CI machine."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def fake_azure():
    server = FakeAzure()
    yield server
    server.close()


@pytest.fixture(scope="module")
def portraits_bgr():
    """The portraits at FRAME_WIDTH px wide, BGR: astronaut 256x256, hopper 256x300."""
    frames = {}
    for name, rgb in portrait_images().items():
        height = round(rgb.shape[0] * FRAME_WIDTH / rgb.shape[1])
        frames[name] = cv2.cvtColor(cv2.resize(rgb, (FRAME_WIDTH, height), interpolation=cv2.INTER_AREA),
                                    cv2.COLOR_RGB2BGR)
    return frames


@pytest.fixture
def azure_env(monkeypatch, fake_azure):
    """The environment of a user of the Face service whose resource is the fake server."""
    for name in ("FACE_ENDPOINT", "FACE_APIKEY", "VISION_ENDPOINT", "VISION_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACE_ENDPOINT", fake_azure.endpoint + "/")
    monkeypatch.setenv("FACE_APIKEY", KEY)
    return monkeypatch


def write_config(tmp_path, **extra):
    """A config override: frames in tmp_path/frames, faces in tmp_path/faces, no waiting."""
    settings = {"AZURE_CALLS_PER_MINUTE": None, "AZURE_RETRY_BASE_SECONDS": 0.01, "AZURE_TIMEOUT_SECONDS": 5,
                "AZURE_MAX_RETRIES": 3, **extra}
    return write_config_file(tmp_path / "test_config.py", FRAMES_DIR=tmp_path / "frames",
                             FACES_DIR=tmp_path / "faces", OUTPUT_DIR=tmp_path / "out", **settings)


def finished_videos(faces_root):
    return sorted(p.name for p in faces_root.iterdir() if p.is_dir() and not p.name.startswith("."))


def assert_key_absent(key, captured, folder):
    """The key appears neither in the captured output nor in any file under `folder`."""
    assert key not in captured.out and key not in captured.err
    for path in Path(folder).rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"the key was written to {path}"


def new_detector(fake_azure, service="face", **options):
    """A detector for the fake server that records its waits instead of sleeping."""
    sleeps = []
    options = {"calls_per_minute": None, "retry_base_seconds": 0.01, "timeout_seconds": 5, "max_retries": 3,
               "sleep": sleeps.append, **options}
    return AzureFaceDetector(service, fake_azure.endpoint, KEY, **options), sleeps


def rgb(frame_bgr):
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------ whole stage

def test_face_service_crops_portraits_with_the_30_percent_margin(tmp_path, portraits_bgr, fake_azure, azure_env,
                                                                  capsys):
    astronaut, hopper = portraits_bgr["astronaut"], portraits_bgr["hopper"]
    flat = np.full_like(astronaut, 128)  # compresses to ~100 bytes: must be sent at >= 1 KB
    write_video_frames(tmp_path / "frames", "clip", [astronaut, hopper, flat])
    write_video_frames(tmp_path / "frames", "other", [astronaut])
    config = write_config(tmp_path)

    assert stage01b.main(["--config", str(config)]) == 0

    faces_root = tmp_path / "faces"
    assert finished_videos(faces_root) == ["clip", "other"]
    assert sorted(p.name for p in (faces_root / "clip").glob("*.png")) == ["clip-000-00.png", "clip-001-00.png"]
    # Astronaut: box (92, 36, 40, 50) in the frame; 30% is 12 px across, 15 px down: 64 x 80.
    crop = cv2.imread(str(faces_root / "clip" / "clip-000-00.png"))
    assert crop.shape == (80, 64, 3)
    np.testing.assert_array_equal(crop, astronaut[36 - 15:36 + 50 + 15, 92 - 12:92 + 40 + 12])
    # Hopper: box (95, 75, 70, 80); 30% is 21 and 24 px: 112 x 128.
    crop = cv2.imread(str(faces_root / "clip" / "clip-001-00.png"))
    assert crop.shape == (128, 112, 3)
    np.testing.assert_array_equal(crop, hopper[75 - 24:75 + 80 + 24, 95 - 21:95 + 70 + 21])

    rows = read_index(faces_root / "clip" / INDEX_FILE)
    assert [(r["frame"], r["face"], r["x"], r["y"], r["width"], r["height"], r["confidence"]) for r in rows] == [
        ("clip-000.png", "0", "92", "36", "40", "50", ""),
        ("clip-001.png", "0", "95", "75", "70", "80", ""),
        ("clip-002.png", "", "", "", "", "", ""),   # searched, no face: done
    ]
    assert len(fake_azure.requests) == 4          # one per frame, no retries
    for request in fake_azure.requests:
        assert request["path"] == "/face/v1.2/detect"
        assert request["query"] == {"detectionModel": ["detection_03"], "returnFaceId": ["false"]}
        assert request["key"] == KEY and request["content_type"] == "application/octet-stream"
    assert [r["format"] for r in fake_azure.requests] == ["png", "png", "bmp", "png"]
    assert fake_azure.requests[2]["bytes"] >= 1024
    settings_file = json.loads((faces_root / "settings-01b.json").read_text())
    assert settings_file["FACE_APIKEY"] == "(set)" and settings_file["AZURE_SERVICE"] == "face"

    captured = capsys.readouterr()
    assert "Azure Face service: 4 requests, 4 frames sent, 0 retries" in captured.out
    assert_key_absent(KEY, captured, tmp_path)

    # A rerun finds both videos done and asks nothing.
    assert stage01b.main(["--config", str(config)]) == 0
    assert len(fake_azure.requests) == 4
    assert "0 to do, 2 already done" in capsys.readouterr().out


def test_vision_service(tmp_path, portraits_bgr, fake_azure, monkeypatch, capsys):
    for name in ("FACE_ENDPOINT", "FACE_APIKEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VISION_ENDPOINT", fake_azure.endpoint)
    monkeypatch.setenv("VISION_KEY", KEY)
    write_video_frames(tmp_path / "frames", "clip", [portraits_bgr["astronaut"], portraits_bgr["hopper"]])
    config = write_config(tmp_path, AZURE_SERVICE="vision")

    assert stage01b.main(["--config", str(config)]) == 0

    assert [r["path"] for r in fake_azure.requests] == ["/vision/v3.2/analyze"] * 2
    assert all(r["query"] == {"visualFeatures": ["Faces"]} for r in fake_azure.requests)
    assert cv2.imread(str(tmp_path / "faces" / "clip" / "clip-000-00.png")).shape == (80, 64, 3)
    assert cv2.imread(str(tmp_path / "faces" / "clip" / "clip-001-00.png")).shape == (128, 112, 3)
    captured = capsys.readouterr()
    assert "Azure Image Analysis 3.2: 2 requests" in captured.out
    assert_key_absent(KEY, captured, tmp_path)


@pytest.mark.parametrize("key", ["", "<your-face-api-key>", "YOUR_FACE_APIKEY_HERE", "abc123"])
def test_missing_or_placeholder_key_stops_before_any_request(tmp_path, portraits_bgr, fake_azure, azure_env,
                                                             capsys, key):
    azure_env.setenv("FACE_APIKEY", key)
    write_video_frames(tmp_path / "frames", "clip", [portraits_bgr["astronaut"]])
    assert stage01b.main(["--config", str(write_config(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "FACE_APIKEY" in err and (not key or key not in err)
    assert fake_azure.requests == [] and not (tmp_path / "faces").exists()


def test_missing_endpoint_and_key_are_named_together(tmp_path, azure_env, capsys):
    azure_env.delenv("FACE_ENDPOINT")
    azure_env.delenv("FACE_APIKEY")
    assert stage01b.main(["--config", str(write_config(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "FACE_ENDPOINT is not set: export FACE_ENDPOINT=https://" in err
    assert "FACE_APIKEY is not set: export FACE_APIKEY=<KEY 1 from the Keys and Endpoint page" in err


def test_vision_service_asks_for_the_vision_variables(tmp_path, azure_env, capsys):
    # FACE_* are set but the config chose Image Analysis: its own variables are the ones missing.
    assert stage01b.main(["--config", str(write_config(tmp_path, AZURE_SERVICE="vision"))]) == 2
    err = capsys.readouterr().err
    assert "VISION_ENDPOINT is not set" in err and "VISION_KEY is not set" in err


def test_refused_key_stops_the_stage_at_once(tmp_path, portraits_bgr, fake_azure, azure_env, capsys):
    wrong_key = "a1" * 16
    azure_env.setenv("FACE_APIKEY", wrong_key)
    for video in ("v1", "v2", "v3"):
        write_video_frames(tmp_path / "frames", video, [portraits_bgr["astronaut"]] * 2)

    assert stage01b.main(["--config", str(write_config(tmp_path))]) == 1

    assert len(fake_azure.requests) == 1                      # 401 is never retried
    assert finished_videos(tmp_path / "faces") == []
    assert not list((tmp_path / "faces").glob(f".*{PARTIAL_MARK}*"))
    captured = capsys.readouterr()
    assert "HTTP 401" in captured.err and "the key in FACE_APIKEY was refused" in captured.err
    assert "stopped before 3 videos; rerun to go on" in captured.out
    assert_key_absent(wrong_key, captured, tmp_path)


def test_refused_frame_is_reported_and_its_video_left_for_a_rerun(tmp_path, portraits_bgr, fake_azure,
                                                                   azure_env, capsys):
    astronaut, hopper = portraits_bgr["astronaut"], portraits_bgr["hopper"]
    write_video_frames(tmp_path / "frames", "good", [astronaut, astronaut])
    write_video_frames(tmp_path / "frames", "mixed", [astronaut, hopper, astronaut])
    fake_azure.refused_portrait = "hopper"
    config = write_config(tmp_path)

    # "good" was cropped; "mixed" failed (left for a rerun), so the exit status says so
    assert stage01b.main(["--config", str(config)]) == 1

    assert len(fake_azure.requests) == 5                     # the 400 was not retried, the frames after it went on
    assert finished_videos(tmp_path / "faces") == ["good"]   # "mixed" is not recorded as done
    assert not list((tmp_path / "faces").glob(f".*{PARTIAL_MARK}*"))
    captured = capsys.readouterr()
    assert "mixed-001.png: Azure Face service refused the image: HTTP 400 InvalidImage" in captured.err
    assert "mixed: 1 of 3 frames could not be searched" in captured.err
    assert "failed_frames: 1" in captured.out and "1 frames refused" in captured.out
    assert "1 videos failed and not done (skipped bad inputs aside): exit status 1" in captured.out

    fake_azure.refused_portrait = None
    assert stage01b.main(["--config", str(config)]) == 0
    assert len(fake_azure.requests) == 5 + 3                 # only "mixed" was sent again
    assert finished_videos(tmp_path / "faces") == ["good", "mixed"]
    assert [r["file"] for r in read_index(tmp_path / "faces" / "mixed" / INDEX_FILE)] == \
           ["mixed-000-00.png", "mixed-001-00.png", "mixed-002-00.png"]


def test_service_still_failing_after_retries_stops_the_stage(tmp_path, portraits_bgr, fake_azure, azure_env,
                                                             capsys):
    write_video_frames(tmp_path / "frames", "clip", [portraits_bgr["astronaut"]] * 2)
    fake_azure.plan = ["malformed"] * 10

    assert stage01b.main(["--config", str(write_config(tmp_path, AZURE_MAX_RETRIES=2))]) == 1

    assert len(fake_azure.requests) == 3                     # the first try and two retries
    assert finished_videos(tmp_path / "faces") == []
    err = capsys.readouterr().err
    assert "still failing after 2 retries" in err and "is FACE_ENDPOINT the right address?" in err


def test_killed_run_reruns_to_the_same_files(tmp_path, portraits_bgr, fake_azure, azure_env):
    frames = [portraits_bgr["astronaut"], portraits_bgr["hopper"], np.full_like(portraits_bgr["astronaut"], 90)]
    videos = [f"v{n}" for n in range(4)]
    for video in videos:
        write_video_frames(tmp_path / "frames", video, frames)
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    clean_dir.mkdir(), killed_dir.mkdir()
    (clean_dir / "frames").symlink_to(tmp_path / "frames")
    (killed_dir / "frames").symlink_to(tmp_path / "frames")
    assert stage01b.main(["--config", str(write_config(clean_dir))]) == 0

    fake_azure.delay_seconds = 0.1
    killed_root = killed_dir / "faces"
    process = subprocess.Popen([sys.executable, str(REPO_DIR / "01b-crop_faces_with_azure-vision-api.py"),
                                "--config", str(write_config(killed_dir))], cwd=REPO_DIR, env=dict(os.environ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and process.poll() is None:
            partials = list(killed_root.glob(f".*{PARTIAL_MARK}*")) if killed_root.is_dir() else []
            if partials and any(partials[0].glob("*.png")) and killed_root.is_dir() and finished_videos(killed_root):
                break
            time.sleep(0.01)
        assert process.poll() is None, "the run ended before it could be killed"
    finally:
        process.kill()
        process.wait()
    assert 1 <= len(finished_videos(killed_root)) < len(videos)
    assert list(killed_root.glob(f".*{PARTIAL_MARK}*"))

    fake_azure.delay_seconds = 0
    assert stage01b.main(["--config", str(write_config(killed_dir))]) == 0
    assert not list(killed_root.glob(".*"))

    assert folder_contents(killed_root) == folder_contents(clean_dir / "faces")


# ------------------------------------------------------------------ the client on its own

def test_429_waits_as_long_as_retry_after_asks(fake_azure, portraits_bgr):
    fake_azure.plan, fake_azure.retry_after = ["429"], "1"
    detector, sleeps = new_detector(fake_azure, retry_base_seconds=30)
    [faces] = detector([rgb(portraits_bgr["astronaut"])])
    assert [(f.x, f.y, f.width, f.height, f.confidence) for f in faces] == [(92, 36, 40, 50, None)]
    assert sleeps == [1.0]                  # Retry-After, not the 30 s backoff
    assert len(fake_azure.requests) == 2 and detector.stats["retries"] == 1


def test_503_twice_then_success_backs_off_exponentially(fake_azure, portraits_bgr):
    fake_azure.plan = ["503", "503"]
    detector, sleeps = new_detector(fake_azure, retry_base_seconds=0.5)
    [faces] = detector([rgb(portraits_bgr["hopper"])])
    assert [(f.x, f.y, f.width, f.height) for f in faces] == [(95, 75, 70, 80)]
    assert len(fake_azure.requests) == 3 and detector.stats["retries"] == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0   # base x 2^n, with 50-100% jitter


def test_slow_answer_times_out_and_is_retried(fake_azure, portraits_bgr):
    fake_azure.plan, fake_azure.slow_seconds = ["slow"], 1.0
    detector, sleeps = new_detector(fake_azure, timeout_seconds=0.3)
    [faces] = detector([rgb(portraits_bgr["astronaut"])])
    assert len(faces) == 1 and len(fake_azure.requests) == 2 and detector.stats["retries"] == 1


def test_malformed_answer_is_retried(fake_azure, portraits_bgr):
    fake_azure.plan = ["malformed"]
    detector, _ = new_detector(fake_azure)
    [faces] = detector([rgb(portraits_bgr["astronaut"])])
    assert len(faces) == 1 and len(fake_azure.requests) == 2


@pytest.mark.parametrize("style", ["flat", "nested"])
def test_vision_error_bodies_of_both_shapes_are_read(fake_azure, portraits_bgr, style):
    fake_azure.refused_portrait, fake_azure.vision_error_style = "astronaut", style
    detector, _ = new_detector(fake_azure, service="vision")
    [result] = detector([rgb(portraits_bgr["astronaut"])])
    assert isinstance(result, ImageRejectedError)
    expected = "HTTP 400 InvalidImage: Decoding error" if style == "flat" else "HTTP 400 InvalidRequest: Decoding error"
    assert expected in str(result)
    assert len(fake_azure.requests) == 1


def test_redirect_is_not_followed(fake_azure, portraits_bgr):
    fake_azure.plan = ["redirect"]
    detector, _ = new_detector(fake_azure)
    with pytest.raises(AzureStopError, match="redirects elsewhere; not followed"):
        detector([rgb(portraits_bgr["astronaut"])])
    assert [r["path"] for r in fake_azure.requests] == ["/face/v1.2/detect"]   # nothing sent to /elsewhere


def test_connection_errors_are_retried_and_never_show_the_key(portraits_bgr):
    closed = FakeAzure()
    endpoint = closed.endpoint
    closed.close()   # nothing listens there any more
    sleeps = []
    detector = AzureFaceDetector("face", endpoint, KEY, calls_per_minute=None, max_retries=2,
                                 retry_base_seconds=0.01, sleep=sleeps.append)
    with pytest.raises(AzureStopError) as raised:
        detector([rgb(portraits_bgr["astronaut"])])
    assert "could not connect" in str(raised.value) and len(sleeps) == 2
    assert KEY not in str(raised.value) and KEY not in repr(raised.value) and KEY not in repr(detector)
    assert raised.value.__cause__ is None


def test_large_frames_are_shrunk_small_ones_enlarged_and_boxes_mapped_back(fake_azure):
    astronaut = portrait_images()["astronaut"]     # 512 x 512, about 500 KB as PNG
    limits = ImageLimits(min_bytes=1024, max_bytes=60_000, min_side=36, max_side=4096)
    detector, _ = new_detector(fake_azure, limits=limits)
    tiny = cv2.resize(astronaut, (30, 30), interpolation=cv2.INTER_AREA)
    big_faces, tiny_faces = detector([astronaut, tiny])

    big_request, tiny_request = fake_azure.requests
    assert big_request["bytes"] <= 60_000 and big_request["format"] == "jpeg"
    # Boxes come back in frame pixels, whatever size was sent (rounding: a pixel or two).
    [face] = big_faces
    assert np.allclose((face.x, face.y, face.width, face.height), PORTRAIT_BOXES["astronaut"], atol=2)
    assert tiny_request["size"] == (36, 36)          # the Face service's minimum side
    [face] = tiny_faces
    expected = np.array(PORTRAIT_BOXES["astronaut"]) * 30 / 512
    assert np.allclose((face.x, face.y, face.width, face.height), expected, atol=1)
    assert detector.stats["frames_rescaled"] == 2


def test_frame_that_cannot_fit_the_limits_is_refused_without_a_request(fake_azure):
    detector, _ = new_detector(fake_azure)
    [result] = detector([np.full((20, 5000, 3), 100, np.uint8)])   # 36 px high would be 9,000 px wide
    assert isinstance(result, ImageRejectedError) and "cannot be scaled" in str(result)
    assert fake_azure.requests == []


# ------------------------------------------------------------------ small parts

def test_rate_limit_spaces_request_starts():
    now = [100.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(20, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    now[0] += 10            # a slow request: no wait needed after it
    limiter.wait()
    assert sleeps == [3.0, 3.0] and limiter.waited_seconds == 6.0
    RateLimiter(None, sleep=sleeps.append).wait()
    assert sleeps == [3.0, 3.0]


def test_retry_after_in_seconds_or_as_a_date():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None
    assert parse_retry_after("100000", now) == 600     # capped


@pytest.mark.parametrize("endpoint, problem", [
    ("", "is not set"),
    ("https://<resource>.cognitiveservices.azure.com", "placeholder"),
    ("http://myface.cognitiveservices.azure.com", "unencrypted"),
    ("myface.cognitiveservices.azure.com", "not an endpoint address"),
])
def test_unusable_endpoints_are_refused(endpoint, problem):
    with pytest.raises(AzureSetupError, match=problem):
        check_endpoint(endpoint, "FACE_ENDPOINT")


def test_usable_endpoints_and_keys():
    assert check_endpoint("https://myface.cognitiveservices.azure.com/", "FACE_ENDPOINT") == \
        "https://myface.cognitiveservices.azure.com"
    assert check_endpoint("http://localhost:5000", "FACE_ENDPOINT") == "http://localhost:5000"  # Azure's container
    assert check_key(f"  {KEY}\n", "FACE_APIKEY") == KEY


def test_a_failed_video_lets_the_others_finish_then_exits_1(tmp_path, portraits_bgr, fake_azure, azure_env,
                                                           capsys):
    import socket

    write_video_frames(tmp_path / "frames", "a", [portraits_bgr["astronaut"]])
    write_video_frames(tmp_path / "frames", "b", [portraits_bgr["hopper"]])
    # A file where b's partial folder would be built: its mkdir fails (a fault, not a bad input).
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / f".b{PARTIAL_MARK}{socket.gethostname()}-{os.getpid()}").write_bytes(b"")

    assert stage01b.main(["--config", str(write_config(tmp_path))]) == 1
    out = capsys.readouterr().out
    assert "(1 done, 1 failed)" in out and "exit status 1" in out
    assert finished_videos(tmp_path / "faces") == ["a"]
