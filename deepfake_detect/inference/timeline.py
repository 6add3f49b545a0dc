"""A video's P(fake) frame by frame: an inline SVG for the web page (no script, no font, no
request: it works offline) and the same plot as `<name>-timeline.png` for `--annotate`.

A frame's P(fake) is the mean of its faces' P(fake); with several persons (tracks.py) each gets
its own line instead, and fake segments (segments.py) are shaded. A frame in which no face was
found has none and is marked on the time axis instead. The dashed line is the threshold: a score above
1 - THRESHOLD in P(fake) terms is FAKE (P(real) below THRESHOLD).

Geometry (SVG user units): the plot area starts at (LEFT, TOP) and is PLOT_WIDTH x PLOT_HEIGHT;
frame f of a video whose frames run from first to last sits at x_of(f, first, last), and
P(fake) p at y_of(p) = TOP + (1 - p) * PLOT_HEIGHT, so the points can be read back.
"""

from html import escape

import numpy as np

WIDTH, HEIGHT = 640, 190
LEFT, RIGHT, TOP, BOTTOM = 46, 14, 12, 38
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
FAKE_COLOUR, REAL_COLOUR, LINE_COLOUR, NO_FACE_COLOUR = "#b00020", "#1b7f2a", "#1f4e9c", "#888888"
# One line colour per person (cycled), the first the single-person line's; segments are shaded.
PERSON_COLOURS = (LINE_COLOUR, "#e07b00", "#7b3fa0", "#00838f", "#6d4c41")
SEGMENT_FILL = "#f4c7cf"


def person_colour(person):
    return PERSON_COLOURS[(person - 1) % len(PERSON_COLOURS)]


def frame_series(result):
    """[(frame index, P(fake) or None)] for every frame a Result read: the mean P(fake) of its
    faces, None when it has none."""
    by_frame = result.faces_by_frame()
    return [(index, float(np.mean([face.p_fake for face in by_frame[index]])) if index in by_frame else None)
            for index in result.frame_indices]


def person_series(result):
    """{person: [(frame index, P(fake))]} of a Result's faces, each person in frame order."""
    return {person: [(face.frame, face.p_fake) for face in faces]
            for person, faces in result.faces_by_person().items()}


def segment_spans(segments, fps):
    """[(first frame, last frame, person)] of segments (start/end in seconds) at `fps`, as floats."""
    return [(segment["start"] * fps, segment["end"] * fps, segment["person"]) for segment in segments] if fps else []


def x_of(frame, first, last):
    return LEFT + (frame - first) / (last - first) * PLOT_WIDTH if last > first else LEFT + PLOT_WIDTH / 2


def y_of(p_fake):
    return TOP + (1.0 - p_fake) * PLOT_HEIGHT


