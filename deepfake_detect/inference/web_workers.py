"""Where the web page's uploads are scored: a small pool of worker processes holding the model,
so that no upload can take the server down.

    WorkerPool(model_path, cfg)   WEB_WORKERS processes (spawned, each loads MTCNN and the model once)
    InProcessRunner(scorer, cfg)  the same interface in the server's own process (tests, the Python API)

A task is one saved upload: check_task reads its header (decode budgets: media/budget.py, with
WEB_MAX_VIDEO_SECONDS for videos) and score_task scores it, both in the worker. The server only
waits for the answer and relays progress. A worker that dies (a decoder crash, the kernel's OOM
killer), grows above WEB_WORKER_MAX_MB of resident memory (checked a few times a second, Linux)
or runs a task past WEB_JOB_TIMEOUT_S is killed and replaced; that task ends with one sentence.
So the server's memory stays where it was, and the memory of the whole service is bounded by
server + WEB_WORKERS x WEB_WORKER_MAX_MB (docs/04-detect.md). A replacement that fails to start
is tried again with growing pauses (RESTART_BACKOFF_S), never given up; `workers_up()` says how
many are alive (the page's /healthz).

Workers never see a secret: their settings have every SECRET_SETTINGS blanked, and they are
spawned with an environment without the variables worker_environment drops.
"""

import contextlib
import logging
import multiprocessing
import os
import queue
import re
import threading
import time
import types

import cv2

from deepfake_detect.media.budget import BudgetError, VideoError, check_video_budget
from deepfake_detect.media.frames import frame_step, open_video
from deepfake_detect.inference import records
from deepfake_detect.inference.results import FAILED, IMAGE, UNREADABLE, VIDEO
from deepfake_detect.inference.verdicts import score_meaning
from deepfake_detect.settings import SECRET_SETTINGS

MAX_CROPS_SHOWN = 60        # a long video has one face a second; the page shows the first ones
QUEUE_WAIT_S = 120          # how long a task waits for a free (or restarting) worker before a 503
WATCH_INTERVAL_S = 0.2      # how often a running task's worker is checked (alive, memory, time)
START_TIMEOUT_S = 300       # loading MTCNN and the model in a new worker, on a busy 2-core machine
RESTART_BACKOFF_S = (1, 60)  # pause before retrying a worker that failed to start: first, doubling up to the second
# Environment variables a worker is spawned without: the secret settings' own and anything named
# like a credential (a cloud SDK's key, a CI token), since a worker only decodes and scores.
SECRET_VARIABLE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
SPAWN_LOCK = threading.Lock()  # one worker spawned at a time: the environment is scrubbed around each spawn
LOG = logging.getLogger("deepfake_detect.web")
SCORING_FAILED = "Scoring failed on this file; the details are in the server's log."


