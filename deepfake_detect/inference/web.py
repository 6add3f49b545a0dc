"""Stage 04's local web page, like the original's DF-Detect site: upload an image or a short
video, see the verdict, the score and every face crop with its score.

    python 04-detect_deepfakes.py --serve            # then open http://127.0.0.1:8000
    WEB_TOKEN=... python 04-detect_deepfakes.py --serve --host 0.0.0.0   # on your network: a token

    GET  /             the upload page (with WEB_TOKEN: a form asking for the token, once)
    POST /login        the token (form field "token") -> an HttpOnly, SameSite=Strict cookie
    POST /             upload (form field "file"), answers with the same page and the result
    POST /api/detect   the same upload, answers JSON: an input record of docs/results.md (add
                       ?crops=1 for the crops as data: URIs, ?explain=1 for Grad-CAM overlays)
    POST /api/jobs     the same upload, scored in the background: answers 202 {"job": id} at once
    GET  /api/jobs/ID  {"state": "running", "frames_read", "frames_expected"} while it is scored,
                       then {"state": "done", "status": HTTP status, "result" or "error"}
    GET  /jobs/ID      the page with that job's result (where the page's script goes when done)
    GET  /healthz      {"workers_up", "workers_wanted", "workers_starting"}: 200 with a worker up, else 503
                       (no token needed: for load balancers)
    GET  /live         the live view: a camera or a shared window, scored as it plays (live/web.py)

With WEB_TOKEN set, /api/ needs `Authorization: Bearer <token>` (401 without); web_security.py
refuses cross-site POSTs (403) and adds the security headers to every answer. At most
MAX_RUNNING_JOBS uploads are waiting or being scored at once, jobs and synchronous uploads
alike; one more gets 429 with Retry-After, so uploads never hold every server thread. The
page's own script (inline, allowed by its per-response nonce: nothing is fetched from
elsewhere) sends the upload as a job and shows a progress bar (frames read of frames
expected) until it is done; without JavaScript the form posts to / and the answer comes when
scoring is done. The page always shows each crop's Grad-CAM overlay when the model is a Keras
one (explain.py), and a video's P(fake) per frame as an inline SVG (timeline.py).

Uploads are scored by a pool of worker processes holding the model (web_workers.py), so a file
that crashes a decoder, exhausts memory or runs past WEB_JOB_TIMEOUT_S costs one sentence, not
the server. An upload is accepted only if its first bytes are those of an image or a video
(whatever its name or declared type), it is at most WEB_MAX_UPLOAD_MB and its header is within
the decode budgets (MAX_IMAGE_PIXELS, MAX_VIDEO_PIXELS, WEB_MAX_VIDEO_SECONDS; else 413). It is
written to a private folder in the system's temporary folder under a fixed name (the user's
file name is only ever shown, escaped), never to a served one (this app serves no files at all),
and deleted as soon as it is scored. Errors reach the browser as one sentence; stack traces go
to the server's log only. The server is waitress (werkzeug's development server with --debug).
"""

import contextlib
import secrets
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from deepfake_detect.media.budget import BudgetError
from deepfake_detect.media.kinds import SNIFF_BYTES, sniff_media_kind
from deepfake_detect.inference.results import IMAGE, SCORED
from deepfake_detect.inference.verdicts import score_meaning
from deepfake_detect.inference.web_security import exposure_problem, install_guard, is_loopback, shown_name
from deepfake_detect.inference.web_workers import (LOG, MAX_CROPS_SHOWN, SCORING_FAILED, InProcessRunner,
                                                   UploadError, WorkerPool, new_task)
from deepfake_detect.live.web import live_blueprint
from deepfake_detect.media.budget import check_image_budget

ACCEPTED_FORMATS = "PNG, JPEG, BMP, WebP or TIFF images; MP4, MOV, AVI, MKV, WebM, MPEG or FLV videos"
MAX_RUNNING_JOBS = 4      # uploads (jobs, POST / and /api/detect alike) waiting or being scored at once; more get 429
RETRY_AFTER_S = 10        # the Retry-After of a 429: about one image's scoring on a busy machine
MAX_KEPT_JOBS = 20        # finished jobs kept for their pages; the oldest are dropped
SERVER_THREADS = 8        # waitress threads: a synchronous upload holds one while a worker scores it
IDLE_TIMEOUT_S = 60       # waitress closes a connection idle (or trickling nothing) this long
JOB_STATE_FIELDS = ("frames_read", "frames_expected")
# A page on loopback without a token answers only to these Host names, whatever the port: a web
# site that rebinds its own DNS name to 127.0.0.1 is refused (421).
LOOPBACK_HOST_NAMES = {"127.0.0.1", "localhost", "[::1]"}

