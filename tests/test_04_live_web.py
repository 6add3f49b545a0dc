"""The web page's live view (/live): its API through Flask's test client (real JPEG frames of a
sample take, refused frames, bounds, the token, nothing written to disk) and headless Chromium with
a fake camera playing a sample take, which opens /live, starts the camera and reads a verdict.

    .venv/bin/pytest tests/test_04_live_web.py

The Chromium test needs Debian's chromium and chromium-driver (as tests/test_04_web.py) and is
skipped without them. The model is test_04_detect's tiny fresh one (weights=None).
"""

import subprocess
import tempfile
import time
import types

import cv2
import numpy as np
import pytest

from deepfake_detect.inference import web
from deepfake_detect.inference.scoring import Scorer
from deepfake_detect.settings import load_config
from conftest import write_config
from test_04_detect import build_test_model
from test_04_live import write_sample_take
from test_04_web import chromium_on

TOKEN = "a-test-token-long-enough-1234"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("liveweb")
    model = build_test_model(root / "runs" / "test" / "model.keras")
    config = write_config(root / "config.py", RUNS_DIR=root / "runs", LIVE_WEB_MAX_SESSIONS=2,
                          LIVE_WEB_FPS=50, LIVE_WEB_IDLE_SECONDS=1)
    take = write_sample_take(root / "take.mp4", seconds=2)
    capture = cv2.VideoCapture(str(take))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return {"root": root, "cfg": load_config(config), "model": model, "take": take, "frames": frames}


@pytest.fixture(scope="module")
def scorer(workspace):
    return Scorer(workspace["model"])


@pytest.fixture()
def client(workspace, scorer, tmp_path, monkeypatch):
    """A test client of a fresh app, with the system's temporary folder redirected to an empty one."""
    uploads = tmp_path / "system_tmp"
    uploads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(uploads))
    test_client = web.create_app(scorer, workspace["cfg"]).test_client()
    test_client.uploads = uploads
    return test_client


def jpeg(frame, quality=85):
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def send(client, session, t, body, wait=True):
    """POST one frame, after 1/LIVE_WEB_FPS (50 here) when `wait`, as the page paces them."""
    if wait:
        time.sleep(0.03)
    return client.post(f"/api/live/frame?session={session}&t={t}", data=body, content_type="image/jpeg")


