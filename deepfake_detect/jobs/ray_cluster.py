"""Run a stage's per-video jobs on a Ray cluster instead of local processes (`--ray`, RAY_ADDRESS).

jobs.pool.run_jobs hands its jobs here when cfg.RAY_ADDRESS is set; nothing else imports Ray, so the
default path needs no Ray installed. The jobs are the same functions the local pool runs, so the
outputs, partial folders, resume, progress bar and summary are the same:

  - a job without an initializer (stage 00): one Ray task per video, retried up to RAY_MAX_RETRIES
    times by Ray when its worker process or its machine dies (retry_exceptions is off: a job's own
    exception is already a "failed" Outcome, as locally, and would fail again);
  - a job with an initializer (stage 01a's MTCNN): one actor per RAY_CPUS_PER_ACTOR CPUs of each
    node (or per RAY_GPUS_PER_ACTOR GPUs when the cluster has GPUs) runs the initializer once and
    takes video after video; when an actor dies with its machine, its videos go to the others.

A video's folder is built under `.<video>.partial-<host>-<pid>` and renamed only once complete
(files.start_partial_folder), so a dead machine never publishes a half-written folder and the
output equals a local run's. A retry builds its own partial folder; it deletes an earlier
attempt's only when that attempt ran on its host and its process is gone (files.is_stale_partial),
since a machine Ray gave up on may still be writing. Other leftovers wait for --clean-partials.

The cluster's machines must see the data at the same paths (shared storage, as for --shard) and
this repository at the same path with the same Python packages: workers get the repository on
their PYTHONPATH and work in the driver's current folder, so relative paths mean the same.
"""

import importlib
import logging
import os
from collections import deque

from deepfake_detect.jobs.outcome import FAILED, Outcome, run_job
from deepfake_detect.settings import REPO_DIR

# Videos in flight per CPU slot (or actor): one running, one queued, so no slot waits for the driver.
IN_FLIGHT_PER_SLOT = 2


# ------------------------------------------------------------------ code on the workers

def function_spec(function):
    """(module name, function name) that a worker can import: every job lives in the package
    (e.g. deepfake_detect.media.convert.convert_video), never in a script run as __main__."""
    if function.__module__ == "__main__":
        raise ValueError(f"{function.__qualname__} is defined in a script; Ray workers import jobs from the package")
    return function.__module__, function.__qualname__


def resolve_function(spec):
    """The function named by function_spec(), imported in this (worker) process."""
    module, name = spec
    return getattr(importlib.import_module(module), name)


def enter_folder(folder):
    """Work in the driver's folder, so relative paths in the config mean what they meant there."""
    if os.getcwd() != folder:
        os.chdir(folder)


def run_task(job_spec, item, cfg, folder):
    """A Ray task: one video, as the local pool's workers run it."""
    enter_folder(folder)
    return run_job(resolve_function(job_spec), item, cfg)


class JobActor:
    """A Ray actor: runs the job's initializer once (e.g. loads MTCNN), then one video per call."""

    def __init__(self, job_spec, initializer_spec, initargs, folder):
        enter_folder(folder)
        self.job = resolve_function(job_spec)
        resolve_function(initializer_spec)(*initargs)

    def run(self, item, cfg):
        return run_job(self.job, item, cfg)


# ------------------------------------------------------------------ the driver

