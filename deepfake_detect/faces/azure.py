"""Face detection by Azure's cloud services, over HTTPS with `requests` (stage 01b).

Two services find faces; both take the image bytes as application/octet-stream, the key in the
Ocp-Apim-Subscription-Key header, and answer rectangles without a confidence:

- the Face service (AZURE_SERVICE = "face", FACE_ENDPOINT / FACE_APIKEY):
  POST {endpoint}/face/v1.2/detect?detectionModel=detection_03&returnFaceId=false
  -> [{"faceRectangle": {"left", "top", "width", "height"}}, ...], largest face first;
  images of 1 KB to 6 MB, 36 to 4096 px a side.
- Image Analysis 3.2 (AZURE_SERVICE = "vision", VISION_ENDPOINT / VISION_KEY), retiring in 2028:
  POST {endpoint}/vision/v3.2/analyze?visualFeatures=Faces
  -> {"faces": [{"faceRectangle": {...}, ...}], "requestId": ..., "metadata": ...};
  images under 4 MB, more than 50 px a side.

AzureFaceDetector is a detector for deepfake_detect.faces.crops.crop_faces_of_video. What can go wrong,
and what it means for a run:

- AzureSetupError, before any request: a key or endpoint missing, a placeholder, or unusable.
- FrameDetectionError, returned in place of one frame's faces: the service rejected that image
  (400, 413); the other frames go on.
- AzureStopError, raised: the service refused the key or the request (401, 403, 404, 410, a
  redirect), or stayed unavailable through AZURE_MAX_RETRIES retries (429, 5xx, timeouts,
  connection errors, unreadable answers). Going on would fail the same way for every frame.

The key lives only in the session's headers. Messages never quote it, and requests' own
exceptions are reduced to a redacted sentence, never chained, since they carry the request.
"""

import email.utils
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import cv2
import requests
from tqdm import tqdm

from deepfake_detect.faces.crops import crop_faces_of_video
from deepfake_detect.faces.detector import Face, FaceDetector, FrameDetectionError
from deepfake_detect.jobs.console import warn
from deepfake_detect.jobs.outcome import FAILED, SKIPPED, Outcome

KEY_HEADER = "Ocp-Apim-Subscription-Key"
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}  # the service may answer if asked again later
IMAGE_STATUSES = {400, 413}  # this image was refused; other images may still be accepted
MAX_WAIT_SECONDS = 600       # longest wait before a retry, whatever Retry-After asks
DETECTION_MODELS = ("detection_01", "detection_02", "detection_03")
# http:// would send the key unencrypted; allowed only to this machine (tests, Azure's containers).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
PLACEHOLDER_MARKS = ("<", ">", "your", "placeholder", "changeme", "change-me", "replace", "example",
                     "xxxx", "...", "todo")
MIN_KEY_LENGTH = 16          # Azure keys are 32 hex digits (older resources) or 84 characters


@dataclass(frozen=True)
class ImageLimits:
    """What a service accepts: encoded size in bytes and the sides of the image in pixels."""

    min_bytes: int
    max_bytes: int
    min_side: int
    max_side: int


@dataclass(frozen=True)
class Service:
    """One Azure face-finding API: where to send, what to ask, and what it accepts."""

    name: str
    title: str
    path: str
    endpoint_variable: str
    key_variable: str
    limits: ImageLimits


SERVICES = {
    # Limits a little inside the documented ones (6 MB, 4 MB, "more than 50 x 50", under 16,000 px).
    "face": Service("face", "Azure Face service", "/face/v1.2/detect", "FACE_ENDPOINT", "FACE_APIKEY",
                    ImageLimits(min_bytes=1024, max_bytes=6_000_000, min_side=36, max_side=4096)),
    "vision": Service("vision", "Azure Image Analysis 3.2", "/vision/v3.2/analyze", "VISION_ENDPOINT",
                      "VISION_KEY", ImageLimits(min_bytes=1, max_bytes=4_000_000, min_side=51, max_side=15_999)),
}


class AzureSetupError(ValueError):
    """A key, endpoint or setting that cannot work; found before any request is made."""