class UploadError(Exception):
    """An upload that cannot be scored: HTTP status and a sentence for the user."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def result_payload(result, cfg, with_crops, with_overlays=False):
    """The JSON answer for one scored upload (also what the page shows): its input record with
    the face records of its first MAX_CROPS_SHOWN faces (all without crops and overlays), the
    context fields, and for a video its timeline. See docs/results.md."""
    from deepfake_detect.inference.timeline import frame_series, person_series

    shown = MAX_CROPS_SHOWN if with_crops or with_overlays else None
    faces = [records.face_record(face, cfg, overlay=with_overlays, crop=with_crops) for face in result.faces[:shown]]
    timeline = [{"frame": frame, "p_fake": p_fake} for frame, p_fake in frame_series(result)] \
        if result.kind == VIDEO else []
    person_timelines = [{"person": person, "points": [{"frame": frame, "p_fake": p} for frame, p in points]}
                        for person, points in person_series(result).items()] if result.kind == VIDEO else []
    return {"schema": records.SCHEMA_VERSION, **records.input_record(result), "face_scores": faces,
            "timeline": timeline, "person_timelines": person_timelines, **records.context_fields(cfg),
            "score_meaning": score_meaning(cfg)}


def new_task(path, kind, name, with_crops=False, with_overlays=False):
    """One saved upload to score: its private path, IMAGE/VIDEO, the user's file name (shown
    only, never a path) and what the answer carries."""
    return {"path": str(path), "kind": kind, "name": name, "crops": with_crops, "overlays": with_overlays}


def check_task(task, cfg):
    """How many frames scoring `task` will read (1 for an image; for a video its announced
    frame count over the kept-frame step, None when unknown), once its header is within the
    decode budgets. Raises UploadError 413 over budget, 422 for a video that cannot be opened.
    Reads headers only: nothing is decoded."""
    name, kind = task["name"], task["kind"]
    try:
        if kind == IMAGE:
            return 1  # its header was checked when the server saved it (web.save_upload)
        capture = open_video(task["path"])
        try:
            check_video_budget(capture, cfg.MAX_VIDEO_PIXELS, cfg.WEB_MAX_VIDEO_SECONDS)
            count, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
        finally:
            capture.release()
    except BudgetError as error:
        raise UploadError(413, f"{name} is too large to score here: {error}.") from None
    except VideoError as error:
        raise UploadError(422, f"{name} looks like a {kind} but cannot be decoded: {error}.") from None
    if not count or count < 0 or not fps or fps <= 0:
        return None
    return -(-int(count) // frame_step(fps, cfg.FRAMES_PER_SECOND))


def score_task(scorer, task, cfg, progress=None):
    """Score a checked task with `scorer`; return its JSON payload (result_payload). Raises
    UploadError 422 for media that cannot be decoded, 500 for a failure while scoring."""
    result = scorer.score_file(task["path"], cfg, kind=task["kind"], explain=task["overlays"] and scorer.can_explain,
                               progress=progress)
    result.path = task["name"]
    if result.status == UNREADABLE:
        raise UploadError(422, f"{task['name']} looks like a {task['kind']} but cannot be decoded: {result.reason}.")
    if result.status == FAILED:
        LOG.error("scoring %r failed: %s", task["name"], result.reason)
        raise UploadError(500, SCORING_FAILED)
    return result_payload(result, cfg, task["crops"], task["overlays"] and scorer.can_explain)


def is_frame_task(task):
    """True for a live view's frame (live/frames.py frame_task): scored in memory, no file."""
    return task.get("kind") == "live-frame"


def run_frame_task(scorer, task, cfg):
    """(200, faces answer) or (422, sentence) for a live frame task (live/frames.py)."""
    from deepfake_detect.live.frames import score_frame_task

    answer = score_frame_task(scorer, task, cfg)
    return (200, answer) if answer is not None else (422, "The frame is not a JPEG image that can be decoded.")


class InProcessRunner:
    """Tasks scored by an already loaded Scorer in this process, one at a time (scorer.lock).
    No isolation: for tests and callers that manage their own process."""

    def __init__(self, scorer, cfg):
        self.scorer, self.cfg = scorer, cfg
        self.can_explain = scorer.can_explain

    def health(self):
        return {"workers_up": 1, "workers_wanted": 1, "workers_starting": 0}  # this process is the worker

    def run(self, task, progress=None, expected=None, wait=None):
        """(200, payload) or (HTTP status, sentence) for `task`; `expected(frames)` is called once
        the header is read, `progress(frames read)` after each frame."""
        try:
            if is_frame_task(task):
                with self.scorer.lock:
                    return run_frame_task(self.scorer, task, self.cfg)
            frames = check_task(task, self.cfg)
            if expected:
                expected(frames)
            with self.scorer.lock:
                return 200, score_task(self.scorer, task, self.cfg, progress)
        except UploadError as error:
            return error.status, error.message

    def close(self):
        pass


# ------------------------------------------------------------------ worker processes

def worker_main(connection, model_path, cfg):
    """A worker process: load the scorer, say ("ready", can_explain) or ("failed", sentence), then
    answer each task with ("expected", frames), ("progress", frames read)..., ("done", status,
    payload or sentence) until the pipe closes."""
    from deepfake_detect.inference.scoring import Scorer

    try:
        scorer = Scorer(model_path)
    except Exception as error:  # noqa: BLE001 - ModelError and whatever Keras raises, told to the server
        connection.send(("failed", str(error)))
        return
    from deepfake_detect.live.frames import warm_up

    warm_up(scorer)  # the live view's batch shape and MTCNN, so a live view's first frame is not seconds late
    connection.send(("ready", scorer.can_explain))
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        try:
            if is_frame_task(task):
                connection.send(("done", *run_frame_task(scorer, task, cfg)))
                continue
            connection.send(("expected", check_task(task, cfg)))
            answer = (200, score_task(scorer, task, cfg, progress=lambda frames: connection.send(("progress", frames))))
        except UploadError as error:
            answer = (error.status, error.message)
        except Exception:  # noqa: BLE001 - one sentence for the user, the trace for the log
            LOG.exception("scoring %r failed", task["name"])
            answer = (500, SCORING_FAILED)
        connection.send(("done", *answer))


