"""Stage 04 web page: the JSON endpoint and the upload page through Flask's test client (real
uploads of generated portraits, videos, non-media and oversized files), and one end-to-end
test that drives the real page in headless Chromium over a real local server.

    .venv/bin/pytest tests/test_04_web.py

The Chromium test needs Debian's chromium and chromium-driver (/usr/bin/chromium,
/usr/bin/chromedriver; .ci/run installs them) and is skipped when they are absent. The tiny
fresh model (fixed seed, weights=None) and MTCNN load once for the whole file.
"""

import base64
import contextlib
import io
import re
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_detect.inference import records, web
from deepfake_detect.inference.scoring import Scorer
from deepfake_detect.inference.verdicts import verdict_of
from deepfake_detect.settings import load_config
from conftest import write_config
from test_04_detect import build_test_model, write_media

UPLOAD_LIMIT_MB = 2
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage04web")
    model_path = build_test_model(root / "runs" / "test" / "model.keras")
    config = write_config(root / "config.py", RUNS_DIR=root / "runs", WEB_MAX_UPLOAD_MB=UPLOAD_LIMIT_MB)
    return {"root": root, "model": model_path, "media": write_media(root / "media"), "cfg": load_config(config)}


@pytest.fixture(scope="module")
def scorer(workspace):
    return Scorer(workspace["model"])


@pytest.fixture(scope="module")
def app(workspace, scorer):
    return web.create_app(scorer, workspace["cfg"])


@pytest.fixture()
def client(app, tmp_path, monkeypatch):
    """A test client whose uploads land in this test's own temporary folder, to check cleanup."""
    uploads = tmp_path / "system_tmp"
    uploads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(uploads))
    test_client = app.test_client()
    test_client.uploads = uploads
    return test_client


def upload(client, url, path=None, data=None, name=None):
    content = data if data is not None else Path(path).read_bytes()
    return client.post(url, data={"file": (io.BytesIO(content), name or Path(path).name)},
                       content_type="multipart/form-data")


def assert_no_trace(response):
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text


# ------------------------------------------------------------------ the JSON endpoint

def test_api_scores_an_image(client, workspace):
    response = upload(client, "/api/detect", workspace["media"]["astronaut.png"])
    assert response.status_code == 200
    result = response.get_json()
    assert result["status"] == "scored" and result["type"] == "image" and result["faces"] >= 1
    assert result["p_real"] + result["p_fake"] == pytest.approx(1)
    cfg = workspace["cfg"]
    assert result["verdict"] == verdict_of(result["p_real"], cfg.THRESHOLD, cfg.UNCERTAIN_MARGIN)
    assert "P(fake) = 1 - P(real)" in result["score_meaning"]
    assert np.mean([f["p_real"] for f in result["face_scores"]]) == pytest.approx(result["p_real"])
    assert "crop" not in result["face_scores"][0]
    assert list(client.uploads.iterdir()) == []  # the upload is gone once scored


def test_api_agrees_with_the_command_line_scorer(client, workspace, scorer):
    """Same scores, and the same record under the same names as the command line's --json."""
    path = workspace["media"]["hopper.jpg"]
    cfg = workspace["cfg"]
    expected = scorer.score_file(path, cfg)
    result = upload(client, "/api/detect", path).get_json()
    assert result["p_real"] == pytest.approx(expected.p_real, abs=1e-6)
    assert result["faces"] == len(expected.faces)
    assert result["schema"] == records.SCHEMA_VERSION and result["input"] == "hopper.jpg"
    command_line = records.results_document([expected], cfg, "model.keras", "", faces=True)
    cli_record = command_line["inputs"][0]
    assert set(cli_record) <= set(result)
    assert set(cli_record["face_scores"][0]) == set(result["face_scores"][0])
    context = ("threshold", "uncertain_margin", "score_rule", "score_meaning")
    assert {name: result[name] for name in context} == {name: command_line[name] for name in context}