class HtmlSafeJSON(DefaultJSONProvider):
    """JSON whose <, > and & are written as \\u escapes: a file name holding markup stays inert
    even where a browser would sniff the answer as HTML."""

    def dumps(self, obj, **kwargs):
        text = super().dumps(obj, **kwargs)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def save_upload(upload, cfg):
    """Check an upload's content and save it to a private temporary folder; return (folder,
    path, kind). Raises UploadError for a missing file, content that is not an image/video
    (415), or an image whose header declares more than MAX_IMAGE_PIXELS (413; read here, as
    it costs nothing, so such an upload never waits for a worker)."""
    if upload is None or not upload.filename:
        raise UploadError(400, "Choose an image or a video to upload.")
    name = shown_name(upload.filename)
    header = upload.stream.read(SNIFF_BYTES)
    upload.stream.seek(0)
    kind = sniff_media_kind(header)
    if kind is None:
        raise UploadError(415, f"{name} is not an image or a video this page can read "
                               f"(its content is not one of: {ACCEPTED_FORMATS}).")
    folder = Path(tempfile.mkdtemp(prefix="deepfake-detect-upload-"))
    path = folder / f"upload-{kind}"  # the user's file name never reaches the file system
    try:
        upload.save(path)
        if kind == IMAGE:
            check_image_budget(path, cfg.MAX_IMAGE_PIXELS)
    except BudgetError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise UploadError(413, f"{name} is too large to score here: {error}.") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, path, kind


def score_upload(upload, runner, cfg, with_crops, with_overlays, progress=None, expected=None):
    """Save, score (on `runner`) and delete one uploaded file (a werkzeug FileStorage); return
    its JSON payload. Raises UploadError with the status and sentence of any failure."""
    folder, path, kind = save_upload(upload, cfg)
    try:
        status, answer = runner.run(new_task(path, kind, shown_name(upload.filename), with_crops, with_overlays),
                                    progress=progress, expected=expected)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if status != 200:
        raise UploadError(status, answer)
    return answer


class ScoringSlots:
    """MAX_RUNNING_JOBS slots shared by every upload, background or synchronous: each holds one
    from before it is saved until it is scored. Without a free slot an upload is refused (429)
    at once instead of taking a server thread to wait."""

    def __init__(self, count=None):
        self.count = MAX_RUNNING_JOBS if count is None else count
        self.lock = threading.Lock()
        self.taken = 0

    def take(self):
        """Take a slot, or raise UploadError 429."""
        with self.lock:  # checked and taken at once, so concurrent uploads cannot all pass
            if self.taken >= self.count:
                raise UploadError(429, f"{self.count} uploads are already being scored; try again shortly.")
            self.taken += 1

    def release(self):
        with self.lock:
            self.taken -= 1

    @contextlib.contextmanager
    def held(self):
        self.take()
        try:
            yield
        finally:
            self.release()


class Jobs:
    """Uploads scored in background threads (each waits for a free worker), with their
    progress; finished ones are kept for their pages (MAX_KEPT_JOBS at most)."""

    def __init__(self, slots):
        self.lock = threading.Lock()
        self.slots = slots
        self.jobs = {}  # id -> dict(state, frames_read, frames_expected, input, type, status, payload, error)

    def start(self, upload, runner, cfg, with_crops, with_overlays):
        """Save the upload and start scoring it; return the job id. UploadError when it
        cannot be accepted (bad content or over budget, or no free scoring slot: 429)."""
        job_id, name = secrets.token_urlsafe(12), shown_name(upload.filename if upload else "")
        job = {"state": "running", "frames_read": 0, "frames_expected": None,
               "input": name, "type": None, "status": None, "payload": None, "error": None}
        self.slots.take()
        try:
            folder, path, kind = save_upload(upload, cfg)
        except BaseException:
            self.slots.release()
            raise
        with self.lock:
            self.jobs[job_id] = job
        job.update(type=kind, frames_expected=1 if kind == IMAGE else None)
        with self.lock:
            finished = [key for key, value in self.jobs.items() if value["state"] == "done"]
            for key in finished[:max(0, len(finished) - MAX_KEPT_JOBS)]:
                del self.jobs[key]

        def work():
            try:
                status, answer = runner.run(new_task(path, kind, name, with_crops, with_overlays),
                                            progress=lambda frames: job.update(frames_read=frames),
                                            expected=lambda frames: job.update(frames_expected=frames))
            except Exception:  # noqa: BLE001 - one sentence for the user, the trace for the log
                LOG.exception("scoring %r failed", name)
                status, answer = 500, SCORING_FAILED
            finally:
                shutil.rmtree(folder, ignore_errors=True)
                self.slots.release()
            job["status"] = status
            job["payload" if status == 200 else "error"] = answer
            job["state"] = "done"

        threading.Thread(target=work, name=f"job-{job_id}", daemon=True).start()
        return job_id

    def get(self, job_id):
        with self.lock:
            return self.jobs.get(job_id)


