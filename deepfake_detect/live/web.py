"""The web page's live view (/live): the browser's camera or a shared window, tab or screen,
scored a few frames a second by the page's scoring workers.

    GET  /live                the live view (its script: GET /live.js, allowed by the page's CSP nonce)
    POST /api/live/start      a new live session -> {"session": id, "fps": LIVE_WEB_FPS, "width": ...}
    POST /api/live/frame?session=ID&t=SECONDS   body: one JPEG frame (image/jpeg) ->
                              {"update": the --jsonl update, "alerts": [...], "faces": [boxes, persons]}
    POST /api/live/end?session=ID               the session ends (the page's pagehide beacon)

Every route sits behind the page's guard (web_security.install_guard: token, Host check, CSP,
no-store) like the upload routes, and every state-changing one is a POST. A frame is checked
before it is decoded (at most LIVE_WEB_MAX_FRAME_KB, a JPEG by its first bytes, at most
LIVE_WEB_MAX_FRAME_PIXELS by its header) and sent to a worker in memory: frames are never written
to disk. The detector searches every frame (at LIVE_WEB_FPS there is time for it, and a worker
keeps no frame to follow boxes from). Bounds: LIVE_WEB_MAX_SESSIONS sessions; one frame at a
time per session, no faster than LIVE_WEB_FPS; live frames use at most WEB_WORKERS - 1 workers
at once (at least one), so a browser can never hold every worker and uploads still get scored;
a frame that finds no worker within LIVE_WEB_FRAME_WAIT_S is skipped (503). A session's state is its LiveSession (bounded by
time) and ends on /api/live/end, or after LIVE_WEB_IDLE_SECONDS without a frame.
"""

import io
import math
import secrets
import threading
import time
from pathlib import Path

from flask import Blueprint, Response, jsonify, render_template, request
from PIL import Image

from deepfake_detect.inference.verdicts import score_meaning
from deepfake_detect.live.frames import LiveFace, frame_task, warm_up
from deepfake_detect.live.session import LiveSession

SCRIPT = Path(__file__).with_name("static") / "live.js"
JPEG_MAGIC = b"\xff\xd8\xff"
FPS_SLACK = 0.7      # a frame may come this fraction of 1/LIVE_WEB_FPS after the last (timers jitter)
CLOCK_SLACK_S = 5.0  # the page's frame time may run this far ahead of the server's clock


class LiveError(Exception):
    """A refused live request: HTTP status and one sentence."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class WebSession:
    """One browser tab's live view: its LiveSession and its pace."""

    def __init__(self, cfg):
        self.session = LiveSession(cfg)
        self.started = self.last_seen = time.monotonic()
        self.last_frame, self.last_t, self.busy = None, -math.inf, False
        self.frames_read = self.frames_skipped = 0


class LiveSessions:
    """The live sessions of one server and the share of the workers they may use."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.sessions = {}
        self.worker_share = max(1, cfg.WEB_WORKERS - 1)  # workers live frames may hold at once
        self.workers = threading.BoundedSemaphore(self.worker_share)

    def sweep(self):
        """End the sessions idle for LIVE_WEB_IDLE_SECONDS (a closed or sleeping tab)."""
        now = time.monotonic()
        with self.lock:
            for key in [k for k, s in self.sessions.items()
                        if not s.busy and now - s.last_seen > self.cfg.LIVE_WEB_IDLE_SECONDS]:
                del self.sessions[key]

    def start(self):
        self.sweep()
        with self.lock:
            if len(self.sessions) >= self.cfg.LIVE_WEB_MAX_SESSIONS:
                raise LiveError(429, f"{self.cfg.LIVE_WEB_MAX_SESSIONS} live views are already open on this "
                                     f"server; close one or try again in {self.cfg.LIVE_WEB_IDLE_SECONDS} s.")
            key = secrets.token_urlsafe(12)
            self.sessions[key] = WebSession(self.cfg)
        return key

    def get(self, key):
        self.sweep()
        with self.lock:
            session = self.sessions.get(key or "")
        if session is None:
            raise LiveError(404, "This live view has ended (closed, or idle for "
                                 f"{self.cfg.LIVE_WEB_IDLE_SECONDS} s); start it again.")
        return session

    def end(self, key):
        with self.lock:
            self.sessions.pop(key or "", None)


def check_frame(body, cfg):
    """Refuse a frame body before decoding: LiveError 413 (too large, in bytes or declared pixels),
    415 (not a JPEG) or 422 (a JPEG header that cannot be read). Returns (width, height)."""
    if len(body) > cfg.LIVE_WEB_MAX_FRAME_KB * 1024:
        raise LiveError(413, f"A live frame may be at most {cfg.LIVE_WEB_MAX_FRAME_KB} KB (LIVE_WEB_MAX_FRAME_KB).")
    if not body.startswith(JPEG_MAGIC):
        raise LiveError(415, "A live frame must be a JPEG image.")
    try:
        with Image.open(io.BytesIO(body)) as image:  # reads the header only
            width, height = image.size
    except Exception:  # noqa: BLE001 - Pillow raises several types for a broken header
        raise LiveError(422, "The frame's JPEG header cannot be read.") from None
    if width * height > cfg.LIVE_WEB_MAX_FRAME_PIXELS:
        raise LiveError(413, f"The frame declares {width}x{height} px, above LIVE_WEB_MAX_FRAME_PIXELS "
                             f"({cfg.LIVE_WEB_MAX_FRAME_PIXELS:,}).")
    return width, height


def frame_time(session, text):
    """The frame's time in seconds since the view started, as the page says: a finite number,
    not before the last frame's, not far ahead of the server's clock. LiveError 400 otherwise."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    ahead = value - (time.monotonic() - session.started)
    if not math.isfinite(value) or value < max(0.0, session.last_t) or ahead > CLOCK_SLACK_S:
        raise LiveError(400, "The frame's time (t, seconds since the view started) is missing or out of order.")
    return value


