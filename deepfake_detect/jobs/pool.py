"""Run one job per video over a process pool (or a Ray cluster), with a progress bar and reasons.

plan_shard picks this machine's share of the videos and what is left of it to do; run_jobs runs
them locally, or on the Ray cluster named by cfg.RAY_ADDRESS (ray_cluster.py, imported only then).
"""

import concurrent.futures
import multiprocessing
from tqdm import tqdm
from deepfake_detect.jobs.console import warn
from deepfake_detect.jobs.outcome import ALREADY_DONE, FAILED, SKIPPED, Outcome, run_job


def plan_shard(items, output_dir, part, count, clean_partials=False):
    """This machine's share of `items` (anything with a `.name`), split into what is left to do.

    Creates `output_dir`, clears the partial folders a killed run of this machine left there
    (with `clean_partials`, those of every other machine too: --clean-partials), and returns
    (items to do, Outcomes of the items already done), printing one line with the counts.
    """
    from deepfake_detect.datasets.discovery import select_shard
    from deepfake_detect.files import completed_names, remove_stale_partials

    items = select_shard(items, part, count)
    output_dir.mkdir(parents=True, exist_ok=True)
    removed, foreign = remove_stale_partials(output_dir, every_host=clean_partials)
    if removed:
        print(f"cleared {removed:,} unfinished folders of an interrupted earlier run")
    if foreign:
        print(f"left {foreign:,} unfinished folders of other machines in {output_dir} alone (they may be "
              "at work); once none is, --clean-partials clears them")
    finished = completed_names(output_dir)
    todo = [item for item in items if item.name not in finished]
    already = [Outcome(item.name, ALREADY_DONE) for item in items if item.name in finished]
    print(f"{len(items):,} videos in this shard, {len(todo):,} to do, {len(already):,} already done")
    return todo, already


def run_jobs(job, items, cfg, workers, desc, initializer=None, initargs=(), progress=True):
    """Run `job(item, cfg)` for every item, `workers` at a time; return the Outcomes in order.
    `progress=False` hides the bar (for a caller that shows its own, e.g. stage 05's sweep).

    workers == 1 runs in this process (easy to debug); more use fresh "spawn" processes on
    every OS, because forking a process that has loaded TensorFlow or OpenCV threads can hang.
    With cfg.RAY_ADDRESS set (--ray), the jobs run on that Ray cluster instead (jobs/ray_cluster.py).
    """
    outcomes = []
    bar = tqdm(total=len(items), desc=desc, unit="video", dynamic_ncols=True, disable=not progress)
    try:
        if getattr(cfg, "RAY_ADDRESS", None) and items:
            from deepfake_detect.jobs import ray_cluster

            for outcome in ray_cluster.run_on_cluster(job, items, cfg, initializer, initargs):
                outcomes.append(_record(outcome, bar))
        elif workers <= 1 or len(items) <= 1:
            if initializer:
                initializer(*initargs)
            results = (run_job(job, item, cfg) for item in items)
            for outcome in results:
                outcomes.append(_record(outcome, bar))
        else:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(
                    max_workers=workers, mp_context=context,
                    initializer=initializer, initargs=initargs) as pool:
                futures = [pool.submit(run_job, job, item, cfg) for item in items]
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
