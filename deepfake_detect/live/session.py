"""A live session's memory and judgement: persons followed frame to frame, each person's P(fake)
over the last LIVE_WINDOW_SECONDS, their verdict by the rules files are judged by, and an alert
once per fake segment.

Persons: the tracker of stage 04 (inference/tracks.py: a track's predicted box, the overlap and
distance cost, the optimal assignment), run one frame at a time; a track stays open for
LIVE_TRACK_GAP_SECONDS without a face. Verdicts: a person's window is judged like a short video of
one person (verdicts.combine_face_scores by VIDEO_SCORE, verdicts.video_verdict with
UNCERTAIN_MARGIN, segments.series_segments for fake segments, smoothed over
LIVE_SMOOTHING_SECONDS and at least LIVE_MIN_FAKE_SECONDS long). A person whose fake segment
reaches the newest frame reads FAKE whatever the window's score, and is alerted once for it; the
segment ends when the smoothed P(fake) falls back. Everything kept is bounded: the windows by
time, the summary's segments by MAX_KEPT.
"""

from collections import deque

import numpy as np
from scipy.optimize import linear_sum_assignment

from deepfake_detect.inference.results import Segment
from deepfake_detect.inference.segments import series_segments
from deepfake_detect.inference.tracks import NO_MATCH, Track, match_cost
from deepfake_detect.inference.verdicts import combine_face_scores, verdict_of, video_verdict
from deepfake_detect.live.events import Alert, PersonUpdate, Update

MAX_KEPT = 1000            # closed segments and persons kept for the summary (a day-long stream stays small)
MAX_WINDOW_POINTS = 2000   # faces per person window whatever its time span (100 s at 20 frames/s)


class LiveTracker:
    """Stage 04's person tracks, fed one frame at a time."""

    def __init__(self, cfg):
        self.cfg, self.tracks, self.last_seen, self.next_person, self.step = cfg, [], {}, 1, 0

    def assign(self, faces, time):
        """Set `person` on each LiveFace of the frame at `time` (seconds); returns the faces."""
        self.step += 1
        gap = self.cfg.LIVE_TRACK_GAP_SECONDS
        self.tracks = [t for t in self.tracks if time - self.last_seen[t.person] <= gap]
        matched = set()
        if self.tracks and faces:
            cost = np.array([[match_cost(t.predicted_box(self.step), f.box, self.cfg.TRACK_MIN_IOU,
                                         self.cfg.TRACK_MAX_DISTANCE) for f in faces] for t in self.tracks])
            for row, column in zip(*linear_sum_assignment(cost)):
                if cost[row, column] < NO_MATCH:
                    self.tracks[row].update(faces[column].box, self.step)
                    faces[column].person = self.tracks[row].person
                    matched.add(column)
        for column in sorted(set(range(len(faces))) - matched, key=lambda c: faces[c].box[0]):
            self.tracks.append(Track(self.next_person, faces[column].box, self.step))
            faces[column].person = self.next_person
            self.next_person += 1
        for face in faces:
            self.last_seen[face.person] = time
        for person in [p for p, seen in self.last_seen.items() if time - seen > gap]:
            del self.last_seen[person]
        return faces


class PersonState:
    """One person: the window of (time, P(real)), their last box, the fake segment going on (its
    start and its P(fake) so far) and totals for the summary."""

    def __init__(self, person):
        self.person = person
        self.window = deque(maxlen=MAX_WINDOW_POINTS)
        self.box, self.last_time, self.first_time = None, None, None
        self.open_since, self.open_p_fake, self.open_end = None, [], None
        self.closed_end = 0.0     # end of the person's last closed segment: the next starts after it
        self.faces, self.p_real_sum = 0, 0.0

    def add(self, time, face, window_seconds):
        self.window.append((time, face.p_real))
        while self.window and self.window[0][0] < time - window_seconds:
            self.window.popleft()
        self.box, self.last_time = face.box, time
        self.first_time = time if self.first_time is None else self.first_time
        self.faces += 1
        self.p_real_sum += face.p_real


def judge_window(times, p_real, cfg):
    """(P(real) by VIDEO_SCORE, verdict, segments [(start, end, p_fake, frames)], smoothed P(fake)
    now, the segment reaching the newest frame or None) for one person's window."""
    interval = float(np.median(np.diff(times))) if len(times) > 1 else None
    p_fake = 1.0 - np.asarray(p_real)
    found = series_segments(times, p_fake, 1.0 - cfg.THRESHOLD, interval, cfg.LIVE_SMOOTHING_SECONDS,
                            cfg.LIVE_MIN_FAKE_SECONDS) if interval else []
    segments = [Segment(0, start, end, value, frames) for start, end, value, frames in found]
    score = combine_face_scores(list(p_real), cfg.VIDEO_SCORE, None, segments)
    verdict = video_verdict(score, segments, cfg)
    ongoing = next((s for s in segments if interval and s.end >= times[-1] + interval / 2 - 1e-9), None)
    recent = p_fake[[i for i, t in enumerate(times) if t >= times[-1] - cfg.LIVE_SMOOTHING_SECONDS / 2]]
    return score, ("FAKE" if ongoing else verdict), segments, float(np.median(recent)), ongoing


