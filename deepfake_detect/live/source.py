"""A live source read by a background thread that keeps only the newest frame.

SOURCE is a camera index ("0"), a device path (/dev/video0), a network URL (rtsp://, http://,
udp://, ...) or a video file, which is played at its own frame rate as if it were live. When
scoring falls behind, older frames are replaced by newer ones and counted as dropped: nothing
queues up, so memory stays flat and a result is never more than one frame behind the source.
A camera or network source that stops delivering is reopened with backoff for up to
LIVE_RECONNECT_SECONDS; a file ends at its last frame.
"""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

OPEN_TIMEOUT_MS = 5000     # OpenCV's FFmpeg backend: give up opening or reading a network source after this
FIRST_BACKOFF_S = 0.25     # the first reconnect waits this long, each next one twice as long ...
MAX_BACKOFF_S = 2.0        # ... up to this
NETWORK_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


class SourceError(RuntimeError):
    """A source that cannot be opened at all: the message is one sentence for the user."""


@dataclass
class Frame:
    """One frame as read: its number among the frames read, its time in seconds since the stream
    began, the monotonic clock when it was captured, and the BGR image."""

    number: int
    time: float
    captured: float
    image: object = field(repr=False)


def parse_source(text):
    """A camera index as an int ("0" -> 0), anything else as given (a path or a URL)."""
    text = str(text).strip()
    return int(text) if text.isdigit() else text


def source_kind(source):
    """'camera' (an index or a /dev/ path), 'network' (a URL) or 'file'."""
    if isinstance(source, int) or str(source).startswith("/dev/"):
        return "camera"
    if str(source).lower().startswith(NETWORK_SCHEMES) or "://" in str(source):
        return "network"
    return "file"


def open_capture(source):
    """An opened cv2.VideoCapture for `source`, or None when it cannot be opened."""
    kind = source_kind(source)
    if kind == "file" and not Path(source).is_file():
        return None
    if kind == "network":
        capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                                            cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS])
    else:
        capture = cv2.VideoCapture(source)
    if capture.isOpened():
        return capture
    capture.release()
    return None


def describe_failure(source):
    """The sentence for a source that cannot be opened."""
    kind = source_kind(source)
    if kind == "file":
        if not Path(source).exists():
            return f"cannot open the live source {source}: no such file, camera index or URL"
        return f"cannot open the live source {source}: OpenCV cannot read it as a video"
    if kind == "camera":
        return f"cannot open camera {source}: it does not exist, is busy, or this user may not use it"
    return f"cannot open the stream {source}: nothing answered as a video there (check the URL and that it is playing)"


class LatestFrameReader:
    """Reads `source` in a daemon thread and keeps the newest Frame only.

    `start()` opens the source (a network source or camera is retried for `reconnect_seconds`)
    and raises SourceError when it cannot. `latest(timeout)` returns a frame not returned before,
    waiting for one, or None once the source has ended. Counts: frames_read, frames_dropped
    (read but replaced before anyone took them), reconnects; `end_reason` says why it stopped.
    """

    def __init__(self, source, reconnect_seconds=10.0, clock=time.monotonic):
        self.source, self.kind = source, source_kind(source)
        self.reconnect_seconds, self.clock = reconnect_seconds, clock
        self.frames_read = self.frames_dropped = self.reconnects = 0
        self.end_reason = None
        self.started = None
        self.last_frame_time = 0.0  # stream seconds of the newest frame read
        self._slot, self._taken = None, True
        self._ended = False
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._capture, self._thread = None, None
        self._origin, self._last_time = None, 0.0   # network streams: timestamp of time 0, last time given

    def start(self):
        self._capture = self._open(first=True)
        if self._capture is None:
            raise SourceError(describe_failure(self.source))
        self._thread = threading.Thread(target=self._run, name="live-reader", daemon=True)
        self._thread.start()
        return self

    def _open(self, first=False):
        """An opened capture, retried with backoff for reconnect_seconds unless the source is a
        file; None when it cannot be opened within that time (or the reader is stopped)."""
        capture = open_capture(self.source)
        missing_device = isinstance(self.source, str) and self.source.startswith("/dev/") and not Path(self.source).exists()
        if capture is not None or self.kind == "file" or (first and missing_device):
            return capture
        deadline, backoff = self.clock() + self.reconnect_seconds, FIRST_BACKOFF_S
        while capture is None and self.clock() < deadline and not self._stop.is_set():
            if not first:
                self.reconnects += 1
            self._stop.wait(min(backoff, max(0.0, deadline - self.clock())))
            backoff = min(2 * backoff, MAX_BACKOFF_S)
            capture = open_capture(self.source)
        return capture

    def _run(self):
        capture, pace = self._capture, self._file_pace()
        try:
            while not self._stop.is_set():
                ok, image = capture.read()
                if not ok:
                    capture.release()
                    capture = None if self.kind == "file" else self._reopen()
                    if capture is None:
                        break
                    continue
                now = self.clock()
                if self.started is None:
                    self.started = now
                stream_time = self.frames_read / pace if pace else self._stream_time(capture, now)
                if pace:  # a file plays at its own speed: wait until this frame is due
                    self._stop.wait(max(0.0, self.started + stream_time - now))
                    now = self.clock()
                self._put(Frame(self.frames_read, stream_time, now, image))
        finally:
            if capture is not None:
                capture.release()
            with self._changed:
                self._ended = True
                self.end_reason = self.end_reason or ("stopped" if self._stop.is_set() else "the source ended")
                self._changed.notify_all()

    def _stream_time(self, capture, now):
        """Seconds since the stream began: by the stream's own timestamps when it has them (a
        network stream: OpenCV delivers its first seconds in a burst after probing them, so the
        clock would squeeze them), else by the clock. After a reconnect the timestamps restart, so
        they are re-anchored to the clock."""
        position = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
        clock_time = now - self.started
        if self.kind != "network" or not position > 0:
            return clock_time
        if self._origin is None or position - self._origin < self._last_time:
            self._origin = position - (clock_time if self._origin is not None else 0.0)
        self._last_time = position - self._origin
        return self._last_time

    def _file_pace(self):
        """Frames per second at which a file is played (its own rate; 25 when it has none)."""
        if self.kind != "file":
            return None
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        return fps if fps and 0 < fps < 1000 else 25.0

    def _reopen(self):
        """A new capture after the source dropped, or None (end_reason set) when it stays away."""
        capture = self._open()
        if capture is None and not self._stop.is_set():
            self.end_reason = (f"the source stopped and did not come back within "
                               f"{self.reconnect_seconds:g} s ({self.reconnects} reconnect attempts)")
        return capture

    def _put(self, frame):
        with self._changed:
            if not self._taken:
                self.frames_dropped += 1
            self._slot, self._taken = frame, False
            self.frames_read += 1
            self.last_frame_time = frame.time
            self._changed.notify_all()

    def latest(self, timeout=None):
        """The newest frame not yet returned (waiting up to `timeout` s for one; None: forever),
        or None when the source has ended or nothing came in time (check `ended`)."""
        with self._changed:
            self._changed.wait_for(lambda: not self._taken or self._ended, timeout)
            if self._taken:
                return None
            self._taken = True
            return self._slot

    @property
    def ended(self):
        with self._changed:
            return self._ended and self._taken

    def stop(self):
        """Stop reading and wait for the thread (a blocked network read ends within OPEN_TIMEOUT_MS)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=OPEN_TIMEOUT_MS / 1000 + 1)
        with self._changed:
            if not self._taken:  # read but never scored: dropped, so read = scored + dropped
                self.frames_dropped += 1
                self._taken = True
