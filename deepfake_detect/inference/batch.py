"""Stage 04's inputs scored here, or with --ray by Ray actors that each load the model once, and shown as they come.

Memory stays flat however long a video is: faces are scored as they are found and their crops
dropped (Scorer keep_crops=False), and --annotate reads a video's frames again from its file
to draw them one at a time (annotate.py) rather than holding them until the video ends.

Ray's workers import `start_scorer` and `score_input` by name (jobs.ray_cluster.function_spec),
so they live here, at module level, with the one scorer of each actor's process.
"""

from tqdm import tqdm

from deepfake_detect.inference.annotate import annotation_path, write_annotations
from deepfake_detect.inference.results import FAILED, SCORED, Result
from deepfake_detect.inference.scoring import Scorer
from deepfake_detect.inference.table import name_width_of, result_lines, table_header
from deepfake_detect.jobs.outcome import Outcome

# Each Ray actor's scorer and options, set once by start_scorer (the model and MTCNN take seconds).
_scorer, _explain = None, False


def start_scorer(model_path, explain):
    """Ray actor set-up: load the model and MTCNN once for this actor."""
    global _scorer, _explain
    _scorer, _explain = Scorer(model_path), explain


def score_input(path, cfg):
    """Ray job: one input's Result, scored by this actor's scorer (no frames or crops kept)."""
    return _scorer.score_file(path, cfg, explain=_explain, keep_crops=False)


def score_inputs(files, cfg, scorer, model_path, explain):
    """Yield the Results of `files`, in order, without frames or crops: scored here by `scorer`,
    or when cfg.RAY_ADDRESS is set by Ray actors loading `model_path` (one per
    RAY_CPUS_PER_ACTOR CPUs or RAY_GPUS_PER_ACTOR GPUs). An input Ray could not run gets a FAILED Result."""
    if not cfg.RAY_ADDRESS:
        yield from scorer.score_files(files, cfg, explain=explain, keep_crops=False)
        return
    from deepfake_detect.jobs import ray_cluster

    results = ray_cluster.run_on_cluster(score_input, files, cfg, start_scorer, (str(model_path), explain),
                                         ordered=True)
    for path, result in zip(files, results):
        yield Result(str(path), status=FAILED, reason=result.reason) if isinstance(result, Outcome) else result


def score_and_show(files, cfg, scorer, model_path, annotate_dir=None, explain=False, details=False):
    """Stage 04's loop: score `files` (score_inputs), print each one's table lines as it comes, draw
    the scored ones into `annotate_dir` when given; return the Results (without frames or crops)."""
    name_width = name_width_of(files)
    tqdm.write(table_header(name_width))
    results, used_names = [], set()
    bar = tqdm(total=len(files), desc="stage 04 inputs", unit="input", dynamic_ncols=True)
    try:
        for result in score_inputs(files, cfg, scorer, model_path, explain):
            results.append(result)
            tqdm.write("\n".join(result_lines(result, name_width, details)))
            if annotate_dir and result.status == SCORED:
                write_annotations(result, annotation_path(annotate_dir, result, used_names), cfg, explain)
            bar.update(1)
    finally:
        bar.close()
    return results
