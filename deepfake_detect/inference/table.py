"""The table stage 04 prints: a fixed-width row per input, a line per person (when there are
several) and per fake segment under it, and with --details a line per frame and face.
"""

from deepfake_detect.inference.results import VIDEO
from deepfake_detect.inference.segments import describe_segment, format_seconds

TABLE_HEADER = ("input", "type", "status", "frames", "faces", "P(real)", "P(fake)", "verdict")
COLUMN_WIDTHS = (5, 11, 6, 5, 7, 7, 9)  # of every column after the input's, which fits the names
RIGHT_ALIGNED = ("frames", "faces", "P(real)", "P(fake)")


def format_score(value):
    """A score as '0.123', or '-' for none."""
    return "-" if value is None else f"{value:.3f}"


def name_width_of(paths):
    """The input column's width: the longest path, from 5 ('input') to 60 characters."""
    return min(60, max(len("input"), *(len(str(p)) for p in paths)))


def table_header(name_width):
    """The header line, aligned with table_row's cells."""
    widths = (name_width, *COLUMN_WIDTHS)
    aligned = [f"{title:>{w}}" if title in RIGHT_ALIGNED else f"{title:<{w}}" for title, w in zip(TABLE_HEADER, widths)]
    return "  ".join(aligned).rstrip()


def table_row(result, name_width):
    """One fixed-width line of the table for a Result, its reason (if any) last."""
    frames, faces = result.counts()
    cells = (f"{result.path:<{name_width}}", f"{result.kind or '-':<5}", f"{result.status:<11}",
             f"{'-' if frames is None else frames:>6}", f"{'-' if faces is None else faces:>5}",
             f"{format_score(result.p_real):>7}", f"{format_score(result.p_fake):>7}",
             f"{result.verdict or '-':<9}")
    line = "  ".join(cells)
    return f"{line}  {result.reason}" if result.reason else line.rstrip()


def result_lines(result, name_width, details=False):
    """The table's lines for one Result: its row, its person_lines and, with `details`, its
    detail_lines."""
    return [table_row(result, name_width)] + person_lines(result) + (detail_lines(result) if details else [])


def person_lines(result):
    """Under a row: a line per person when there are several, then a line per fake segment
    ("person 2: fake from 0:04.0 to 0:09.5 (P(fake) 0.91)")."""
    lines = []
    if len(result.persons) > 1:
        for person in result.persons:
            seen = "" if person.first_seconds is None else \
                f", seen {format_seconds(person.first_seconds)}-{format_seconds(person.last_seconds)}"
            lines.append(f"    person {person.person}: {person.faces} faces{seen}  P(real) {person.p_real:.3f}  "
                         f"P(fake) {person.p_fake:.3f}  {person.verdict}")
    return lines + [f"    {describe_segment(segment)}" for segment in result.segments]


def detail_lines(result):
    """Per-frame lines under a row (--details): every frame read, with its faces' scores."""
    by_frame = result.faces_by_frame()
    lines = []
    for index in result.frame_indices:
        faces = by_frame.get(index, [])
        where = f"frame {index}" if result.kind == VIDEO else "image"
        if not faces:
            lines.append(f"    {where}: no face")
        for face in faces:
            x, y, width, height = face.box
            who = f" (person {face.person})" if face.person else ""
            lines.append(f"    {where} face {face.number}{who}: box {width}x{height} at ({x},{y})  "
                         f"P(real) {face.p_real:.3f}  P(fake) {face.p_fake:.3f}" + gradcam_note(face))
    return lines


def gradcam_note(face):
    """'  Grad-CAM peak at 40%,70% (x,y) of the crop' for a face with a heatmap (--explain), else ''."""
    if face.heatmap is None:
        return ""
    from deepfake_detect.inference.explain import heatmap_peak

    peak_x, peak_y = heatmap_peak(face.heatmap)
    return f"  Grad-CAM peak at {peak_x:.0%},{peak_y:.0%} (x,y) of the crop"