def job_state(job):
    """The JSON answer of GET /api/jobs/ID."""
    answer = {"state": job["state"], "input": job["input"], "type": job["type"],
              **{name: job[name] for name in JOB_STATE_FIELDS}}
    if job["state"] == "done":
        answer["status"] = job["status"]
        answer.update({"result": job["payload"]} if job["payload"] is not None else {"error": job["error"]})
    return answer


def create_app(scorer, cfg, token=None, allowed_hosts=None):
    """The Flask app around a runner of web_workers (a WorkerPool), or an already loaded Scorer
    (scored in this process, one upload at a time). `token`: required from every request
    (None: cfg.WEB_TOKEN; "" none); `allowed_hosts`: the only Host names answered (None: any)."""
    from deepfake_detect.inference.segments import format_seconds
    from deepfake_detect.inference.timeline import segment_spans, timeline_svg

    runner = scorer if hasattr(scorer, "run") else InProcessRunner(scorer, cfg)
    token = cfg.WEB_TOKEN if token is None else token
    app = Flask(__name__, static_folder=None)
    app.json = HtmlSafeJSON(app)
    app.config["MAX_CONTENT_LENGTH"] = int(cfg.WEB_MAX_UPLOAD_MB * 1024 * 1024)
    slots = ScoringSlots()
    jobs = Jobs(slots)
    explain_page = runner.can_explain  # the page always shows Grad-CAM when the model allows

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
        # only what the page shows: the settings object holds the token and the Azure keys
        return render_template("index.html", video_score=cfg.VIDEO_SCORE, threshold=cfg.THRESHOLD,
                               max_mb=cfg.WEB_MAX_UPLOAD_MB,
                               accepted=ACCEPTED_FORMATS, meaning=score_meaning(cfg),
                               max_crops=MAX_CROPS_SHOWN, max_seconds=cfg.WEB_MAX_VIDEO_SECONDS, **values), status

    install_guard(app, token, page, allowed_hosts)
    app.register_blueprint(live_blueprint(runner, cfg))  # /live and /api/live/ (live/web.py)

    def wants_json():
        return request.path.startswith("/api/")

    def flag(name):
        return request.args.get(name, "") in ("1", "true", "yes")

    def refusal(error, as_json):
        """The answer for an UploadError: JSON or the page, with Retry-After on a 429."""
        headers = {"Retry-After": str(RETRY_AFTER_S)} if error.status == 429 else {}
        if as_json:
            return jsonify(error=error.message), error.status, headers
        body, status = page(error.status, error=error.message)
        return body, status, headers

    def score_sync(with_crops, with_overlays):
        """Score the request's upload in this thread, holding a scoring slot."""
        with slots.held():
            return score_upload(request.files.get("file"), runner, cfg, with_crops, with_overlays)

    @app.get("/healthz")
    def healthz():
        health = runner.health() if hasattr(runner, "health") else {"workers_up": 1, "workers_wanted": 1,
                                                                    "workers_starting": 0}
        return jsonify(health), 200 if health["workers_up"] > 0 else 503

    @app.get("/")
    def index():
        return page()

    @app.post("/")
    def upload_page():
        try:
            payload = score_sync(True, explain_page)
        except UploadError as error:
            return refusal(error, as_json=False)
        return page(result=payload, scored=payload["status"] == SCORED)

    @app.post("/api/detect")
    def upload_api():
        try:
            payload = score_sync(flag("crops"), flag("explain") and runner.can_explain)
        except UploadError as error:
            return refusal(error, as_json=True)
        return jsonify(payload)

    @app.post("/api/jobs")
    def start_job():
        try:
            job_id = jobs.start(request.files.get("file"), runner, cfg, with_crops=flag("crops"),
                                with_overlays=flag("explain") and runner.can_explain)
        except UploadError as error:
            return refusal(error, as_json=True)
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


