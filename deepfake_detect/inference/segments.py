"""When a video is fake: per person, the spans where P(fake) stays above the threshold.

Each person's faces (tracks.py) give a P(fake) per sampled frame. It is smoothed by a running
median over SEGMENT_SMOOTHING_SECONDS (a median removes one-frame blips yet keeps the step of a
swap that starts mid-video where it is; a mean would smear it over the window). Runs of frames
whose smoothed P(fake) is above 1 - THRESHOLD make segments; a run shorter than
MIN_FAKE_SECONDS is dropped. Each sampled frame stands for the time around it, half an interval
either side (the interval: the median step between the frames read), so a segment runs from
half an interval before its first frame to half an interval after its last: a swap starting
between two sampled frames is placed midway between them, at most half an interval off.
"""

import numpy as np

from deepfake_detect.inference.results import Segment


def sample_interval(frame_indices, fps):
    """Seconds between two sampled frames (the median step), or None without two frames or fps."""
    if not fps or len(frame_indices) < 2:
        return None
    return float(np.median(np.diff(sorted(frame_indices)))) / fps


def smooth_median(values, window):
    """Running median of `values` over `window` samples (made odd), shrinking at the ends."""
    values = np.asarray(values, dtype=np.float64)
    half = max(0, int(window) // 2)
    if half == 0:
        return values.copy()
    return np.array([np.median(values[max(0, i - half):i + half + 1]) for i in range(len(values))])


def runs_above(values, cut):
    """[(first, last)] index pairs (inclusive) of the runs of `values` strictly above `cut`."""
    runs, start = [], None
    for index, value in enumerate(values):
        if value > cut and start is None:
            start = index
        elif value <= cut and start is not None:
            runs.append((start, index - 1))
            start = None
    if start is not None:
        runs.append((start, len(values) - 1))
    return runs


def series_segments(times, p_fake, cut, interval, smoothing_seconds, min_seconds):
    """[(start, end, mean smoothed P(fake), frames)] of one person's P(fake) series.

    times: seconds of the person's frames, increasing; p_fake: their P(fake); cut: the P(fake)
    above which a frame reads fake (1 - THRESHOLD); interval: seconds between sampled frames.
    """
    if not len(times) or not interval:
        return []
    window = round(smoothing_seconds / interval) if smoothing_seconds else 1
    smoothed = smooth_median(p_fake, window | 1)
    segments = []
    for first, last in runs_above(smoothed, cut):
        start, end = max(0.0, times[first] - interval / 2), times[last] + interval / 2
        if end - start >= min_seconds - 1e-9:
            segments.append((start, end, float(np.mean(smoothed[first:last + 1])), last - first + 1))
    return segments


def find_segments(faces, interval, fps, cfg, raw=False):
    """Segments of every person of a video whose faces (FaceScores with `person` set) were read
    `interval` seconds apart at `fps`; [] without timing (an image). Uses THRESHOLD,
    SEGMENT_SMOOTHING_SECONDS and MIN_FAKE_SECONDS; `raw`: from the uncalibrated scores."""
    if not interval or not fps:
        return []
    by_person = {}
    for face in sorted(faces, key=lambda face: face.frame):
        by_person.setdefault(face.person, []).append(face)
    segments = []
    for person, track in sorted(by_person.items()):
        times = [face.frame / fps for face in track]
        p_fake = [1.0 - (face.p_real_raw if raw else face.p_real) for face in track]
        found = series_segments(times, p_fake, 1.0 - cfg.THRESHOLD, interval,
                                cfg.SEGMENT_SMOOTHING_SECONDS, cfg.MIN_FAKE_SECONDS)
        segments += [Segment(person, start, end, p_fake, frames) for start, end, p_fake, frames in found]
    return segments


def format_seconds(seconds):
    """'0:04.0' (minutes:seconds with tenths), as the table and the page show times."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def describe_segment(segment):
    """'person 2: fake from 0:04.0 to 0:09.5 (P(fake) 0.91)'."""
    return (f"person {segment.person}: fake from {format_seconds(segment.start)} to "
            f"{format_seconds(segment.end)} (P(fake) {segment.p_fake:.2f})")
