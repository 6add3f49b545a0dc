"""Stage 04's local web page, like the original's DF-Detect site: upload an image or a short
video, see the verdict, the score and every face crop with its score.

    python 04-detect_deepfakes.py --serve            # then open http://127.0.0.1:8000

    GET  /             the upload page
    POST /             upload (form field "file"), answers with the same page and the result
    POST /api/detect   the same upload, answers JSON: an input record of docs/results.md (add
                       ?crops=1 for the crops as data: URIs, ?explain=1 for Grad-CAM overlays)
    POST /api/jobs     the same upload, scored in the background: answers 202 {"job": id} at once
    GET  /api/jobs/ID  {"state": "running", "frames_read", "frames_expected"} while it is scored,
                       then {"state": "done", "status": HTTP status, "result" or "error"}
    GET  /jobs/ID      the page with that job's result (where the page's script goes when done)

The page's own script (inline: nothing is fetched from elsewhere) sends the upload as a job and
shows a progress bar (frames read of frames expected) until it is done; without JavaScript the
form posts to / and the answer comes when scoring is done. The page always shows each crop's
Grad-CAM overlay when the model is a Keras one (explain.py), and a video's P(fake) per frame as
an inline SVG (timeline.py).

The model and the detector are loaded once, before the server starts; requests take turns
on them. An upload is accepted only if its first bytes are those of an image or a video
(whatever its name or declared type) and it is at most WEB_MAX_UPLOAD_MB. It is written to a
private folder in the system's temporary folder, never to a served one (this app serves no
files at all), and deleted as soon as it is scored. Errors reach the browser as one sentence;
stack traces go to the server's log only.
"""

import math
import secrets
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import cv2
from flask import Flask, current_app, jsonify, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from deepfake_detect.inference import records
from deepfake_detect.inference.media import SNIFF_BYTES, sniff_media_kind
from deepfake_detect.inference.results import FAILED, SCORED, UNREADABLE, VIDEO
from deepfake_detect.inference.verdicts import score_meaning

MAX_CROPS_SHOWN = 60      # a long video has one face a second; the page shows the first ones
ACCEPTED_FORMATS = "PNG, JPEG, BMP, WebP or TIFF images; MP4, MOV, AVI, MKV, WebM, MPEG or FLV videos"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_RUNNING_JOBS = 4      # uploads waiting or being scored at once; more get 429
MAX_KEPT_JOBS = 20        # finished jobs kept for their pages; the oldest are dropped