def resident_mb(pid):
    """Resident memory of process `pid` in MB, from /proc (Linux); None elsewhere or when gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def worker_settings(cfg):
    """A copy of `cfg` for the workers, with every secret setting blanked: they never need one."""
    blanked = {name: "" for name in vars(cfg) if name in SECRET_SETTINGS or SECRET_VARIABLE.search(name)}
    return types.SimpleNamespace(**{**vars(cfg), **blanked})


def is_secret_variable(name):
    return name.upper() in SECRET_SETTINGS or bool(SECRET_VARIABLE.search(name))


@contextlib.contextmanager
def worker_environment():
    """While this holds (one spawn, milliseconds), os.environ lacks every secret variable, so a
    process spawned now inherits none; they are put back after. multiprocessing's spawn takes
    no environment of its own, and the server reads no secret from its environment once its
    config is loaded, so the short gap is harmless."""
    with SPAWN_LOCK:
        hidden = {name: os.environ.pop(name) for name in list(os.environ) if is_secret_variable(name)}
        try:
            yield
        finally:
            os.environ.update(hidden)


class Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, context, model_path, cfg):
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=worker_main, args=(child_end, str(model_path), cfg),
                                       name="deepfake-detect-worker", daemon=True)
        with worker_environment():
            self.process.start()
        child_end.close()

    def wait_ready(self, timeout):
        """can_explain once the worker has loaded its model; ModelError-like RuntimeError if it could not."""
        if not self.connection.poll(timeout):
            raise RuntimeError(f"a scoring worker did not load the model within {timeout} s")
        try:
            message = self.connection.recv()
        except (EOFError, OSError):
            raise RuntimeError(f"a scoring worker died while loading the model (exit code {self.process.exitcode})") from None
        if message[0] != "ready":
            raise RuntimeError(message[1])
        return message[1]

    def stop(self):
        """Kill the process (SIGKILL on POSIX) and wait for it."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.connection.close()