def connect(address, job):
    """ray.init against `address` with the folder holding the package importable."""
    import ray

    if ray.is_initialized():
        return ray
    python_path = os.pathsep.join(dict.fromkeys([str(REPO_DIR)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    try:
        # log_to_driver off: workers' TensorFlow chatter would break the progress bar; each
        # video's problems come back in its Outcome, as from the local pool.
        ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": python_path}},
                 log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise SystemExit(f"error: cannot connect to the Ray cluster at {address!r}: {error}") from None
    return ray


def alive_nodes(ray):
    """Resources of the cluster's live nodes: [{"CPU": 8.0, "GPU": 1.0, ...}, ...]."""
    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def actor_slots(nodes, cpus_per_actor, gpus_per_actor):
    """(actors that fit on these nodes, whether they ask for GPUs). GPUs are used when any node has one."""
    use_gpus = gpus_per_actor > 0 and any(node.get("GPU", 0) > 0 for node in nodes)
    count = 0
    for node in nodes:
        fits = int(node.get("CPU", 0) // cpus_per_actor)
        if use_gpus:
            fits = min(fits, int(node.get("GPU", 0) // gpus_per_actor))
        count += fits
    return count, use_gpus


def run_on_cluster(job, items, cfg, initializer=None, initargs=(), ordered=False):
    """Yield what `job(item, cfg)` returns for every item as it finishes on the Ray cluster (in
    the items' order with `ordered`); an item Ray could not run yields a "failed" Outcome."""
    ray = connect(cfg.RAY_ADDRESS, job)
    try:
        cfg_ref = ray.put(cfg)
        folder = os.getcwd()
        numbered = list(enumerate(items))
        if initializer is None:
            results = run_tasks(ray, job, numbered, cfg_ref, folder, cfg.RAY_MAX_RETRIES)
        else:
            results = run_on_actors(ray, job, numbered, cfg_ref, folder, cfg, initializer, initargs)
        yield from in_order(results) if ordered else (result for _, result in results)
    finally:
        ray.shutdown()


def in_order(numbered_results):
    """(position, result) pairs in any order -> results in position order, each as soon as it can be."""
    waiting, next_position = {}, 0
    for position, result in numbered_results:
        waiting[position] = result
        while next_position in waiting:
            yield waiting.pop(next_position)
            next_position += 1


def run_tasks(ray, job, items, cfg_ref, folder, max_retries):
    """One Ray task per item, at most IN_FLIGHT_PER_SLOT per cluster CPU submitted at a time
    (ray.wait over 100,000 pending tasks would cost more than the tasks)."""
    task = ray.remote(run_task).options(num_cpus=1, max_retries=max_retries, retry_exceptions=False)
    window = max(1, int(sum(node.get("CPU", 0) for node in alive_nodes(ray)))) * IN_FLIGHT_PER_SLOT
    spec, waiting, pending = function_spec(job), deque(items), {}
    while waiting or pending:
        while waiting and len(pending) < window:
            position, item = waiting.popleft()
            pending[task.remote(spec, item, cfg_ref, folder)] = (position, item)
        done, _ = ray.wait(list(pending), num_returns=1)
        position, item = pending.pop(done[0])
        try:
            yield position, ray.get(done[0])
        except ray.exceptions.RayError as error:  # retries used up: the machine kept dying under it
            yield position, Outcome(getattr(item, "name", str(item)), FAILED,
                                    f"Ray gave up after {max_retries + 1} attempts: {type(error).__name__}")


def run_on_actors(ray, job, items, cfg_ref, folder, cfg, initializer, initargs):
    """Items spread over actors that each ran `initializer` once; an item whose actor died
    (its machine stopped) goes back in the queue for the others, up to RAY_MAX_RETRIES times."""
    count, use_gpus = actor_slots(alive_nodes(ray), cfg.RAY_CPUS_PER_ACTOR, cfg.RAY_GPUS_PER_ACTOR)
    if count == 0:
        raise SystemExit(f"error: no node of the Ray cluster has RAY_CPUS_PER_ACTOR = {cfg.RAY_CPUS_PER_ACTOR} "
                         f"free CPUs{' and RAY_GPUS_PER_ACTOR GPUs' if use_gpus else ''}: lower the setting")
    options = {"num_cpus": cfg.RAY_CPUS_PER_ACTOR, "max_restarts": 0}
    if use_gpus:
        options["num_gpus"] = cfg.RAY_GPUS_PER_ACTOR
    actor_class = ray.remote(JobActor).options(**options)
    spec = function_spec(job)
    actors = [actor_class.remote(spec, function_spec(initializer), initargs, folder)
              for _ in range(min(count, len(items)))]
    waiting = deque((numbered, 0) for numbered in items)  # ((position, item), attempts that died with their actor)
    pending = {}                                          # ObjectRef -> ((position, item), attempts, actor)
    busy = {id(actor): 0 for actor in actors}
    last_death = "none started"
    while waiting or pending:
        for actor in actors:
            while waiting and busy[id(actor)] < IN_FLIGHT_PER_SLOT:
                numbered, attempts = waiting.popleft()
                pending[actor.run.remote(numbered[1], cfg_ref)] = (numbered, attempts, actor)
                busy[id(actor)] += 1
        if not pending:
            raise SystemExit(f"error: every Ray actor died ({last_death}); {len(waiting):,} videos not done: "
                             "run again to go on")
        done, _ = ray.wait(list(pending), num_returns=1)
        numbered, attempts, actor = pending.pop(done[0])
        (position, item), name = numbered, getattr(numbered[1], "name", str(numbered[1]))
        busy[id(actor)] -= 1
        try:
            yield position, ray.get(done[0])
        except ray.exceptions.RayActorError as error:
            last_death = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
            if actor in actors:
                actors.remove(actor)
            if attempts < cfg.RAY_MAX_RETRIES:
                waiting.append((numbered, attempts + 1))
            else:
                yield position, Outcome(name, FAILED, f"its Ray actor died {attempts + 1} times: {type(error).__name__}")
        except ray.exceptions.RayError as error:
            yield position, Outcome(name, FAILED, f"Ray: {type(error).__name__}: {error}")
