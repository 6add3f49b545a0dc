"""Where a live stream's events go: the terminal (one line per person), JSON lines for programs
(--jsonl PATH or -), and the annotated video (--record PATH)."""

import json
import os
import sys
from pathlib import Path

import cv2

from deepfake_detect.inference.annotate import annotate_frame
from deepfake_detect.inference.segments import describe_segment
from deepfake_detect.live.events import Alert, Summary, Update

PLAIN_STATUS_SECONDS = 5.0  # without a terminal (a log file, a pipe), the person lines every 5 s


class JsonLines:
    """One JSON object per event and line, flushed at once, to a file or stdout ("-")."""

    def __init__(self, target):
        self.handle = sys.stdout if str(target) == "-" else open(target, "w", encoding="utf-8")

    def show(self, event):
        self.handle.write(json.dumps(event.as_dict()) + "\n")
        self.handle.flush()

    def close(self):
        if self.handle is not sys.stdout:
            self.handle.close()


def person_line(person):
    """'person 1  REAL       P(fake) 0.12 (now 0.10), 48 faces'."""
    since = f", fake since {person.fake_since:.1f} s" if person.fake_since is not None else ""
    return (f"person {person.person:<3} {person.verdict or '-':<10} P(fake) {person.p_fake:.2f} "
            f"(now {person.p_fake_now:.2f}), {person.faces} faces{since}")


def status_line(update):
    return (f"{update.time:7.1f} s  verdict {update.verdict or '- (no face)'}  latency {update.latency_ms:,.0f} ms  "
            f"frames read {update.frames_read:,}, scored {update.frames_scored:,}, dropped {update.frames_dropped:,}")


def live_summary_lines(summary):
    """The summary as printed at the end."""
    lines = [f"live check finished: {summary.seconds:,.1f} s of stream in {summary.wall_seconds:,.1f} s ({summary.end_reason}); frames read "
             f"{summary.frames_read:,}, scored {summary.frames_scored:,}, dropped {summary.frames_dropped:,}"
             + (f", failed {summary.frames_failed:,}" if summary.frames_failed else "")
             + (f"; latency p50 {summary.latency_ms['p50']:,.0f} ms, p95 {summary.latency_ms['p95']:,.0f} ms"
                if summary.latency_ms else "")]
    for person in summary.persons:
        lines.append(f"  person {person['person']}: {person['faces']} faces, seen {person['first_seconds']:.1f}-"
                     f"{person['last_seconds']:.1f} s, P(fake) {person['p_fake']:.3f} {person['verdict']}")
    lines += [f"  {describe_segment(segment)}" for segment in summary.segments]
    return lines


class Terminal:
    """The live view in a terminal: a status line and one line per person, redrawn in place on a
    terminal, printed every PLAIN_STATUS_SECONDS otherwise; alerts and the summary as lines."""

    def __init__(self, handle=None):
        self.handle = handle or sys.stdout
        self.live = self.handle.isatty()
        self.drawn, self.last_plain = 0, None

    def show(self, event):
        if isinstance(event, Update):
            lines = [status_line(event)] + [person_line(p) for p in event.persons]
            if self.live:
                self._redraw(lines)
            elif self.last_plain is None or event.time - self.last_plain >= PLAIN_STATUS_SECONDS:
                self.last_plain = event.time
                self.print_lines(lines)
        elif isinstance(event, Alert):
            self.print_lines([f"ALERT at {event.time:.1f} s: {event.message} (P(fake) {event.p_fake:.2f})"])
        elif isinstance(event, Summary):
            self.print_lines(live_summary_lines(event))

    def _redraw(self, lines):
        up = f"\x1b[{self.drawn}F" if self.drawn else ""
        self.handle.write(up + "".join(f"\x1b[2K{line}\n" for line in lines) + "\x1b[J")
        self.handle.flush()
        self.drawn = len(lines)

    def print_lines(self, lines):
        self.drawn = 0  # what was drawn stays above the new lines
        self.handle.write("".join(line + "\n" for line in lines))
        self.handle.flush()

    def close(self):
        pass


class Recorder:
    """The annotated stream (boxes, person numbers, P(fake)) as an mp4 at LIVE_RECORD_FPS: each
    scored frame is repeated until the next, so the video keeps the stream's time. Written under a
    temporary name and renamed when closed."""

    def __init__(self, path, cfg):
        self.path, self.cfg = Path(path), cfg
        self.temporary = self.path.with_name(f".{self.path.stem}.tmp-{os.getpid()}{self.path.suffix or '.mp4'}")
        self.writer, self.written, self.last = None, 0, None

    def add(self, frame, faces):
        canvas = annotate_frame(frame.image, faces, self.cfg.THRESHOLD)
        if self.writer is None:
            height, width = canvas.shape[:2]
            self.writer = cv2.VideoWriter(str(self.temporary), cv2.VideoWriter_fourcc(*"mp4v"),
                                          self.cfg.LIVE_RECORD_FPS, (width, height))
            if not self.writer.isOpened():
                raise OSError(f"OpenCV cannot write {self.path}")
            self.size = (width, height)
        if (canvas.shape[1], canvas.shape[0]) != self.size:
            canvas = cv2.resize(canvas, self.size)  # a stream that changed size after a reconnect
        due = int(frame.time * self.cfg.LIVE_RECORD_FPS) + 1
        while self.written < due:
            self.writer.write(canvas)
            self.written += 1

    def close(self):
        """Finish the file; returns its path, or None when no frame was scored."""
        if self.writer is None:
            return None
        self.writer.release()
        os.replace(self.temporary, self.path)
        return self.path
