"""Benchmark stage 04: wall time of the command on real 1080p clips, start-up included, and
the time per further clip once the detector and model are loaded.

    DFDC_SAMPLE_DIR=/work/shared/dfdc_sample python bench/bench_04_detect.py [--repeats 3]

Uses the two 10-s 1920x1080 DFDC clips in $DFDC_SAMPLE_DIR/videos and a freshly built
EfficientNet-B0 at 128 px (weights=None: the speed is that of a trained one, the scores are not).
Measures (median of --repeats runs):
  cold, 1 clip    `python 04-detect_deepfakes.py clip1` as a new process (imports, model and
                  MTCNN loading, the clip, the table): what a user waits for the first answer
  cold, 2 clips   the same with both clips, and the second clip's own time from its --json
                  "seconds" (what one more clip costs once everything is loaded)
  warm, per clip  Scorer loaded once, the clips scored WARM_PASSES times in one score_files
                  call, like a folder: with the next clip's frames read in a background thread
                  (the default) and without (read_ahead=False), alternately
  parts           decoding alone (iter_kept_frames), MTCNN alone, the model alone, per clip
Targets (2-core CPU): first clip under 15 s with start-up, each further clip under 3 s.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))

INPUT_SIZE = 128
WARM_PASSES = 2  # the warm runs score the clips this many times in one call, like a folder of clips


def build_model(path):
    """Build and save an untrained EfficientNet-B0 at INPUT_SIZE px in a fresh process."""
    code = ("import keras; from deepfake_detect.models.network import build_model; keras.utils.set_random_seed(0); "
            f"build_model(input_size={INPUT_SIZE}, weights=None).save({str(path)!r})")
    path.parent.mkdir(parents=True)
    subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return path


def time_command(config, clips, json_path):
    """(wall seconds, [seconds of each clip]) of one run of the stage 04 command, as a new process."""
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "04-detect_deepfakes.py", "--config", str(config),
                                *map(str, clips), "--json", str(json_path)],
                               cwd=REPO_DIR, capture_output=True, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"stage 04 failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    return seconds, [record["seconds"] for record in json.loads(json_path.read_text())["inputs"]]


def time_parts(clips, cfg, scorer):
    """Seconds per clip of decoding, MTCNN and the model, each alone, one after the other."""
    import cv2

    from deepfake_detect.faces.crops import crop_face, keep_faces
    from deepfake_detect.media.frames import iter_kept_frames

    decode = detect = model = 0.0
    for clip in clips:
        started = time.perf_counter()
        frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
                  for _, f in iter_kept_frames(clip, cfg.RESIZE_RULES, cfg.FRAMES_PER_SECOND)]
        decode += time.perf_counter() - started
        started = time.perf_counter()
        crops = []
        for start in range(0, len(frames), cfg.MTCNN_BATCH_SIZE):
            batch = frames[start:start + cfg.MTCNN_BATCH_SIZE]
            for frame, faces in zip(batch, scorer.detector(batch)):
                crops += [crop_face(frame, f, cfg.FACE_MARGIN)
                          for f in keep_faces(faces, cfg.MULTI_FACE_MIN_CONFIDENCE)]
        detect += time.perf_counter() - started
        started = time.perf_counter()
        scorer.predict_p_real(crops)
        model += time.perf_counter() - started
    return decode / len(clips), detect / len(clips), model / len(clips)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (median shown)")
    args = parser.parse_args()
    sample = os.environ.get("DFDC_SAMPLE_DIR")
    if not sample:
        sys.exit("set DFDC_SAMPLE_DIR to the dfdc_sample folder (two 10-s 1080p DFDC clips)")
    clips = sorted((Path(sample) / "videos").glob("*.mp4"))[:2]
    if len(clips) < 2:
        sys.exit(f"need two .mp4 clips in {Path(sample) / 'videos'}")
    print(f"machine: {os.cpu_count()} CPU cores, no GPU; clips: {', '.join(c.name for c in clips)}")

    with tempfile.TemporaryDirectory(prefix="bench04-") as work:
        work = Path(work)
        model_path = build_model(work / "runs" / "bench" / "model.keras")
        config = work / "config.py"
        config.write_text(f"RUNS_DIR = Path({str(work / 'runs')!r})\n")

        one_clip, two_clips, second_clip = [], [], []
        for _ in range(args.repeats):
            one_clip.append(time_command(config, clips[:1], work / "one.json")[0])
            wall, per_clip = time_command(config, clips, work / "two.json")
            two_clips.append(wall)
            second_clip.append(per_clip[1])
        print(f"cold, 1 clip:    {statistics.median(one_clip):5.1f} s wall, start-up included (target < 15 s)")
        print(f"cold, 2 clips:   {statistics.median(two_clips):5.1f} s wall; the second clip's own time "
              f"{statistics.median(second_clip):.2f} s (target < 3 s)")

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from deepfake_detect.inference.results import SCORED
        from deepfake_detect.inference.scoring import Scorer
        from deepfake_detect.settings import load_config

        cfg = load_config(config)
        started = time.perf_counter()
        scorer = Scorer(model_path)
        print(f"start-up:        {time.perf_counter() - started:5.1f} s to import TensorFlow and load the model "
              f"and MTCNN (once per command or web server)")
        list(scorer.score_files(clips, cfg))  # warm-up: first MTCNN call on this frame size
        warm, single, parts = [], [], []
        for _ in range(args.repeats):  # measured back to back, so all see the same machine load
            for read_ahead, times in ((True, warm), (False, single)):
                started = time.perf_counter()
                results = list(scorer.score_files(clips * WARM_PASSES, cfg, read_ahead=read_ahead))
                times.append((time.perf_counter() - started) / len(results))
                assert all(r.status == SCORED for r in results), [r.reason for r in results]
            parts.append(time_parts(clips, cfg, scorer))
        decode, detect, model = (statistics.median(p[i] for p in parts) for i in range(3))
        ratios = [b / a for a, b in zip(warm, single)]
        print(f"warm, per clip:  {statistics.median(warm):5.2f} s with read-ahead, {statistics.median(single):.2f} s "
              f"without (x{statistics.median(ratios):.2f}; each pair: {', '.join(f'x{r:.2f}' for r in ratios)}); "
              f"{sum(len(r.faces) for r in results) / len(results):.0f} faces in "
              f"{len(results[0].frame_indices)} frames per clip, {len(results)} clips per call")
        print(f"parts, per clip: decode {decode:.2f} s + MTCNN {detect:.2f} s + model {model:.2f} s")


if __name__ == "__main__":
    main()