class UploadError(Exception):
    """An upload that cannot be scored: HTTP status and a sentence for the user."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def result_payload(result, cfg, with_crops, with_overlays=False):
    """The JSON answer for one scored upload (also what the page shows): its input record with
    the face records of its first MAX_CROPS_SHOWN faces (all without crops and overlays), the
    context fields, and for a video its timeline. See docs/results.md."""
    from deepfake_detect.inference.timeline import frame_series, person_series

    shown = MAX_CROPS_SHOWN if with_crops or with_overlays else None
    faces = [records.face_record(face, cfg, overlay=with_overlays, crop=with_crops) for face in result.faces[:shown]]
    timeline = [{"frame": frame, "p_fake": p_fake} for frame, p_fake in frame_series(result)] \
        if result.kind == VIDEO else []
    person_timelines = [{"person": person, "points": [{"frame": frame, "p_fake": p} for frame, p in points]}
                        for person, points in person_series(result).items()] if result.kind == VIDEO else []
    return {"schema": records.SCHEMA_VERSION, **records.input_record(result), "face_scores": faces,
            "timeline": timeline, "person_timelines": person_timelines, **records.context_fields(cfg),
            "score_meaning": score_meaning(cfg)}


def score_upload(upload, scorer, cfg, explain=False):
    """Check, save, score and delete one uploaded file (a werkzeug FileStorage); return its Result.

    Raises UploadError for a missing file, a type that is not an image/video by content, or
    media that cannot be decoded.
    """
    folder, path, kind = save_upload(upload)
    return score_saved(folder, path, kind, upload.filename, scorer, cfg, explain)


def save_upload(upload):
    """Check an upload's content and save it to a private temporary folder; return (folder,
    path, kind). Raises UploadError for a missing file or content that is not an image/video."""
    if upload is None or not upload.filename:
        raise UploadError(400, "Choose an image or a video to upload.")
    header = upload.stream.read(SNIFF_BYTES)
    upload.stream.seek(0)
    kind = sniff_media_kind(header)
    if kind is None:
        raise UploadError(415, f"{upload.filename} is not an image or a video this page can read "
                               f"(its content is not one of: {ACCEPTED_FORMATS}).")
    folder = Path(tempfile.mkdtemp(prefix="deepfake-detect-upload-"))
    path = folder / f"upload-{kind}"  # the user's file name never reaches the file system
    try:
        upload.save(path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, path, kind


def score_saved(folder, path, kind, file_name, scorer, cfg, explain=False, progress=None, logger=None):
    """Score a saved upload, delete its folder and return the Result; UploadError for media
    that cannot be decoded or a failure while scoring."""
    try:
        with scorer.lock:
            result = scorer.score_file(path, cfg, kind=kind, explain=explain, progress=progress)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.path = file_name
    if result.status == UNREADABLE:
        raise UploadError(422, f"{file_name} looks like a {kind} but cannot be decoded: {result.reason}.")
    if result.status == FAILED:
        (logger or current_app.logger).error("scoring %s failed: %s", file_name, result.reason)
        raise UploadError(500, "Scoring failed on this file; the details are in the server's log.")
    return result


def expected_frames(path, kind, frames_per_second):
    """How many frames scoring will read: 1 for an image; for a video, its announced frame
    count over the kept-frame step (None when the video does not say)."""
    if kind != VIDEO:
        return 1
    from deepfake_detect.frames import frame_step

    capture = cv2.VideoCapture(str(path))
    try:
        count, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    if not count or count < 0 or not fps or fps <= 0:
        return None
    return math.ceil(count / frame_step(fps, frames_per_second))


class Jobs:
    """Uploads scored in background threads, one at a time (the scorer's lock), with their
    progress; finished ones are kept for their pages (MAX_KEPT_JOBS at most)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.jobs = {}  # id -> dict(state, frames_read, frames_expected, input, type, status, payload, error)

    def running(self):
        return sum(job["state"] == "running" for job in self.jobs.values())

    def start(self, upload, scorer, cfg, logger, with_crops, with_overlays):
        """Save the upload and start scoring it; return the job id. UploadError when it
        cannot be accepted (bad content, or MAX_RUNNING_JOBS already running: 429)."""
        with self.lock:
            if self.running() >= MAX_RUNNING_JOBS:
                raise UploadError(429, f"{MAX_RUNNING_JOBS} uploads are already being scored; try again shortly.")
        folder, path, kind = save_upload(upload)
        job_id = secrets.token_urlsafe(12)
        job = {"state": "running", "frames_read": 0, "frames_expected": expected_frames(path, kind, cfg.FRAMES_PER_SECOND),
               "input": upload.filename, "type": kind, "status": None, "payload": None, "error": None}
        with self.lock:
            self.jobs[job_id] = job
            finished = [key for key, value in self.jobs.items() if value["state"] == "done"]
            for key in finished[:max(0, len(finished) - MAX_KEPT_JOBS)]:
                del self.jobs[key]

        def progress(frames_read):
            job["frames_read"] = frames_read

        def work():
            try:
                result = score_saved(folder, path, kind, upload.filename, scorer, cfg, explain=with_overlays,
                                     progress=progress, logger=logger)
                job["payload"] = result_payload(result, cfg, with_crops, with_overlays)
                job["status"] = 200
            except UploadError as error:
                job["status"], job["error"] = error.status, error.message
            except Exception:  # noqa: BLE001 - one sentence for the user, the trace for the log
                logger.exception("scoring %s failed", upload.filename)
                job["status"], job["error"] = 500, "Something went wrong while scoring this file; the details are in the server's log."
            job["state"] = "done"

        threading.Thread(target=work, name=f"job-{job_id}", daemon=True).start()
        return job_id

    def get(self, job_id):
        with self.lock:
            return self.jobs.get(job_id)


def job_state(job):
    """The JSON answer of GET /api/jobs/ID."""
    answer = {"state": job["state"], "input": job["input"], "type": job["type"],
              "frames_read": job["frames_read"], "frames_expected": job["frames_expected"]}
    if job["state"] == "done":
        answer["status"] = job["status"]
        answer.update({"result": job["payload"]} if job["payload"] is not None else {"error": job["error"]})
    return answer


def create_app(scorer, cfg):
    """The Flask app around an already loaded Scorer."""
    from deepfake_detect.inference.segments import format_seconds
    from deepfake_detect.inference.timeline import segment_spans, timeline_svg

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = int(cfg.WEB_MAX_UPLOAD_MB * 1024 * 1024)
    jobs = Jobs()
    explain_page = scorer.can_explain  # the page always shows Grad-CAM when the model allows

    def page_timeline(payload):
        """The inline SVG of a video payload's timeline (numbers only: safe to insert)."""
        series = [(point["frame"], point["p_fake"]) for point in payload.get("timeline", [])]
        persons = {line["person"]: [(point["frame"], point["p_fake"]) for point in line["points"]]
                   for line in payload.get("person_timelines", [])}
        spans = segment_spans(payload.get("segments", []), payload.get("fps"))
        return Markup(timeline_svg(series, cfg.THRESHOLD, persons, spans))

    app.jinja_env.globals["timeline_svg"] = page_timeline
    app.jinja_env.filters["clock"] = format_seconds

    def page(status=200, **values):
        return render_template("index.html", cfg=cfg, max_mb=cfg.WEB_MAX_UPLOAD_MB,
                               accepted=ACCEPTED_FORMATS, meaning=score_meaning(cfg),
                               max_crops=MAX_CROPS_SHOWN, **values), status

    def wants_json():
        return request.path.startswith("/api/")

    @app.get("/")
    def index():
        return page()

    def flag(name):
        return request.args.get(name, "") in ("1", "true", "yes")

    @app.post("/")
    def upload_page():
        try:
            result = score_upload(request.files.get("file"), scorer, cfg, explain=explain_page)
        except UploadError as error:
            return page(error.status, error=error.message)
        return page(result=result_payload(result, cfg, with_crops=True, with_overlays=explain_page),
                    scored=result.status == SCORED)

    @app.post("/api/detect")
    def upload_api():
        explain = flag("explain") and scorer.can_explain
        try:
            result = score_upload(request.files.get("file"), scorer, cfg, explain=explain)
        except UploadError as error:
            return jsonify(error=error.message), error.status
        return jsonify(result_payload(result, cfg, flag("crops"), with_overlays=explain))

    @app.post("/api/jobs")
    def start_job():
        try:
            job_id = jobs.start(request.files.get("file"), scorer, cfg, app.logger, with_crops=flag("crops"),
                                with_overlays=flag("explain") and scorer.can_explain)
        except UploadError as error:
            return jsonify(error=error.message), error.status
        return jsonify(job=job_id, status_url=f"/api/jobs/{job_id}", page_url=f"/jobs/{job_id}"), 202

    @app.get("/api/jobs/<job_id>")
    def job_api(job_id):
        job = jobs.get(job_id)
        if job is None:
            return jsonify(error="No such job (finished jobs are kept for a while only)."), 404
        return jsonify(job_state(job))

    @app.get("/jobs/<job_id>")
    def job_page(job_id):
        job = jobs.get(job_id)
        if job is None:
            return page(404, error="No such job (finished jobs are kept for a while only): upload the file again.")
        if job["state"] != "done":
            return page(202, running=job_state(job))
        if job["payload"] is None:
            return page(job["status"], error=job["error"])
        return page(result=job["payload"], scored=job["payload"]["status"] == SCORED)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        message = f"The upload is larger than {cfg.WEB_MAX_UPLOAD_MB} MB (setting WEB_MAX_UPLOAD_MB)."
        return (jsonify(error=message), 413) if wants_json() else page(413, error=message)

    @app.errorhandler(HTTPException)
    def http_error(error):
        message = f"{error.code} {error.name}."
        return (jsonify(error=message), error.code) if wants_json() else page(error.code, error=message)

    @app.errorhandler(Exception)
    def internal_error(error):
        app.logger.exception("error while handling %s %s", request.method, request.path)
        message = "Something went wrong while scoring this file; the details are in the server's log."
        return (jsonify(error=message), 500) if wants_json() else page(500, error=message)

    return app


def make_server(app, host, port):
    """A threaded werkzeug server for `app` on host:port (port 0: any free port)."""
    from werkzeug.serving import make_server as werkzeug_server

    return werkzeug_server(host, port, app, threaded=True)


def serve(scorer, cfg, host, port):
    """Serve the page until Ctrl+C; return an exit status (2 when the port cannot be used)."""
    try:
        server = make_server(create_app(scorer, cfg), host, port)
    except (OSError, SystemExit) as error:  # werkzeug exits on a port in use, after saying why
        reason = f" ({error.strerror or error})" if isinstance(error, OSError) else ""
        print(f"error: cannot listen on {host}:{port}{reason}; choose another with --port or WEB_PORT",
              file=sys.stderr)
        return 2
    if host not in LOOPBACK_HOSTS:
        print(f"warning: listening on {host}: anyone who can reach this machine can use the page",
              file=sys.stderr)
    shown_host = f"[{host}]" if ":" in host else host
    print(f"web page: http://{shown_host}:{server.server_port}/  (uploads up to {cfg.WEB_MAX_UPLOAD_MB} MB; "
          f"Ctrl+C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