class Server:
    """A listening WSGI server for an app: waitress, or werkzeug's development server with
    `debug`. `server_port` is the port it listens on; `serve_forever()` until `shutdown()`."""

    def __init__(self, app, host, port, cfg=None, debug=False):
        self.debug = debug
        if debug:
            from werkzeug.serving import make_server as werkzeug_server

            self.server = werkzeug_server(host, port, app, threaded=True)
            self.server_port = self.server.server_port
            return
        from waitress.server import create_server

        max_body = int(((cfg.WEB_MAX_UPLOAD_MB if cfg else 50) + 1) * 1024 * 1024)
        self.server = create_server(app, host=host, port=port, threads=SERVER_THREADS, channel_timeout=IDLE_TIMEOUT_S,
                                    max_request_body_size=max_body, ident="deepfake-detect",
                                    clear_untrusted_proxy_headers=True)
        self.server_port = getattr(self.server, "effective_port", None) or self.server.effective_listen[0][1]

    def serve_forever(self):
        if self.debug:
            self.server.serve_forever()
        else:
            self.server.run()

    def shutdown(self):
        """Stop serving (from another thread) and close the listening socket."""
        if self.debug:
            self.server.shutdown()
            return
        from waitress import wasyncore

        self.server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self.server.map if hasattr(self.server, "map") else self.server._map)

    def server_close(self):
        if self.debug:
            self.server.server_close()
        else:
            self.server.close()


def make_server(app, host, port, cfg=None, debug=False):
    """A Server for `app` on host:port (port 0: any free port); OSError when it cannot listen."""
    return Server(app, host, port, cfg, debug)


def serve(scorer, cfg, host, port, model_path=None, no_auth=False, debug=False):
    """Serve the page until Ctrl+C; return an exit status (2 when it must not or cannot start).

    Without `scorer`, a WorkerPool of WEB_WORKERS processes loads `model_path`; with one (tests),
    uploads are scored in this process. A host beyond loopback without WEB_TOKEN is refused
    before anything loads or listens, unless `no_auth`."""
    problem = exposure_problem(host, cfg.WEB_TOKEN, no_auth)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    token = "" if no_auth else cfg.WEB_TOKEN
    runner = scorer
    if runner is None:
        print(f"web page: starting {cfg.WEB_WORKERS} scoring worker{'s' * (cfg.WEB_WORKERS != 1)} (each loads the model)",
              flush=True)
        try:
            runner = WorkerPool(model_path, cfg).start()
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    try:
        app = served_app(runner, cfg, host, token)
        return listen(app, cfg, host, port, bool(token), debug)
    finally:
        if scorer is None:
            runner.close()


def served_app(runner, cfg, host, token):
    """The app `serve` runs for `host`: on loopback without a token, one answering only to
    loopback Host names (127.0.0.1, localhost, [::1]: --host ::1 included)."""
    return create_app(runner, cfg, token, LOOPBACK_HOST_NAMES if is_loopback(host) and not token else None)


def listen(app, cfg, host, port, with_token, debug):
    """Bind host:port and serve `app` until Ctrl+C; return an exit status."""
    try:
        server = make_server(app, host, port, cfg, debug)
    except (OSError, SystemExit) as error:  # werkzeug exits on a port in use, after saying why
        reason = f" ({error.strerror or error})" if isinstance(error, OSError) else ""
        print(f"error: cannot listen on {host}:{port}{reason}; choose another with --port or WEB_PORT",
              file=sys.stderr)
        return 2
    if not is_loopback(host):
        print(f"warning: listening on {host}: " + ("requests need WEB_TOKEN" if with_token else
                                                   "anyone who can reach this machine can use the page (--no-auth)"),
              file=sys.stderr)
    shown_host = f"[{host}]" if ":" in host else host
    print(f"web page: http://{shown_host}:{server.server_port}/  (uploads up to {cfg.WEB_MAX_UPLOAD_MB} MB; "
          f"{'werkzeug development server' if debug else 'waitress'}; Ctrl+C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