def test_live_page_obeys_the_csp_and_is_linked_from_the_upload_page(client):
    page = client.get("/live")
    html, csp = page.get_data(as_text=True), page.headers["Content-Security-Policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert page.status_code == 200 and "script-src 'nonce-" in csp and "unsafe-inline" not in csp
    assert html.count("<script") == 1 and f'<script nonce="{nonce}" src="/live.js">' in html
    assert 'id="camera"' in html and 'id="screen"' in html and "HTTPS" in html
    script = client.get("/live.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert "getDisplayMedia" in script.get_data(as_text=True) and "sendBeacon" in script.get_data(as_text=True)
    assert 'href="/live"' in client.get("/").get_data(as_text=True)


def test_frames_are_scored_in_memory_and_judged_per_person(client, workspace):
    session = client.post("/api/live/start").get_json()["session"]
    persons = []
    for number, frame in enumerate(workspace["frames"][:12:2]):
        answer = send(client, session, number * 0.2, jpeg(frame))
        assert answer.status_code == 200, answer.get_json()
        data = answer.get_json()
        assert data["width"] == frame.shape[1] and data["update"]["type"] == "update"
        persons += [p["person"] for p in data["update"]["persons"]]
    assert persons and set(persons) == {1}, persons  # one face, followed as one person
    face = data["faces"][0]
    assert face["person"] == 1 and len(face["box"]) == 4 and 0 <= face["p_fake"] <= 1
    assert data["update"]["persons"][0]["verdict"] in ("REAL", "FAKE", "UNCERTAIN")
    assert client.post(f"/api/live/end?session={session}").status_code == 204
    assert send(client, session, 5.0, jpeg(workspace["frames"][0])).status_code == 404
    assert list(client.uploads.iterdir()) == []  # no frame ever touched the disk


def test_bad_frames_are_refused_before_decoding(client, workspace):
    session = client.post("/api/live/start").get_json()["session"]
    png = cv2.imencode(".png", workspace["frames"][0])[1].tobytes()
    assert send(client, session, 0.1, png).status_code == 415
    huge = jpeg(np.zeros((2200, 2200, 3), np.uint8), quality=10)  # small file, too many pixels
    assert send(client, session, 0.2, huge).status_code == 413
    assert send(client, session, 0.3, b"\xff\xd8\xff" + b"\x00" * (600 * 1024)).status_code == 413
    assert send(client, session, 0.4, b"\xff\xd8\xff\xe0garbage").status_code == 422
    assert send(client, session, "nan", jpeg(workspace["frames"][0])).status_code == 400
    assert send(client, session, 0.5, jpeg(workspace["frames"][0])).status_code == 200
    assert send(client, session, 0.45, jpeg(workspace["frames"][1])).status_code == 400  # out of order
    assert client.get(f"/api/live/frame?session={session}").status_code == 405  # state changes are POSTs only


def test_frames_faster_than_live_web_fps_are_refused(workspace, scorer):
    slow = types.SimpleNamespace(**{**vars(workspace["cfg"]), "LIVE_WEB_FPS": 2})
    client = web.create_app(scorer, slow).test_client()
    session = client.post("/api/live/start").get_json()["session"]
    assert send(client, session, 0.0, jpeg(workspace["frames"][0]), wait=False).status_code == 200
    too_soon = send(client, session, 0.1, jpeg(workspace["frames"][1]), wait=False)
    assert too_soon.status_code == 429 and "LIVE_WEB_FPS" in too_soon.get_json()["error"]
    time.sleep(0.5)
    assert send(client, session, 0.6, jpeg(workspace["frames"][2]), wait=False).status_code == 200


def test_sessions_are_bounded_and_end_when_idle(client, workspace):
    first = client.post("/api/live/start").get_json()["session"]
    client.post("/api/live/start")
    refused = client.post("/api/live/start")
    assert refused.status_code == 429 and "live views" in refused.get_json()["error"]
    time.sleep(workspace["cfg"].LIVE_WEB_IDLE_SECONDS + 0.3)
    assert send(client, first, 0.1, jpeg(workspace["frames"][0])).status_code == 404  # idle: ended
    assert client.post("/api/live/start").status_code == 200  # their places are free again


def test_live_routes_need_the_token_like_the_upload_routes(workspace, scorer):
    client = web.create_app(scorer, workspace["cfg"], token=TOKEN).test_client()
    assert client.post("/api/live/start").status_code == 401
    assert client.post("/api/live/frame?session=x&t=0", data=b"x").status_code == 401
    assert client.get("/live").status_code == 401
    started = client.post("/api/live/start", headers={"Authorization": f"Bearer {TOKEN}"})
    assert started.status_code == 200
    # the upload routes' cross-site check holds for the live ones: another site's page is refused
    for header in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        for path in ("/api/live/start", "/api/live/frame?session=x&t=0", "/api/live/end?session=x"):
            refused = client.post(path, headers={"Authorization": f"Bearer {TOKEN}", **header})
            assert refused.status_code == 403, (path, header)


def write_y4m(video, path):
    """The take as raw YUV4MPEG2, what Chromium's fake camera plays (--use-file-for-fake-video-capture)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(video),
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def test_headless_chromium_with_a_fake_camera_reads_a_verdict_for_the_person(workspace, scorer, tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    y4m = write_y4m(workspace["take"], tmp_path / "take.y4m")
    cfg = load_config(write_config(tmp_path / "config.py", RUNS_DIR=workspace["root"] / "runs"))
    flags = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
             f"--use-file-for-fake-video-capture={y4m}"]
    app = web.create_app(scorer, cfg)
    sessions = app.blueprints["live"].sessions
    with chromium_on(app, tmp_path, extra_flags=flags) as (driver, url):
        driver.get(url + "live")
        driver.find_element(By.ID, "camera").click()
        person = WebDriverWait(driver, 90).until(lambda d: next(
            (item.text for item in d.find_elements(By.CSS_SELECTOR, "#persons li span") if item.text), None))
        status = driver.find_element(By.ID, "status").text
        errors = driver.find_element(By.ID, "live-error").text
        assert len(sessions.sessions) == 1
        driver.get(url)  # leaving the page (pagehide) ends its session at once, by a beacon
        WebDriverWait(driver, 10).until(lambda d: not sessions.sessions)
    assert person.startswith("person ") and person.split()[2] in ("REAL", "FAKE", "UNCERTAIN"), person
    assert "Verdict:" in status and not errors


def test_a_worker_process_scores_frames_and_uploads_keep_a_worker(workspace):
    """Through a real WorkerPool of 2 spawned workers: a frame is scored in a worker (sent through
    its pipe, never a file), and live frames may hold at most WEB_WORKERS - 1 of them at once."""
    from deepfake_detect.inference.web_workers import WorkerPool

    cfg = types.SimpleNamespace(**{**vars(workspace["cfg"]), "WEB_WORKERS": 2})
    pool = WorkerPool(workspace["model"], cfg).start()
    try:
        app = web.create_app(pool, cfg)
        assert app.blueprints["live"].sessions.worker_share == 1  # of 2: one is always left for uploads
        client = app.test_client()
        session = client.post("/api/live/start").get_json()["session"]
        answer = send(client, session, 0.0, jpeg(workspace["frames"][0]))
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["faces"] and answer.get_json()["update"]["persons"][0]["person"] == 1
        assert pool.idle.qsize() == 2  # the worker came back to the pool
    finally:
        pool.close()