class AzureStopError(RuntimeError):
    """The service cannot be used now: the stage should stop (finished videos are kept)."""


class ImageRejectedError(FrameDetectionError):
    """The service refused one image (HTTP 400 or 413); other frames may still be accepted."""


class _RetryableAnswer(Exception):
    """A failure worth retrying: its message describes it, retry_after is the service's wish."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


# ------------------------------------------------------------------ settings

def check_endpoint(endpoint, variable):
    """The endpoint without a trailing slash; AzureSetupError naming `variable` if unusable."""
    endpoint = (endpoint or "").strip()
    example = f"export {variable}=https://<resource>.cognitiveservices.azure.com"
    if not endpoint:
        raise AzureSetupError(f"{variable} is not set: {example}")
    if any(mark in endpoint.lower() for mark in ("<", ">", "your", "...")):
        raise AzureSetupError(f"{variable} = {endpoint!r} is a placeholder: {example}")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise AzureSetupError(f"{variable} = {endpoint!r} is not an endpoint address: {example}")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise AzureSetupError(f"{variable} = {endpoint!r} would send the key unencrypted: use https://")
    return endpoint.rstrip("/")


def check_key(key, variable):
    """The key, stripped; AzureSetupError naming `variable` (never quoting it) if missing or a placeholder."""
    key = (key or "").strip()
    where = "Keys and Endpoint page of the resource in the Azure portal"
    if not key:
        raise AzureSetupError(f"{variable} is not set: export {variable}=<KEY 1 from the {where}>")
    if (len(key) < MIN_KEY_LENGTH or not key.isascii() or not key.isprintable() or " " in key
            or any(mark in key.lower() for mark in PLACEHOLDER_MARKS)):
        raise AzureSetupError(f"{variable} looks like a placeholder, not a key: set it to KEY 1 from the {where}")
    return key


def detector_from_config(cfg, **options):
    """An AzureFaceDetector for cfg.AZURE_SERVICE with the endpoint, key and limits of `cfg`
    (settings.check_azure_settings checked the limits).

    Raises AzureSetupError, naming the endpoint or key variable to fix, before any request.
    `options` go to AzureFaceDetector (tests pass sleep=...).
    """
    service = SERVICES[cfg.AZURE_SERVICE]  # one of them: settings.check_config checked AZURE_SERVICE
    problems = []
    try:
        endpoint = check_endpoint(getattr(cfg, service.endpoint_variable), service.endpoint_variable)
    except AzureSetupError as error:
        problems.append(str(error))
    try:
        key = check_key(getattr(cfg, service.key_variable), service.key_variable)
    except AzureSetupError as error:
        problems.append(str(error))
    if problems:  # both at once, so that a first-time user fixes them in one go
        raise AzureSetupError("; ".join(problems))
    return AzureFaceDetector(service.name, endpoint, key, detection_model=cfg.AZURE_DETECTION_MODEL,
                             timeout_seconds=cfg.AZURE_TIMEOUT_SECONDS, max_retries=cfg.AZURE_MAX_RETRIES,
                             calls_per_minute=cfg.AZURE_CALLS_PER_MINUTE,
                             retry_base_seconds=cfg.AZURE_RETRY_BASE_SECONDS, **options)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ------------------------------------------------------------------ images

@dataclass(frozen=True)
class EncodedImage:
    """Image bytes ready to send, and the size in pixels of the image they hold."""

    data: bytes
    width: int
    height: int
    format: str


def encode_for_upload(image_rgb, limits):
    """Encode an RGB frame (H, W, 3 uint8) within `limits`: PNG (lossless) when it fits.

    Sides outside [min_side, max_side] are scaled to fit, keeping the aspect ratio. Too many
    bytes: JPEG at quality 95, then smaller and smaller images. Too few bytes (a flat frame
    compresses to almost nothing): BMP, which is uncompressed. Boxes found in the sent image
    map back to the frame by the ratio of the sizes. Raises ImageRejectedError when no scale
    fits both side limits (an extremely long, thin frame).
    """
    height, width = image_rgb.shape[:2]
    scale = 1.0
    if min(height, width) < limits.min_side:
        scale = limits.min_side / min(height, width)
    elif max(height, width) > limits.max_side:
        scale = limits.max_side / max(height, width)
    image_bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    while True:
        sent_width, sent_height = _scaled_size(width, height, scale, limits.min_side)
        if max(sent_width, sent_height) > limits.max_side:
            raise ImageRejectedError(f"a {width}x{height} px frame cannot be scaled to the service's "
                                     f"{limits.min_side}-{limits.max_side} px sides")
        if (sent_width, sent_height) == (width, height):
            sized = image_bgr
        else:
            shrinking = sent_width < width
            sized = cv2.resize(image_bgr, (sent_width, sent_height),
                               interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
        for extension, params in ((".png", []), (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])):
            data = _encode(sized, extension, params)
            if len(data) < limits.min_bytes:
                extension, data = ".bmp", _encode(sized, ".bmp", [])
            if limits.min_bytes <= len(data) <= limits.max_bytes:
                return EncodedImage(data, sent_width, sent_height, extension.lstrip("."))
        scale *= 0.75


def _scaled_size(width, height, scale, min_side):
    """(width, height) x scale, rounded, never below min_side where scaling up is what was asked."""
    sent_width, sent_height = max(1, round(width * scale)), max(1, round(height * scale))
    if scale > 1:  # rounding must not leave the short side one pixel under the minimum
        sent_width, sent_height = max(sent_width, min_side), max(sent_height, min_side)
    return sent_width, sent_height


def _encode(image_bgr, extension, params):
    ok, encoded = cv2.imencode(extension, image_bgr, params)
    if not ok:
        raise ImageRejectedError(f"OpenCV could not encode the frame as {extension}")
    return encoded.tobytes()


# ------------------------------------------------------------------ answers

def face_rectangles(service_name, body):
    """[(left, top, width, height), ...] from a decoded JSON answer; ValueError if it is not one."""
    if service_name == "face":
        faces = body
    else:
        if not isinstance(body, dict):
            raise ValueError("the answer is not a JSON object")
        faces = body.get("faces")
    if not isinstance(faces, list):
        raise ValueError("the answer has no list of faces")
    rectangles = []
    for face in faces:
        box = face.get("faceRectangle") if isinstance(face, dict) else None
        if not isinstance(box, dict) or not all(_is_number(box.get(k)) for k in ("left", "top", "width", "height")):
            raise ValueError("a face without a faceRectangle of four numbers")
        rectangles.append((box["left"], box["top"], box["width"], box["height"]))
    return rectangles


def error_code_and_message(response):
    """(code, message) of an Azure error answer: {"error": {"code", "message"}} or a flat
    {"code", "message"} (Image Analysis 3.2 uses both); the start of the text otherwise."""
    try:
        body = response.json()
    except ValueError:
        return "", " ".join(response.text.split())[:200]
    if isinstance(body, dict):
        inner = body["error"] if isinstance(body.get("error"), dict) else body
        return str(inner.get("code", "")), str(inner.get("message", ""))
    return "", ""


def parse_retry_after(value, now=None):
    """Seconds asked by a Retry-After header (seconds or an HTTP date), or None; at most MAX_WAIT_SECONDS."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(max(seconds, 0.0), MAX_WAIT_SECONDS)