def test_api_scores_a_video_and_returns_crops_on_request(client, workspace):
    response = upload(client, "/api/detect?crops=1", workspace["media"]["astronaut.mp4"])
    result = response.get_json()
    assert response.status_code == 200 and result["type"] == "video" and result["frames"] == 2
    assert {f["frame"] for f in result["face_scores"]} == {0, 10}
    crop = result["face_scores"][0]["crop"]
    assert crop.startswith("data:image/jpeg;base64,")
    image = cv2.imdecode(np.frombuffer(base64.b64decode(crop.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and max(image.shape[:2]) <= records.CROP_DISPLAY_SIDE


def test_api_no_face_has_no_score(client, workspace):
    response = upload(client, "/api/detect", workspace["media"]["plain.png"])
    result = response.get_json()
    assert response.status_code == 200
    assert result["status"] == "no face" and result["p_real"] is None and result["verdict"] is None


@pytest.mark.parametrize("name, content, status", [
    ("notes.txt", b"just some notes\n", 415),
    ("photo.png", b"this is text pretending to be a PNG\n", 415),   # judged by content, not name
    ("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, 422),  # a video header, nothing to decode
    ("photo.jpg", b"\xff\xd8\xff\xe0" + b"garbage" * 20, 422),         # a JPEG header, nothing to decode
])
def test_api_rejects_what_it_cannot_decode(client, name, content, status):
    response = upload(client, "/api/detect", data=content, name=name)
    assert response.status_code == status
    assert name in response.get_json()["error"]
    assert_no_trace(response)
    assert list(client.uploads.iterdir()) == []


def test_api_oversized_and_missing_uploads(client):
    response = upload(client, "/api/detect", data=b"\x89PNG\r\n\x1a\n" + b"0" * (UPLOAD_LIMIT_MB * 1024 * 1024),
                      name="huge.png")
    assert response.status_code == 413
    assert f"{UPLOAD_LIMIT_MB} MB" in response.get_json()["error"]
    response = client.post("/api/detect", data={}, content_type="multipart/form-data")
    assert response.status_code == 400 and "Choose" in response.get_json()["error"]


# ------------------------------------------------------------------ the page

def test_page_shows_the_form(client):
    response = client.get("/")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'type="file"' in text and 'enctype="multipart/form-data"' in text
    assert not re.search(r'(src|href)="(https?:)?//', text)  # offline: nothing fetched from elsewhere


def test_page_shows_verdict_score_and_crops(client, workspace, scorer):
    path = workspace["media"]["astronaut.png"]
    expected = scorer.score_file(path, workspace["cfg"])
    response = upload(client, "/", path)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.search(r'id="verdict">(\w+)<', text).group(1) == expected.verdict
    assert float(re.search(r'id="p-fake">([0-9.]+)<', text).group(1)) == pytest.approx(expected.p_fake, abs=5e-4)
    assert text.count('class="crop" src="data:image/jpeg;base64,') == len(expected.faces) >= 1
    assert "astronaut.png" in text and "P(fake) = 1 - P(real)" in text


def test_page_errors_are_sentences_not_stack_traces(client, app):
    for name, content, status in (("fake.png", b"plain text\n", 415),
                                  ("big.mp4", b"\x00\x00\x00\x18ftypmp42" + b"0" * (UPLOAD_LIMIT_MB * 1024 * 1024), 413)):
        response = upload(client, "/", data=content, name=name)
        assert response.status_code == status
        assert 'id="error"' in response.get_data(as_text=True)
        assert_no_trace(response)
    assert client.get("/no-such-page").status_code == 404


def test_an_unexpected_error_never_reaches_the_browser(workspace, scorer):
    app = web.create_app(scorer, workspace["cfg"])

    def broken():
        raise RuntimeError("secret internal detail")

    app.add_url_rule("/broken", "broken", broken)
    response = app.test_client().get("/broken")
    assert response.status_code == 500
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert_no_trace(response)


def test_a_scoring_failure_is_a_sentence_and_the_reason_stays_in_the_log(client, workspace, scorer, monkeypatch):
    def broken_detector(images_rgb):
        raise RuntimeError("secret detector detail")

    monkeypatch.setattr(scorer, "detector", broken_detector)
    for url in ("/api/detect", "/"):
        response = upload(client, url, workspace["media"]["astronaut.png"])
        assert response.status_code == 500
        assert "secret detector detail" not in response.get_data(as_text=True)
        assert_no_trace(response)
    assert list(client.uploads.iterdir()) == []


def test_user_file_names_are_escaped(client, workspace):
    response = upload(client, "/", workspace["media"]["astronaut.png"], name="<script>alert(1)</script>.png")
    assert "<script>alert(1)" not in response.get_data(as_text=True)


def test_serve_reports_a_busy_port_and_binds_loopback_by_default(workspace, scorer, capsys):
    import importlib

    stage04 = importlib.import_module("04-detect_deepfakes")
    assert workspace["cfg"].WEB_HOST == "127.0.0.1"
    busy = web.make_server(web.create_app(scorer, workspace["cfg"]), "127.0.0.1", 0)
    try:
        config = str(workspace["root"] / "config.py")
        status = stage04.main(["--config", config, "--serve", "--port", str(busy.server_port)], scorer=scorer)
    finally:
        busy.server_close()
    assert status == 2
    assert f"cannot listen on 127.0.0.1:{busy.server_port}" in capsys.readouterr().err


# ------------------------------------------------------------------ the real page in Chromium

@contextlib.contextmanager
def chromium_on(app, tmp_path, extra_flags=()):
    """(driver, base URL) of headless Chromium (with `extra_flags`) and a real local server for
    `app`; skips without Debian's chromium and chromedriver."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver (apt install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    server = web.make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}", *extra_flags):
        options.add_argument(flag)
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(60)
        yield driver, f"http://127.0.0.1:{server.server_port}/"
    finally:
        if driver:
            driver.quit()
        server.shutdown()
        thread.join(timeout=10)


def test_headless_chromium_uploads_an_image_and_reads_the_verdict(app, workspace, scorer, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium_on(app, tmp_path) as (driver, url):
        driver.get(url)
        image = workspace["media"]["hopper.jpg"]
        driver.find_element(By.ID, "file").send_keys(str(image))
        driver.find_element(By.ID, "submit").click()
        verdict = WebDriverWait(driver, 60).until(
            expected_conditions.presence_of_element_located((By.ID, "verdict"))).text
        p_fake = float(driver.find_element(By.ID, "p-fake").text)
        crops = driver.find_elements(By.CSS_SELECTOR, ".faces img.crop")
    expected = scorer.score_file(image, workspace["cfg"])
    assert verdict == expected.verdict
    assert p_fake == pytest.approx(expected.p_fake, abs=5e-4)
    assert len(crops) == len(expected.faces) >= 1


# ------------------------------------------------------------------ heatmaps, timeline, progress

def decode_data_uri(uri):
    assert uri.startswith("data:image/jpeg;base64,")
    return cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def test_api_explain_returns_grad_cam_overlays(client, workspace):
    result = upload(client, "/api/detect?explain=1&crops=1", workspace["media"]["hopper.jpg"]).get_json()
    assert result["faces"] >= 1
    for face in result["face_scores"]:
        crop, overlay = decode_data_uri(face["crop"]), decode_data_uri(face["overlay"])
        assert overlay.shape == crop.shape
        assert np.abs(overlay.astype(int) - crop.astype(int)).mean() > 10  # the heatmap is painted on
    plain = upload(client, "/api/detect", workspace["media"]["hopper.jpg"]).get_json()
    assert "overlay" not in plain["face_scores"][0] and plain["timeline"] == []


def test_page_shows_heatmaps_and_the_timeline_of_a_video(client, workspace):
    response = upload(client, "/", workspace["media"]["astronaut.mp4"])
    text = response.get_data(as_text=True)
    faces = upload(client, "/api/detect", workspace["media"]["astronaut.mp4"]).get_json()["face_scores"]
    assert response.status_code == 200
    assert text.count('class="overlay" src="data:image/jpeg;base64,') == len(faces) == 2
    svg = re.search(r'<div id="timeline"><svg.*?</svg>', text, re.S).group(0)
    points = re.search(r'<polyline class="scores" points="([^"]+)"', svg).group(1).split()
    from deepfake_detect.inference import timeline

    read_back = [1 - (float(p.split(",")[1]) - timeline.TOP) / timeline.PLOT_HEIGHT for p in points]
    assert read_back == pytest.approx([f["p_fake"] for f in faces], abs=0.01)


def wait_for_job(client, job_id, seconds=120):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = client.get(f"/api/jobs/{job_id}").get_json()
        if state["state"] == "done":
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running after {seconds} s")


def wait_for_expected_frames(client, status_url, seconds=30):
    import time

    deadline = time.monotonic() + seconds
    while (state := client.get(status_url).get_json())["frames_expected"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return state


def test_a_job_reports_frames_read_of_expected_then_its_result(client, workspace, scorer):
    video = workspace["media"]["astronaut.mp4"]  # 2 s at 10 fps: frames 0 and 10 are read
    with scorer.lock:  # another upload is being scored: this one waits, and says so
        response = upload(client, "/api/jobs?crops=1&explain=1", video)
        assert response.status_code == 202
        job = response.get_json()
        state = wait_for_expected_frames(client, job["status_url"])  # the header is read first, then it waits
        assert state["state"] == "running" and state["frames_read"] == 0 and state["frames_expected"] == 2
        waiting = client.get(job["page_url"])
        assert waiting.status_code == 202
        assert "frames read 0 of 2" in waiting.get_data(as_text=True)
        assert 'http-equiv="refresh"' in waiting.get_data(as_text=True)  # reloads itself without JavaScript
    state = wait_for_job(client, job["job"])
    expected = scorer.score_file(video, workspace["cfg"])
    assert state["status"] == 200 and state["frames_read"] == 2
    assert state["result"]["p_real"] == pytest.approx(expected.p_real, abs=1e-5)
    assert all("overlay" in face and "crop" in face for face in state["result"]["face_scores"])
    page = client.get(job["page_url"]).get_data(as_text=True)
    assert re.search(r'id="verdict">(\w+)<', page).group(1) == expected.verdict
    assert '<div id="timeline"><svg' in page
    assert list(client.uploads.iterdir()) == []


def test_jobs_are_limited_and_say_why_they_fail(client, workspace, scorer):
    with scorer.lock:
        started = [upload(client, "/api/jobs", workspace["media"]["hopper.jpg"]) for _ in range(web.MAX_RUNNING_JOBS)]
        assert [r.status_code for r in started] == [202] * web.MAX_RUNNING_JOBS
        busy = upload(client, "/api/jobs", workspace["media"]["hopper.jpg"])
        assert busy.status_code == 429 and "try again" in busy.get_json()["error"]
    for response in started:
        assert wait_for_job(client, response.get_json()["job"])["status"] == 200
    assert upload(client, "/api/jobs", data=b"plain text\n", name="x.png").status_code == 415
    broken = upload(client, "/api/jobs", data=b"\xff\xd8\xff\xe0" + b"garbage" * 20, name="broken.jpg")
    state = wait_for_job(client, broken.get_json()["job"])
    assert state["status"] == 422 and "broken.jpg" in state["error"] and "result" not in state
    assert client.get("/api/jobs/no-such-job").status_code == 404
    assert client.get("/jobs/no-such-job").status_code == 404
    assert list(client.uploads.iterdir()) == []


def test_headless_chromium_shows_progress_then_heatmaps_and_the_timeline(app, workspace, scorer, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    video = workspace["media"]["astronaut.mp4"]
    with chromium_on(app, tmp_path) as (driver, url):
        driver.get(url)
        driver.find_element(By.ID, "file").send_keys(str(video))
        with scorer.lock:  # held: the job waits, so its progress can be seen
            driver.find_element(By.ID, "submit").click()
            WebDriverWait(driver, 30).until(
                expected_conditions.text_to_be_present_in_element((By.ID, "progress-text"), "frames read 0 of 2"))
            assert driver.find_element(By.ID, "progress-box").is_displayed()
            assert not driver.find_element(By.ID, "submit").is_displayed()
        verdict = WebDriverWait(driver, 60).until(
            expected_conditions.presence_of_element_located((By.ID, "verdict"))).text
        overlays = driver.find_elements(By.CSS_SELECTOR, ".faces img.overlay")
        circles = driver.find_elements(By.CSS_SELECTOR, "#timeline svg circle")
        loaded = driver.execute_script(
            "return Array.from(document.querySelectorAll('.faces img')).every(i => i.complete && i.naturalWidth > 0)")
    expected = scorer.score_file(video, workspace["cfg"])
    assert verdict == expected.verdict
    assert len(overlays) == len(expected.faces) == 2 and loaded
    assert len(circles) == 2  # one point per frame with a face


# ------------------------------------------------------------------ cross-site uploads, bounded scoring, secrets

EVIL_ORIGIN = "https://evil.example"
TOKEN = "test-token-" + "z" * 24


def one_sentence(text):
    assert "Traceback" not in text and 'File "' not in text
    assert text.count(". ") <= 1 and text.endswith("."), text


def test_a_cross_site_upload_is_refused_and_a_same_origin_one_scored(client, workspace):
    image = workspace["media"]["hopper.jpg"]

    def post(url, headers):
        return client.post(url, data={"file": (io.BytesIO(image.read_bytes()), "hopper.jpg")},
                           content_type="multipart/form-data", headers=headers)

    for url in ("/api/detect", "/api/jobs", "/"):
        for headers in ({"Origin": EVIL_ORIGIN}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                        {"Origin": "http://localhost", "Sec-Fetch-Site": "same-site"}):
            response = post(url, headers)
            assert response.status_code == 403, (url, headers)
            if url.startswith("/api/"):
                one_sentence(response.get_json()["error"])
            else:
                assert 'id="error"' in response.get_data(as_text=True)
    assert client.post("/login", data={"token": "x"}, headers={"Origin": EVIL_ORIGIN}).status_code == 403
    assert list(client.uploads.iterdir()) == []  # refused before anything was saved
    # the page itself (the test client's Host is localhost), and curl or a script sending neither header
    same_origin = post("/api/detect", {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert same_origin.status_code == 200 and same_origin.get_json()["status"] == "scored"
    assert post("/api/detect", {}).status_code == 200
    assert client.get("/", headers={"Origin": EVIL_ORIGIN, "Sec-Fetch-Site": "cross-site"}).status_code == 200  # reads


def test_a_cross_site_upload_is_refused_even_with_the_token(workspace, scorer):
    client = web.create_app(scorer, workspace["cfg"], token=TOKEN).test_client()
    image = workspace["media"]["hopper.jpg"]
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for origin, status in ((EVIL_ORIGIN, 403), ("http://localhost", 200)):
        response = client.post("/api/detect", data={"file": (io.BytesIO(image.read_bytes()), "hopper.jpg")},
                               content_type="multipart/form-data", headers={**bearer, "Origin": origin})
        assert response.status_code == status


def test_healthz_says_how_many_workers_are_up_without_the_token(workspace, scorer):
    client = web.create_app(scorer, workspace["cfg"], token=TOKEN).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json()["workers_up"] == 1
    assert client.get("/api/jobs/x").status_code == 401  # only /healthz is open


def test_synchronous_uploads_share_the_scoring_slots_with_jobs(app, workspace, scorer):
    """MAX_RUNNING_JOBS + 2 real concurrent uploads to a real server while the scorer is busy:
    MAX_RUNNING_JOBS wait for it, the other 2 (and a job) get 429 with Retry-After at once, and
    job polling is still answered; then the waiting ones are scored."""
    import requests
    from concurrent.futures import ThreadPoolExecutor, as_completed

    image = workspace["media"]["hopper.jpg"]
    server = web.make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"

    def upload_to(path):
        return requests.post(url + path, files={"file": ("hopper.jpg", image.read_bytes())}, timeout=300)

    try:
        with ThreadPoolExecutor(web.MAX_RUNNING_JOBS + 2) as pool:
            with scorer.lock:  # the scorer is busy: every upload that got a slot waits for it
                paths = (["/api/detect", "/"] * web.MAX_RUNNING_JOBS)[:web.MAX_RUNNING_JOBS + 2]
                futures = [pool.submit(upload_to, path) for path in paths]
                refused = [future.result() for _, future in zip(range(2), as_completed(futures, timeout=120))]
                assert [answer.status_code for answer in refused] == [429, 429]
                assert all(answer.headers["Retry-After"] == str(web.RETRY_AFTER_S) for answer in refused)
                job = upload_to("/api/jobs")
                assert job.status_code == 429 and "Retry-After" in job.headers
                assert requests.get(url + "/api/jobs/no-such-job", timeout=30).status_code == 404  # a thread is free
            answers = [future.result(timeout=300) for future in futures]
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert sorted(answer.status_code for answer in answers) == [200] * web.MAX_RUNNING_JOBS + [429, 429]
    assert upload(app.test_client(), "/api/detect", image).status_code == 200  # every slot was given back


def test_the_page_template_receives_no_secret(workspace, scorer):
    from types import SimpleNamespace

    from flask import template_rendered

    secrets = {"WEB_TOKEN": TOKEN, "FACE_APIKEY": "face-key-" + "f" * 24, "VISION_KEY": "vision-key-" + "v" * 24}
    cfg = SimpleNamespace(**{**vars(workspace["cfg"]), **secrets})
    app = web.create_app(scorer, cfg)
    seen = []

    def record(sender, template, context, **extra):
        seen.append(context)

    for path in ("/", "/live"):  # the upload page and the live view
        seen.clear()
        with template_rendered.connected_to(record, app):
            page = app.test_client().get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200 and seen, path
        for value in secrets.values():
            assert value not in page.get_data(as_text=True), path
            assert all(value not in repr(item) for context in seen for item in context.values()), path
