"""A live source turned into a stream of Updates, Alerts and a Summary: the loop shared by
04-detect_deepfakes.py --live and Detector.stream.

    stream = LiveStream(source, scorer, cfg).open()    # SourceError: one sentence
    for event in stream: ...                            # Update / Alert ..., then the Summary

Each turn takes the newest frame (source.py), scores its faces at the newest boxes (frames.py; the
detector runs beside the loop every LIVE_DETECT_EVERY frames: detection.py), gives them to the
session (session.py) and yields its Alerts, and an Update when LIVE_UPDATE_SECONDS have passed.
When the source ends the Summary comes last; a caller that stops early (Ctrl+C) asks `summary()`.
"""

import sys
import time
from collections import deque

import numpy as np

from deepfake_detect.live.events import Summary
from deepfake_detect.live.detection import BackgroundDetector
from deepfake_detect.live.frames import find_boxes, follow_boxes, grey, score_boxes, warm_up
from deepfake_detect.live.session import LiveSession
from deepfake_detect.live.source import LatestFrameReader, parse_source

MAX_LATENCIES = 100_000    # per-frame latencies kept for the summary's percentiles (about 2 h at 15 frames/s)


class LiveStream:
    """Live scoring of one source with a loaded Scorer and settings `cfg`. `on_frame(frame,
    faces)` is called after each scored frame (for --record)."""

    def __init__(self, source, scorer, cfg, on_frame=None, clock=time.monotonic):
        self.scorer, self.cfg, self.on_frame, self.clock = scorer, cfg, on_frame, clock
        self.reader = LatestFrameReader(parse_source(source), cfg.LIVE_RECONNECT_SECONDS, clock)
        self.session = LiveSession(cfg)
        self.latencies = deque(maxlen=MAX_LATENCIES)
        self.frames_failed = 0
        self.started = None
        self._summary = None

    def open(self):
        """Open the source (SourceError when it cannot be) and warm the model up; returns self."""
        warm_up(self.scorer)
        self.reader.start()
        self.started = self.clock()
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.reader.stop()

    def __iter__(self):
        try:
            yield from self._events()
        finally:
            self.reader.stop()
        yield self.summary()

    def _events(self):
        boxes, before, since_detection, last_update = None, None, 0, None
        detector = BackgroundDetector(self.scorer, self.cfg)
        while True:
            frame = self.reader.latest(timeout=0.5)
            if frame is None:
                if self.reader.ended:
                    return
                continue
            try:
                now = grey(frame.image)
                boxes, since_detection = self._boxes(detector, frame, now, before, boxes, since_detection)
                before = now
                faces = score_boxes(self.scorer, frame.image, self.cfg, boxes) if boxes else []
            except Exception as error:  # noqa: BLE001 - one bad frame must not end a live check
                self.frames_failed += 1
                if self.frames_failed == 1:
                    print(f"warning: a frame could not be scored ({type(error).__name__}: {error}); "
                          f"going on", file=sys.stderr)
                continue
            alerts = self.session.add(frame.time, faces)
            latency_ms = (self.clock() - frame.captured) * 1000
            self.latencies.append(latency_ms)
            if self.on_frame:
                self.on_frame(frame, faces)
            yield from alerts
            if alerts or last_update is None or frame.time - last_update >= self.cfg.LIVE_UPDATE_SECONDS:
                last_update = frame.time
                yield self.session.update(frame.time, latency_ms,
                                          (self.reader.frames_read, self.reader.frames_dropped))

    def _boxes(self, detector, frame, now, before, boxes, since_detection):
        """(boxes to score this frame at, frames since a detection was started): the first frame
        is searched here; later, a detection is started in the background every
        LIVE_DETECT_EVERY frames (detection.py), its boxes are followed from the frame they were
        found in to this one, and between detections the last boxes are followed from the last
        frame (frames.follow_boxes)."""
        if boxes is None:
            return find_boxes(self.scorer, frame.image, self.cfg), 0
        found = detector.take()
        if found is not None:
            boxes, before = found
        if boxes and before is not None and before.shape == now.shape:
            boxes = follow_boxes(before, now, boxes)
        since_detection += 1
        if since_detection >= self.cfg.LIVE_DETECT_EVERY and detector.submit(frame.image):
            since_detection = 0
        return boxes, since_detection

    def summary(self):
        """The Summary (made once: later calls return the same)."""
        if self._summary is None:
            self.reader.stop()
            persons, segments = self.session.close()
            latencies = np.asarray(self.latencies) if self.latencies else None
            self._summary = Summary(
                # read and neither scored nor failed is dropped, the frame Ctrl+C caught half-scored too
                self.reader.frames_read, self.session.frames_scored,
                self.reader.frames_read - self.session.frames_scored - self.frames_failed,
                self.reader.last_frame_time, persons, segments,
                self.reader.end_reason or "stopped", self.reader.reconnects, self.frames_failed,
                None if latencies is None else {"p50": round(float(np.percentile(latencies, 50)), 1),
                                                "p95": round(float(np.percentile(latencies, 95)), 1)},
                self.clock() - self.started if self.started else 0.0)
        return self._summary
