"""What happened to one item of a stage's work: the Outcome every per-video job returns.

A job is a module-level function `job(item, cfg) -> Outcome`. It reports bad input by
returning Outcome(status=SKIPPED, reason=...) rather than raising; run_job catches an exception
that escapes a job and makes it a FAILED Outcome, so one bad video never stops a run.
"""

from dataclasses import dataclass, field


DONE, ALREADY_DONE, SKIPPED, FAILED = "done", "already done", "skipped", "failed"


@dataclass
class Outcome:
    """What happened to one item. `counts` holds numbers to add up, e.g. {"frames": 11}."""

    name: str
    status: str = DONE
    reason: str = ""
    counts: dict = field(default_factory=dict)


def run_job(job, item, cfg):
    try:
        return job(item, cfg)
    except Exception as error:  # noqa: BLE001 - one video's bug must not stop 100,000 others
        return Outcome(getattr(item, "name", str(item)), FAILED, f"{type(error).__name__}: {error}")


def exit_status(outcomes):
    """1 when an item failed (it is not done and a rerun retries it: a scheduler or `&&` must see
    that) or when nothing could be processed; 0 otherwise (skipped bad inputs alone do not make it 1)."""
    if not outcomes:
        return 0
    if any(o.status == FAILED for o in outcomes):
        return 1
    useful = sum(1 for o in outcomes if o.status in (DONE, ALREADY_DONE))
    return 0 if useful else 1