def retry_delay(retry_number, base_seconds, retry_after=None, rng=random):
    """Seconds to wait before retry number `retry_number` (1, 2, ...).

    Retry-After when the service sent one; otherwise base x 2^(n-1), scaled by a random 50-100%
    so that several clients that failed together do not all come back at the same moment.
    """
    if retry_after is not None:
        return retry_after
    return min(MAX_WAIT_SECONDS, base_seconds * 2 ** (retry_number - 1)) * rng.uniform(0.5, 1.0)


class RateLimiter:
    """Spaces request starts at least 60 / calls_per_minute seconds apart (None: no limit)."""

    def __init__(self, calls_per_minute, clock=time.monotonic, sleep=time.sleep):
        self.interval = 60.0 / calls_per_minute if calls_per_minute else 0.0
        self._clock, self._sleep = clock, sleep
        self._next_start = None
        self.waited_seconds = 0.0

    def wait(self):
        """Sleep until the next request may start."""
        now = self._clock()
        if self._next_start is not None and now < self._next_start:
            self._sleep(self._next_start - now)
            self.waited_seconds += self._next_start - now
            now = self._next_start
        self._next_start = now + self.interval


# ------------------------------------------------------------------ the client

class AzureFaceDetector(FaceDetector):
    """Finds faces with an Azure service, one request per frame, over one reused HTTP session.

    Call it with a list of RGB frames: it returns, for each, a list of Face (confidence None),
    or an ImageRejectedError for a frame the service refused. Raises AzureStopError when the
    service cannot be used. `stats` counts requests, frames_sent, retries, frames_rejected and
    frames_rescaled (sent at another size to fit the service's limits).
    """

    def __init__(self, service, endpoint, key, *, detection_model="detection_03", timeout_seconds=30,
                 max_retries=5, calls_per_minute=20, retry_base_seconds=1.0, limits=None,
                 sleep=time.sleep, rng=None):
        self.service = SERVICES[service]
        self.url = endpoint.rstrip("/") + self.service.path
        if self.service.name == "face":
            self.params = {"detectionModel": detection_model, "returnFaceId": "false"}
        else:
            self.params = {"visualFeatures": "Faces"}
        self.limits = limits or self.service.limits
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.retry_base_seconds = retry_base_seconds
        self._key = key
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rate_limiter = RateLimiter(calls_per_minute, sleep=sleep)
        self._session = requests.Session()
        self._session.headers.update({KEY_HEADER: key, "Content-Type": "application/octet-stream",
                                      "Accept": "application/json"})
        self.stats = Counter({"requests": 0, "frames_sent": 0, "retries": 0, "frames_rejected": 0,
                              "frames_rescaled": 0})

    def __repr__(self):
        return f"AzureFaceDetector({self.service.name!r}, {self.url!r})"  # no key

    @property
    def rate_limit_wait_seconds(self):
        return self._rate_limiter.waited_seconds

    def close(self):
        self._session.close()

    def __call__(self, images_rgb):
        return [self.detect_faces(image) for image in images_rgb]

    def detect_faces(self, image_rgb):
        """The faces in one RGB frame, in frame pixels; an ImageRejectedError if it was refused."""
        height, width = image_rgb.shape[:2]
        try:
            encoded = encode_for_upload(image_rgb, self.limits)
            self.stats["frames_sent"] += 1
            self.stats["frames_rescaled"] += (encoded.width, encoded.height) != (width, height)
            rectangles = self._post(encoded.data)
        except ImageRejectedError as error:
            self.stats["frames_rejected"] += 1
            return error
        scale_x, scale_y = width / encoded.width, height / encoded.height
        faces = []
        for left, top, box_width, box_height in rectangles:
            face = Face(round(left * scale_x), round(top * scale_y),
                        round(box_width * scale_x), round(box_height * scale_y))
            if face.width > 0 and face.height > 0:
                faces.append(face)
        return faces

    def _post(self, data):
        """The face rectangles of one encoded image, retrying what may pass later."""
        for attempt in range(self.max_retries + 1):
            try:
                return self._post_once(data)
            except _RetryableAnswer as failure:
                last = failure
                if attempt == self.max_retries:
                    break
                self.stats["retries"] += 1
                self._sleep(retry_delay(attempt + 1, self.retry_base_seconds, failure.retry_after, self._rng))
        raise AzureStopError(f"{self.service.title} at {self.url} still failing after {self.max_retries} "
                             f"retries, the last: {last}. Try again later; finished videos are kept")

    def _post_once(self, data):
        self._rate_limiter.wait()
        self.stats["requests"] += 1
        try:
            response = self._session.post(self.url, params=self.params, data=data,
                                          timeout=self.timeout_seconds, allow_redirects=False)
        except requests.Timeout:
            raise _RetryableAnswer(f"no answer within {self.timeout_seconds} s") from None
        except requests.ConnectionError as error:
            raise _RetryableAnswer(f"could not connect ({self._redact(error)})") from None
        except requests.RequestException as error:
            raise AzureStopError(f"{self.service.title}: request failed: {self._redact(error)}") from None
        status = response.status_code
        if status == 200:
            try:
                return face_rectangles(self.service.name, response.json())
            except ValueError as error:  # includes malformed JSON
                raise _RetryableAnswer(f"HTTP 200 with an unreadable answer ({self._redact(error)}); "
                                       f"is {self.service.endpoint_variable} the right address?") from None
        code, message = error_code_and_message(response)
        described = self._redact(f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else ""))
        if status in RETRY_STATUSES:
            raise _RetryableAnswer(described, parse_retry_after(response.headers.get("Retry-After")))
        if status in IMAGE_STATUSES:
            raise ImageRejectedError(f"{self.service.title} refused the image: {described}")
        raise AzureStopError(self._explain(status, described))

    def _explain(self, status, described):
        """The message that stops the stage for a status no retry can fix."""
        service = self.service
        if status == 401:
            advice = (f"the key in {service.key_variable} was refused: check that it is a key of the "
                      f"resource at {service.endpoint_variable}")
        elif status == 403:
            advice = ("the resource refused the request (quota used up, or this API not enabled for it): "
                      "check it in the Azure portal")
        elif status == 404:
            advice = (f"{self.url} does not exist: {service.endpoint_variable} should be "
                      "https://<resource>.cognitiveservices.azure.com, without a path")
        elif status == 410:
            advice = "this API version has been retired: see docs/00-02-preprocessing.md for the services supported"
        elif 300 <= status < 400:
            advice = (f"the endpoint redirects elsewhere; not followed, so the key is not sent there: "
                      f"check {service.endpoint_variable}")
        else:
            advice = "unexpected answer"
        return f"{service.title}: {described}: {advice}"

    def _redact(self, text):
        """`text` (or an exception's message) with the key, should it appear, replaced."""
        return str(text).replace(self._key, "<key>") if self._key else str(text)


