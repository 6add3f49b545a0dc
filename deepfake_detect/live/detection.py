"""The face detector run beside the scoring loop, in its own thread.

MTCNN takes ~8x what the model takes for one face (about 180 ms against 25 ms for a 640x360
frame on a 2-core CPU). Run in the scoring loop, every detection would hold up its frame and set
the p95 latency; run beside it, the loop scores every frame with the newest boxes while the
detector looks at a recent frame, and TensorFlow spreads the two over both cores. The boxes it
returns are a detection old (about 0.2 s), so the loop follows them from the frame they were
found in to the frame it scores (frames.follow_boxes).
"""

import threading

from deepfake_detect.live.frames import find_boxes, grey


class BackgroundDetector:
    """`submit(frame)` starts a detection when none is running (True) or declines (False);
    `take()` returns (boxes, the grey frame they were found in) of the last finished one, once,
    else None."""

    def __init__(self, scorer, cfg):
        self.scorer, self.cfg = scorer, cfg
        self._lock = threading.Lock()
        self._busy, self._found, self._error = False, None, None

    def submit(self, frame_bgr):
        with self._lock:
            if self._busy:
                return False
            self._busy = True
        threading.Thread(target=self._detect, args=(frame_bgr,), name="live-detector", daemon=True).start()
        return True

    def _detect(self, frame_bgr):
        try:
            found, error = (find_boxes(self.scorer, frame_bgr, self.cfg), grey(frame_bgr)), None
        except Exception as problem:  # noqa: BLE001 - handed to the loop, which reports it
            found, error = None, problem
        with self._lock:
            self._found, self._error, self._busy = found, error, False

    def take(self):
        """(boxes, grey frame) of the newest detection not yet taken, or None; raises what the
        detector raised."""
        with self._lock:
            found, error = self._found, self._error
            self._found = self._error = None
        if error is not None:
            raise error
        return found