class LiveSession:
    """Feed it each scored frame (`add`); ask it for an Update (`update`) and the Summary's parts."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.tracker = LiveTracker(cfg)
        self.persons = {}         # person -> PersonState, while their track is open
        self.finished = deque(maxlen=MAX_KEPT)   # persons gone from the window, as summary dicts
        self.segments = deque(maxlen=MAX_KEPT)   # closed fake segments
        self.frames_scored = 0
        self.last_time = 0.0
        self.judged = {}          # person -> the PersonUpdate of the last frame

    def add(self, time, faces):
        """Take a scored frame's LiveFaces at `time` (stream seconds); return its Alerts."""
        self.frames_scored += 1
        self.last_time = time
        alerts = []
        for face in self.tracker.assign(faces, time):
            state = self.persons.setdefault(face.person, PersonState(face.person))
            state.add(time, face, self.cfg.LIVE_WINDOW_SECONDS)
        for person, state in list(self.persons.items()):
            if time - state.last_time > self.cfg.LIVE_TRACK_GAP_SECONDS:  # the tracker has let them go
                self._close(state)
                self.finished.append(self._person_summary(state))
                del self.persons[person]
                self.judged.pop(person, None)
            elif state.last_time == time:
                alert = self._judge(state, time)
                if alert:
                    alerts.append(alert)
        return alerts

    def _judge(self, state, time):
        times = [t for t, _ in state.window]
        score, verdict, _, p_fake_now, ongoing = judge_window(times, [p for _, p in state.window], self.cfg)
        alert = None
        if ongoing and state.open_since is None:
            # a new segment starts after the last one closed, though the window's run may reach back
            since = max(ongoing.start, state.closed_end)
            state.open_since, state.open_p_fake = since, []
            alert = Alert(time, state.person, ongoing.p_fake, since)
        if ongoing:
            state.open_p_fake.append(p_fake_now)
            state.open_end = ongoing.end
        elif state.open_since is not None:
            self._close(state)
        self.judged[state.person] = PersonUpdate(state.person, 1.0 - score, p_fake_now, verdict, state.box,
                                                 len(state.window), state.open_since)
        return alert

    def _close(self, state):
        """End the person's fake segment going on, if any, into the summary's segments."""
        if state.open_since is not None:
            self.segments.append(Segment(state.person, state.open_since, state.open_end,
                                         float(np.mean(state.open_p_fake)), len(state.open_p_fake)))
            state.open_since, state.open_p_fake, state.closed_end = None, [], state.open_end

    def _person_summary(self, state):
        p_real = state.p_real_sum / max(1, state.faces)
        return {"person": state.person, "faces": state.faces, "first_seconds": round(state.first_time, 2),
                "last_seconds": round(state.last_time, 2), "p_real": round(p_real, 4), "p_fake": round(1 - p_real, 4),
                "verdict": verdict_of(p_real, self.cfg.THRESHOLD, self.cfg.UNCERTAIN_MARGIN),
                "fake_segments": sum(s.person == state.person for s in self.segments)}

    def update(self, time, latency_ms, counts=(0, 0)):
        """The Update now: persons seen within LIVE_TRACK_GAP_SECONDS, and the stream's verdict
        (FAKE when any of them is; otherwise the window's faces of every person by VIDEO_SCORE)."""
        shown = [self.judged[p] for p, s in sorted(self.persons.items())
                 if p in self.judged and time - s.last_time <= self.cfg.LIVE_TRACK_GAP_SECONDS]
        verdict = None
        if any(p.verdict == "FAKE" for p in shown):
            verdict = "FAKE"
        elif self.persons:
            p_real, persons = [], []
            for person, state in self.persons.items():
                p_real += [p for _, p in state.window]
                persons += [person] * len(state.window)
            verdict = video_verdict(combine_face_scores(p_real, self.cfg.VIDEO_SCORE, persons), [], self.cfg)
        return Update(time, latency_ms, verdict, shown, counts[0], self.frames_scored, counts[1])

    def close(self):
        """End every open segment and person; return (persons, segments) for the Summary."""
        for state in self.persons.values():
            self._close(state)
        for state in self.persons.values():
            self.finished.append(self._person_summary(state))
        self.persons = {}
        return sorted(self.finished, key=lambda p: p["person"]), sorted(self.segments, key=lambda s: (s.person, s.start))