def timeline_svg(series, threshold, persons=None, spans=()):
    """The SVG markup (a string) of P(fake) per frame; `threshold` is THRESHOLD (a P(real)).

    With `persons` ({person: [(frame, P(fake))]}) of two or more, a line per person replaces the
    frames' mean; `spans` (segment_spans) are shaded behind the lines."""
    if not series:
        return ""
    first, last = series[0][0], series[-1][0]
    lines = persons if persons and len(persons) > 1 else None
    scored = [(frame, p) for frame, p in series if p is not None]
    cut = 1.0 - threshold
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="P(fake) per frame" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="#fafafa" stroke="#ccc"/>']
    for value in (0.0, 0.5, 1.0):
        y = y_of(value)
        parts.append(f'<line x1="{LEFT - 4}" y1="{y:.2f}" x2="{LEFT}" y2="{y:.2f}" stroke="#666"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.2f}" text-anchor="end">{value:.1f}</text>')
    parts.append(f'<text x="12" y="{TOP + PLOT_HEIGHT / 2:.1f}" transform="rotate(-90 12 {TOP + PLOT_HEIGHT / 2:.1f})" '
                 f'text-anchor="middle">P(fake)</text>')
    parts.append(f'<line class="threshold" x1="{LEFT}" y1="{y_of(cut):.2f}" x2="{LEFT + PLOT_WIDTH}" '
                 f'y2="{y_of(cut):.2f}" stroke="{FAKE_COLOUR}" stroke-dasharray="5 4"/>'
                 f'<text x="{LEFT + PLOT_WIDTH - 2}" y="{y_of(cut) - 4:.2f}" text-anchor="end" '
                 f'fill="{FAKE_COLOUR}">threshold: FAKE above {cut:.2f}</text>')
    for start, end, person in spans:
        left, right = (min(max(x_of(v, first, last), LEFT), LEFT + PLOT_WIDTH) for v in (start, end))
        parts.append(f'<rect class="segment" data-person="{person}" x="{left:.2f}" y="{TOP}" width="{right - left:.2f}" '
                     f'height="{PLOT_HEIGHT}" fill="{SEGMENT_FILL}" fill-opacity="0.7"><title>person {person}: '
                     f'fake segment</title></rect>')
    if lines:
        for person, points in lines.items():
            text = " ".join(f"{x_of(frame, first, last):.2f},{y_of(p):.2f}" for frame, p in points)
            parts.append(f'<polyline class="person" data-person="{person}" points="{text}" fill="none" '
                         f'stroke="{person_colour(person)}" stroke-width="1.5"><title>person {person}</title></polyline>')
        scored = [point for points in lines.values() for point in points]
    elif scored:
        points = " ".join(f"{x_of(frame, first, last):.2f},{y_of(p):.2f}" for frame, p in scored)
        parts.append(f'<polyline class="scores" points="{points}" fill="none" stroke="{LINE_COLOUR}" stroke-width="1.5"/>')
    if scored:
        for frame, p in scored:
            colour = FAKE_COLOUR if p > cut else REAL_COLOUR
            parts.append(f'<circle cx="{x_of(frame, first, last):.2f}" cy="{y_of(p):.2f}" r="3" fill="{colour}">'
                         f'<title>frame {frame}: P(fake) {p:.3f}</title></circle>')
    base = TOP + PLOT_HEIGHT
    for frame, p in series:
        if p is None:
            x = x_of(frame, first, last)
            parts.append(f'<path class="no-face" data-frame="{frame}" d="M{x - 3:.2f},{base - 3:.2f} l6,6 m0,-6 l-6,6" '
                         f'stroke="{NO_FACE_COLOUR}" stroke-width="1.5"><title>frame {frame}: no face</title></path>')
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 20}">frame {first}</text>'
                 f'<text x="{LEFT + PLOT_WIDTH}" y="{HEIGHT - 20}" text-anchor="end">frame {last}</text>')
    no_face = sum(p is None for _, p in series)
    legend = (f"{sum(p is not None for _, p in series)} frames with faces"
              + (f", {no_face} without (grey x)" if no_face else "")
              + (f"; {len(lines)} persons: " + ", ".join(f"{person} {name_of_colour(person)}" for person in lines)
                 if lines else "") + ("; shaded: fake segment" if spans else "") + "; dashed: threshold")
    parts.append(f'<text x="{LEFT + PLOT_WIDTH / 2}" y="{HEIGHT - 5}" text-anchor="middle" fill="#555">{escape(legend)}</text>')
    parts.append("</svg>")
    return "".join(parts)


COLOUR_NAMES = dict(zip(PERSON_COLOURS, ("blue", "orange", "purple", "teal", "brown")))


def name_of_colour(person):
    return COLOUR_NAMES[person_colour(person)]


def write_timeline_png(series, threshold, path, title="", persons=None, spans=()):
    """The same plot as a PNG (matplotlib), written atomically; None when there is no frame."""
    if not series:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepfake_detect.plots import save_figure

    cut = 1.0 - threshold
    scored = [(frame, p) for frame, p in series if p is not None]
    figure, axis = plt.subplots(figsize=(8, 2.6))
    for number, (start, end, person) in enumerate(spans):
        axis.axvspan(start, end, color=SEGMENT_FILL, alpha=0.7, label="fake segment" if not number else None)
    if persons and len(persons) > 1:
        for person, points in persons.items():
            frames, values = zip(*points)
            axis.plot(frames, values, "-", color=person_colour(person), linewidth=1.5, label=f"person {person}")
        scored = [point for points in persons.values() for point in points]
    elif scored:
        frames, values = zip(*scored)
        axis.plot(frames, values, "-", color=LINE_COLOUR, linewidth=1.5, label="P(fake) of the frame's faces")
    if scored:
        frames, values = zip(*scored)
        axis.scatter(frames, values, c=[FAKE_COLOUR if p > cut else REAL_COLOUR for p in values], s=14, zorder=3)
    missing = [frame for frame, p in series if p is None]
    if missing:
        axis.scatter(missing, [0.0] * len(missing), marker="x", color=NO_FACE_COLOUR, label="no face", zorder=3)
    axis.axhline(cut, color=FAKE_COLOUR, linestyle="--", linewidth=1, label=f"threshold (FAKE above {cut:.2f})")
    axis.set_ylim(-0.05, 1.05)
    axis.set_xlabel("video frame")
    axis.set_ylabel("P(fake)")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path