def score_live_frame(sessions, runner, key, body, t_text):
    """Check, score and judge one frame of session `key`; return the JSON answer."""
    cfg = sessions.cfg
    session = sessions.get(key)
    with sessions.lock:
        now = time.monotonic()
        if session.busy:
            raise LiveError(429, "One frame at a time: the last one is still being scored.")
        if session.last_frame and now - session.last_frame < FPS_SLACK / cfg.LIVE_WEB_FPS:
            raise LiveError(429, f"At most {cfg.LIVE_WEB_FPS} frames a second (LIVE_WEB_FPS).")
        session.busy, session.last_seen, session.last_frame = True, now, now
    try:
        check_frame(body, cfg)
        t = frame_time(session, t_text)
        session.frames_read += 1
        if not sessions.workers.acquire(timeout=cfg.LIVE_WEB_FRAME_WAIT_S):
            session.frames_skipped += 1
            raise LiveError(503, "Every worker live views may use is busy; this frame was skipped.")
        try:
            status, answer = runner.run(frame_task(body), wait=cfg.LIVE_WEB_FRAME_WAIT_S)
        finally:
            sessions.workers.release()
        if status != 200:
            session.frames_skipped += 1
            raise LiveError(status, answer)
        faces = [LiveFace(tuple(f["box"]), f["p_real"], f["p_real_raw"], f["detected"]) for f in answer["faces"]]
        alerts = session.session.add(t, faces)
        session.last_t = t
        update = session.session.update(t, (time.monotonic() - now) * 1000,
                                        (session.frames_read, session.frames_skipped))
        return {"update": update.as_dict(), "alerts": [a.as_dict() for a in alerts],
                "faces": [{"person": f.person, "box": list(f.box), "p_fake": round(f.p_fake, 4)} for f in faces],
                "width": answer["width"], "height": answer["height"]}
    finally:
        session.busy = False
        session.last_seen = time.monotonic()


def live_blueprint(runner, cfg):
    """The /live page and its API as a Flask blueprint, for create_app to register."""
    blueprint = Blueprint("live", __name__, template_folder="templates")
    sessions = LiveSessions(cfg)
    if hasattr(runner, "scorer"):  # scored in this process: traced now, not on a live view's first frame
        warm_up(runner.scorer)

    @blueprint.get("/live")
    def live_page():
        # only what the page shows: the settings object holds the token and the Azure keys
        return render_template("live.html", fps=cfg.LIVE_WEB_FPS, window_seconds=cfg.LIVE_WINDOW_SECONDS,
                               threshold=cfg.THRESHOLD, min_fake_seconds=cfg.LIVE_MIN_FAKE_SECONDS,
                               meaning=score_meaning(cfg))

    @blueprint.get("/live.js")
    def live_script():
        return Response(SCRIPT.read_text(encoding="utf-8"), mimetype="text/javascript")

    @blueprint.post("/api/live/start")
    def live_start():
        try:
            key = sessions.start()
        except LiveError as error:
            return jsonify(error=error.message), error.status
        return jsonify(session=key, fps=cfg.LIVE_WEB_FPS, width=cfg.LIVE_WEB_FRAME_WIDTH,
                       window_seconds=cfg.LIVE_WINDOW_SECONDS, threshold=cfg.THRESHOLD)

    @blueprint.post("/api/live/frame")
    def live_frame():
        if (request.content_length or 0) > cfg.LIVE_WEB_MAX_FRAME_KB * 1024:
            return jsonify(error=f"A live frame may be at most {cfg.LIVE_WEB_MAX_FRAME_KB} KB "
                                 f"(LIVE_WEB_MAX_FRAME_KB)."), 413
        try:
            return jsonify(score_live_frame(sessions, runner, request.args.get("session"),
                                            request.get_data(cache=False), request.args.get("t")))
        except LiveError as error:
            return jsonify(error=error.message), error.status

    @blueprint.post("/api/live/end")
    def live_end():
        sessions.end(request.args.get("session"))
        return "", 204

    blueprint.sessions = sessions  # for tests
    return blueprint
