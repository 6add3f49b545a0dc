"""What a live stream reports: an Update at least every LIVE_UPDATE_SECONDS, an Alert when a person
turns FAKE (once per fake segment) and a Summary at the end. `as_dict()` is the JSON line of
--jsonl (docs/live.md); Detector.stream yields the objects themselves."""

from dataclasses import asdict, dataclass, field

from deepfake_detect.inference.segments import format_seconds


def rounded(value, digits=4):
    return None if value is None else round(float(value), digits)


@dataclass
class PersonUpdate:
    """One person now: P(fake) over the window (by VIDEO_SCORE), the latest smoothed P(fake), the
    verdict, the last box (x, y, width, height) and the faces in the window."""

    person: int
    p_fake: float
    p_fake_now: float
    verdict: str
    box: tuple
    faces: int
    fake_since: float | None = None   # start of the fake segment going on, in stream seconds

    def as_dict(self):
        return {"person": self.person, "p_fake": rounded(self.p_fake), "p_fake_now": rounded(self.p_fake_now),
                "verdict": self.verdict, "box": [int(v) for v in self.box], "faces": self.faces,
                "fake_since": rounded(self.fake_since, 2)}


@dataclass
class Update:
    """The stream at `time` (seconds since it began): the latency from the scored frame's capture
    to this result, the stream's verdict (None while no face is in the window) and each person."""

    time: float
    latency_ms: float
    verdict: str | None
    persons: list = field(default_factory=list)  # PersonUpdate
    frames_read: int = 0
    frames_scored: int = 0
    frames_dropped: int = 0

    def as_dict(self):
        return {"type": "update", "time": rounded(self.time, 3), "latency_ms": round(self.latency_ms, 1),
                "verdict": self.verdict, "persons": [p.as_dict() for p in self.persons],
                "frames_read": self.frames_read, "frames_scored": self.frames_scored,
                "frames_dropped": self.frames_dropped}


@dataclass
class Alert:
    """A person turned FAKE: a fake segment began at `since` (stream seconds); `time` is when it
    was seen."""

    time: float
    person: int
    p_fake: float
    since: float

    @property
    def message(self):
        return f"person {self.person} looks fake since {format_seconds(self.since)}"

    def as_dict(self):
        return {"type": "alert", "time": rounded(self.time, 3), "person": self.person,
                "p_fake": rounded(self.p_fake), "since": rounded(self.since, 2), "message": self.message}


@dataclass
class Summary:
    """The whole run: frames read = scored + dropped (+ failed), its length in stream seconds (the
    newest frame's time), every person (PersonScore-like dicts) and every fake segment
    (inference.results.Segment), and why it ended."""

    frames_read: int
    frames_scored: int
    frames_dropped: int
    seconds: float
    persons: list
    segments: list
    end_reason: str
    reconnects: int = 0
    frames_failed: int = 0           # taken but not scored (an error while scoring; read = scored + dropped + failed)
    latency_ms: dict | None = None   # {"p50": ..., "p95": ...} from capture to result, over every scored frame
    wall_seconds: float = 0.0        # from opening the source to the summary (reconnect attempts included)

    def as_dict(self):
        return {"type": "summary", "frames_read": self.frames_read, "frames_scored": self.frames_scored,
                "frames_dropped": self.frames_dropped, "seconds": rounded(self.seconds, 2),
                "wall_seconds": rounded(self.wall_seconds, 2),
                "persons": self.persons,
                "segments": [{**asdict(s), "start": rounded(s.start, 2), "end": rounded(s.end, 2),
                              "p_fake": rounded(s.p_fake)} for s in self.segments],
                "end_reason": self.end_reason, "reconnects": self.reconnects,
                "frames_failed": self.frames_failed, "latency_ms": self.latency_ms}
