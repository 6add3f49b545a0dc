"""Stage 04's local web page, like the original's DF-Detect site: upload an image or a short
video, see the verdict, the score and every face crop with its score.

    python 04-detect_deepfakes.py --serve            # then open http://127.0.0.1:8000

    GET  /             the upload page
    POST /             upload (form field "file"), answers with the same page and the result
    POST /api/detect   the same upload, answers JSON (add ?crops=1 for the crops as data: URIs)

The model and the detector are loaded once, before the server starts; requests take turns
on them. An upload is accepted only if its first bytes are those of an image or a video
(whatever its name or declared type) and it is at most WEB_MAX_UPLOAD_MB. It is written to a
private folder in the system's temporary folder, never to a served one (this app serves no
files at all), and deleted as soon as it is scored. Errors reach the browser as one sentence;
stack traces go to the server's log only.
"""

import base64
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from deepfake_detect.detect import (FAILED, SCORED, SNIFF_BYTES, UNREADABLE, score_meaning,
                                    sniff_media_kind, verdict_of)

MAX_CROPS_SHOWN = 60      # a long video has one face a second; the page shows the first ones
CROP_DISPLAY_SIDE = 160   # px; crops are shrunk to this for the page
ACCEPTED_FORMATS = "PNG, JPEG, BMP, WebP or TIFF images; MP4, MOV, AVI, MKV, WebM, MPEG or FLV videos"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class UploadError(Exception):
    """An upload that cannot be scored: HTTP status and a sentence for the user."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def crop_data_uri(crop_rgb, side=CROP_DISPLAY_SIDE):
    """A face crop as a `data:image/jpeg;base64,...` URI, shrunk to at most `side` px."""
    height, width = crop_rgb.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale < 1:
        crop_rgb = cv2.resize(crop_rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                              interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii") if ok else ""


def result_payload(result, cfg, file_name, with_crops):
    """The JSON-ready description of one scored upload (also what the page shows)."""
    faces = [{"frame": face.frame, "face": face.number,
              "box": dict(zip(("x", "y", "width", "height"), face.box)),
              "p_real": face.p_real, "p_fake": face.p_fake,
              "verdict": verdict_of(face.p_real, cfg.THRESHOLD, cfg.UNCERTAIN_MARGIN),
              **({"crop": crop_data_uri(face.crop)} if with_crops and face.crop is not None else {})}
             for face in result.faces[:MAX_CROPS_SHOWN if with_crops else None]]
    return {"file": file_name, "type": result.kind, "status": result.status, "reason": result.reason,
            "frames": len(result.frame_indices), "faces": len(result.faces),
            "p_real": result.p_real, "p_fake": result.p_fake, "verdict": result.verdict,
            "threshold": cfg.THRESHOLD, "uncertain_margin": cfg.UNCERTAIN_MARGIN, "score_rule": cfg.VIDEO_SCORE,
            "score_meaning": score_meaning(cfg), "seconds": round(result.seconds, 2), "face_scores": faces}


def score_upload(upload, scorer, cfg):
    """Check, save, score and delete one uploaded file (a werkzeug FileStorage); return its Result.

    Raises UploadError for a missing file, a type that is not an image/video by content, or
    media that cannot be decoded.
    """
    if upload is None or not upload.filename:
        raise UploadError(400, "Choose an image or a video to upload.")
    header = upload.stream.read(SNIFF_BYTES)
    upload.stream.seek(0)
    kind = sniff_media_kind(header)
    if kind is None:
        raise UploadError(415, f"{upload.filename} is not an image or a video this page can read "
                               f"(its content is not one of: {ACCEPTED_FORMATS}).")
    folder = Path(tempfile.mkdtemp(prefix="deepfake-detect-upload-"))
    try:
        path = folder / f"upload-{kind}"  # the user's file name never reaches the file system
        upload.save(path)
        with scorer.lock:
            result = scorer.score_file(path, cfg, kind=kind)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.path = upload.filename
    if result.status == UNREADABLE:
        raise UploadError(422, f"{upload.filename} looks like a {kind} but cannot be decoded: {result.reason}.")
    if result.status == FAILED:
        current_app.logger.error("scoring %s failed: %s", upload.filename, result.reason)
        raise UploadError(500, "Scoring failed on this file; the details are in the server's log.")
    return result


def create_app(scorer, cfg):
    """The Flask app around an already loaded Scorer."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = int(cfg.WEB_MAX_UPLOAD_MB * 1024 * 1024)

    def page(status=200, **values):
        return render_template("index.html", cfg=cfg, max_mb=cfg.WEB_MAX_UPLOAD_MB,
                               accepted=ACCEPTED_FORMATS, meaning=score_meaning(cfg),
                               max_crops=MAX_CROPS_SHOWN, **values), status

    def wants_json():
        return request.path.startswith("/api/")

    @app.get("/")
    def index():
        return page()

    @app.post("/")
    def upload_page():
        try:
            result = score_upload(request.files.get("file"), scorer, cfg)
        except UploadError as error:
            return page(error.status, error=error.message)
        return page(result=result_payload(result, cfg, result.path, with_crops=True), scored=result.status == SCORED)

    @app.post("/api/detect")
    def upload_api():
        try:
            result = score_upload(request.files.get("file"), scorer, cfg)
        except UploadError as error:
            return jsonify(error=error.message), error.status
        with_crops = request.args.get("crops", "") in ("1", "true", "yes")
        return jsonify(result_payload(result, cfg, result.path, with_crops))

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