# ------------------------------------------------------------------ stage 01b's job loop

def crop_video_with_azure(frames_dir, cfg, detector):
    """Stage 01b's job: crop the faces of one video's frames into FACES_DIR/<video>/; return its Outcome.

    Raises AzureStopError (nothing of this video is kept) when the service cannot be used.
    """
    # One frame at a time: the detector sends one request per frame anyway, and a stop loses less.
    return crop_faces_of_video(frames_dir, cfg.FACES_DIR, detector, cfg, batch_size=1,
                               on_problem=lambda message: warn(f"frame not searched: {message}"))


def crop_videos_with_azure(folders, cfg, detector):
    """Stage 01b's job loop, in this process: crop each video in turn (stage 01a's crop loop); return (Outcomes, the AzureStopError that stopped it or None)."""
    outcomes = []
    bar = tqdm(folders, desc="stage 01b videos", unit="video", dynamic_ncols=True)
    try:
        for folder in bar:
            try:
                outcome = crop_video_with_azure(folder, cfg, detector)
            except AzureStopError as error:
                return outcomes, error
            except Exception as error:  # noqa: BLE001 - one video's bug must not stop the others
                outcome = Outcome(folder.name, FAILED, f"{type(error).__name__}: {error}")
            if outcome.status in (SKIPPED, FAILED):
                warn(f"{outcome.name}: {outcome.reason}")
            outcomes.append(outcome)
            bar.set_postfix(requests=detector.stats["requests"], retries=detector.stats["retries"],
                            refresh=False)
    finally:
        bar.close()
    return outcomes, None


def describe_requests(detector):
    """One summary line: what was asked of the service, and what it cost."""
    stats = detector.stats
    line = (f"{detector.service.title}: {stats['requests']:,} requests, {stats['frames_sent']:,} frames sent, "
            f"{stats['retries']:,} retries, {stats['frames_rejected']:,} frames refused, "
            f"{stats['frames_rescaled']:,} frames rescaled to the service's size limits")
    if detector.rate_limit_wait_seconds >= 1:
        line += f", {detector.rate_limit_wait_seconds:,.0f} s waiting for AZURE_CALLS_PER_MINUTE"
    return line