class WorkerPool:
    """WEB_WORKERS worker processes holding the model; `run` scores one task on a free one.

    `start()` spawns them and waits until each has loaded the model (RuntimeError when one
    cannot). A worker that dies, outgrows WEB_WORKER_MAX_MB or overruns WEB_JOB_TIMEOUT_S is
    killed and a new one is started in the background, tried again with backoff until one starts.
    """

    def __init__(self, model_path, cfg):
        self.model_path = model_path
        self.cfg = worker_settings(cfg)
        self.context = multiprocessing.get_context("spawn")  # no fork of a threaded server, same on every OS
        self.idle = queue.Queue()
        self.lock = threading.Lock()
        self.live = set()  # workers that loaded the model and have not been stopped
        self.starting = 0  # replacements being started or waiting to be tried again
        self.can_explain = False
        self.closed = False

    def start(self):
        workers = [Worker(self.context, self.model_path, self.cfg) for _ in range(self.cfg.WEB_WORKERS)]
        try:
            for worker in workers:
                self.can_explain = worker.wait_ready(START_TIMEOUT_S)
        except RuntimeError:
            for worker in workers:
                worker.stop()
            raise
        for worker in workers:
            self._add(worker)
        return self

    def workers_up(self):
        """How many workers are alive and hold the model (idle or scoring)."""
        with self.lock:
            return sum(worker.process.is_alive() for worker in self.live)

    def health(self):
        """The numbers /healthz reports."""
        with self.lock:
            starting = self.starting
        return {"workers_up": self.workers_up(), "workers_wanted": self.cfg.WEB_WORKERS, "workers_starting": starting}

    def _add(self, worker, replacing=False):
        with self.lock:  # counted up and no longer starting at once, so health() never sees it twice
            self.live.add(worker)
            self.starting -= replacing
        self.idle.put(worker)

    def replace(self, worker):
        """Kill `worker` and start another in a background thread; it joins the idle ones when
        ready. One that fails to start is tried again after RESTART_BACKOFF_S (doubling), so a
        passing problem (a model file being replaced, memory short for a while) cannot leave
        the pool empty for good."""
        with self.lock:
            self.live.discard(worker)
            self.starting += 1
        worker.stop()
        threading.Thread(target=self._start_replacement, name="worker-restart", daemon=True).start()

    def _start_replacement(self):
        pause, attempt = RESTART_BACKOFF_S[0], 1
        added = False
        try:
            while not self.closed:
                new = None
                try:
                    new = Worker(self.context, self.model_path, self.cfg)
                    new.wait_ready(START_TIMEOUT_S)
                except (RuntimeError, OSError) as error:  # OSError: no process could be spawned at all
                    if new is not None:
                        new.stop()
                    LOG.error("a replacement scoring worker failed to start (attempt %d; %d of %d workers up): %s; "
                              "trying again in %s s", attempt, self.workers_up(), self.cfg.WEB_WORKERS, error, pause)
                    time.sleep(pause)
                    pause, attempt = min(pause * 2, RESTART_BACKOFF_S[1]), attempt + 1
                    continue
                if self.closed:
                    new.stop()
                    return
                self._add(new, replacing=True)
                added = True
                LOG.warning("a replacement scoring worker is up (attempt %d; %d of %d workers up)",
                            attempt, self.workers_up(), self.cfg.WEB_WORKERS)
                return
        finally:
            if not added:  # closed while starting
                with self.lock:
                    self.starting -= 1

    def run(self, task, progress=None, expected=None, wait=QUEUE_WAIT_S):
        """(200, payload) or (HTTP status, sentence) for `task`, scored on a free worker (waiting
        up to `wait` s for one); `expected(frames)` is called once the worker has read the
        header, `progress(frames read)` after each frame."""
        try:
            worker = self.idle.get(timeout=wait)
        except queue.Empty:
            return 503, "Every scoring worker is busy or restarting; try again in a minute."
        try:
            worker.connection.send(task)
        except OSError:
            self.replace(worker)
            return 503, "A scoring worker was restarting; try again shortly."
        deadline = time.monotonic() + self.cfg.WEB_JOB_TIMEOUT_S
        while True:
            problem = self._watch(worker, deadline)
            if problem:
                LOG.error("worker %s stopped on %r: %s", worker.process.pid, task["name"], problem)
                self.replace(worker)
                return 500 if "timeout" not in problem else 504, self._sentence(task["name"], problem)
            try:
                if not worker.connection.poll(WATCH_INTERVAL_S):
                    continue
                message = worker.connection.recv()
            except (EOFError, OSError):
                continue  # the process is gone: _watch says so next
            if message[0] == "expected" and expected:
                expected(message[1])
            elif message[0] == "progress" and progress:
                progress(message[1])
            elif message[0] == "done":
                self.idle.put(worker)
                return message[1], message[2]

    def _watch(self, worker, deadline):
        """Why a running worker must stop ('crashed', 'memory', 'timeout'), or None."""
        if not worker.process.is_alive():
            return f"crashed (exit code {worker.process.exitcode})"
        rss = resident_mb(worker.process.pid)
        if rss is not None and rss > self.cfg.WEB_WORKER_MAX_MB:
            return f"memory: {rss:,.0f} MB above WEB_WORKER_MAX_MB"
        if time.monotonic() > deadline:
            return f"timeout: over WEB_JOB_TIMEOUT_S = {self.cfg.WEB_JOB_TIMEOUT_S} s"
        return None

    def _sentence(self, name, problem):
        if problem.startswith("timeout"):
            return (f"Scoring {name} took longer than {self.cfg.WEB_JOB_TIMEOUT_S} s (WEB_JOB_TIMEOUT_S) "
                    f"and was stopped; try a shorter clip.")
        if problem.startswith("memory"):
            return (f"Scoring {name} needed more than {self.cfg.WEB_WORKER_MAX_MB:,} MB of memory "
                    f"(WEB_WORKER_MAX_MB) and was stopped.")
        return f"The scorer crashed or ran out of memory on {name} and was restarted; the file was not scored."

    def close(self):
        """Stop every worker (idle ones at once; busy ones are killed by their task's thread;
        replacements being started stop once they are ready or fail)."""
        self.closed = True
        while True:
            try:
                self.idle.get_nowait().stop()
            except queue.Empty:
                return

