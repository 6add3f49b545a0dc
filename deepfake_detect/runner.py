"""Run one job per video over a process pool, with a progress bar, reasons and a summary.

A job is a module-level function `job(item, cfg) -> Outcome`. It reports bad input by
returning Outcome(status="skipped", reason=...) rather than raising; an exception that
escapes a job is caught here and counted as "failed", so one bad video never stops a run.
"""

import concurrent.futures
import multiprocessing
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from tqdm import tqdm

DONE, ALREADY_DONE, SKIPPED, FAILED = "done", "already done", "skipped", "failed"


@dataclass
class Outcome:
    """What happened to one item. `counts` holds numbers to add up, e.g. {"frames": 11}."""

    name: str
    status: str = DONE
    reason: str = ""
    counts: dict = field(default_factory=dict)


def plan_shard(items, output_dir, part, count):
    """This machine's share of `items` (anything with a `.name`), split into what is left to do.

    Creates `output_dir`, clears the partial folders a killed run left there, and returns
    (items to do, Outcomes of the items already done), printing one line with the counts.
    """
    from deepfake_detect.dataset import select_shard
    from deepfake_detect.files import completed_names, remove_stale_partials

    items = select_shard(items, part, count)
    output_dir.mkdir(parents=True, exist_ok=True)
    if remove_stale_partials(output_dir):
        print("cleared the unfinished folders of an interrupted earlier run")
    finished = completed_names(output_dir)
    todo = [item for item in items if item.name not in finished]
    already = [Outcome(item.name, ALREADY_DONE) for item in items if item.name in finished]
    print(f"{len(items):,} videos in this shard, {len(todo):,} to do, {len(already):,} already done")
    return todo, already


def warn(message):
    """Print a one-line problem to stderr without breaking a progress bar."""
    tqdm.write(message, file=sys.stderr)


def _run_job(job, item, cfg):
    try:
        return job(item, cfg)
    except Exception as error:  # noqa: BLE001 - one video's bug must not stop 100,000 others
        return Outcome(getattr(item, "name", str(item)), FAILED, f"{type(error).__name__}: {error}")


def run_jobs(job, items, cfg, workers, desc, initializer=None, initargs=(), progress=True):
    """Run `job(item, cfg)` for every item, `workers` at a time; return the Outcomes in order.
    `progress=False` hides the bar (for a caller that shows its own, e.g. stage 05's sweep).

    workers == 1 runs in this process (easy to debug); more use fresh "spawn" processes on
    every OS, because forking a process that has loaded TensorFlow or OpenCV threads can hang.
    With cfg.RAY_ADDRESS set (--ray), the jobs run on that Ray cluster instead (ray_engine).
    """
    outcomes = []
    bar = tqdm(total=len(items), desc=desc, unit="video", dynamic_ncols=True, disable=not progress)
    try:
        if getattr(cfg, "RAY_ADDRESS", None) and items:
            from deepfake_detect import ray_engine  # imported only when asked: the default needs no Ray

            for outcome in ray_engine.run_jobs(job, items, cfg, initializer, initargs):
                outcomes.append(_record(outcome, bar))
        elif workers <= 1 or len(items) <= 1:
            if initializer:
                initializer(*initargs)
            results = (_run_job(job, item, cfg) for item in items)
            for outcome in results:
                outcomes.append(_record(outcome, bar))
        else:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(
                    max_workers=workers, mp_context=context,
                    initializer=initializer, initargs=initargs) as pool:
                futures = [pool.submit(_run_job, job, item, cfg) for item in items]
                for future in concurrent.futures.as_completed(futures):
                    outcomes.append(_record(future.result(), bar))
    finally:
        bar.close()
    order = {getattr(item, "name", str(item)): index for index, item in enumerate(items)}
    return sorted(outcomes, key=lambda o: order.get(o.name, len(order)))


def _record(outcome, bar):
    if outcome.status in (SKIPPED, FAILED):
        warn(f"{outcome.name}: {outcome.reason}")
    bar.update(1)
    bar.set_postfix_str(f"last: {outcome.status}", refresh=False)
    return outcome


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
    lines.append(f"  output: {output_dir}")
    text = "\n".join(lines)
    print(text)
    return text


def exit_status(outcomes):
    """0 when something was processed or everything was already done; 1 when nothing could be."""
    if not outcomes:
        return 0
    useful = sum(1 for o in outcomes if o.status in (DONE, ALREADY_DONE))
    return 0 if useful else 1


class Timer:
    """Seconds since creation: `timer = Timer(); ...; timer.seconds`."""

    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self):
        return time.perf_counter() - self.start
