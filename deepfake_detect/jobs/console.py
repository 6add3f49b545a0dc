"""What a stage prints: one-line problems on stderr, the end-of-stage summary, a timer.
"""

import sys
import time
from collections import Counter
from tqdm import tqdm
from deepfake_detect.jobs.outcome import ALREADY_DONE, DONE, FAILED, SKIPPED


def warn(message):
    """Print a one-line problem to stderr without breaking a progress bar."""
    tqdm.write(message, file=sys.stderr)


def summarize(stage, outcomes, seconds, output_dir, unit="videos", extra=None):
    """Print the end-of-stage summary: counts by status, summed counts, time, output folder.

    Returns the text printed. `extra` is a list of lines (already formatted) to add.
    """
    statuses = Counter(o.status for o in outcomes)
    totals = Counter()
    for outcome in outcomes:
        totals.update(outcome.counts)
    parts = [f"{statuses[s]:,} {s}" for s in (DONE, ALREADY_DONE, SKIPPED, FAILED) if statuses[s]]
    lines = [f"{stage} finished in {seconds:,.1f} s: {len(outcomes):,} {unit} "
             f"({', '.join(parts) if parts else 'nothing to do'})"]
    if totals:
        lines.append("  " + ", ".join(f"{name}: {value:,}" for name, value in totals.items()))
    lines += [f"  {line}" for line in (extra or [])]
    problems = [o for o in outcomes if o.status in (SKIPPED, FAILED)]
    lines += [f"  {o.status}: {o.name}: {o.reason}" for o in problems[:10]]
    if len(problems) > 10:
        lines.append(f"  ... and {len(problems) - 10:,} more, each printed above")
    failed = statuses[FAILED]
    if failed:
        # Unlike a skipped bad input, a failed item is not done: a scheduler or `&&` must see it.
        lines.append(f"  {failed:,} {unit} failed and not done (skipped bad inputs aside): exit status 1; "
                     "a rerun retries them")
    lines.append(f"  output: {output_dir}")
    text = "\n".join(lines)
    print(text)
    return text


class Timer:
    """Seconds since creation: `timer = Timer(); ...; timer.seconds`."""

    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self):
        return time.perf_counter() - self.start
