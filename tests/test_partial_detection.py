"""The demo's trained model on the partly manipulated sample (sample.make_partial_sample): stage
04 finds the swapped person and the swapped span.

    .venv/bin/pytest tests/test_partial_detection.py

The model is `make demo`'s (runs/sample/model.keras, or the run folder in DEMO_RUN) when it
exists; otherwise the fixture trains one exactly as `make demo` does (the sample, stages 00,
01a, 02 and 03 with configs/sample.py, into a temporary folder): about 4 minutes on an idle
2-core CPU. The learning test's run (test_learning.py) cannot stand in: it is trained on crops
cut from the portraits, not on MTCNN's crops of filmed takes, and reads a swapped face in a
video as real (P(real) 0.75, measured). With the demo's model: in each two-person video only
the swapped person is flagged and the video is FAKE under "person_max"; each spliced take reads
FAKE with a segment starting within a second of the swap, and the screenshot's take's flagged
time has IoU >= 0.5 with the true fake period.
"""

import importlib
import json
import os
from pathlib import Path

import pytest

from deepfake_detect.inference.scoring import Scorer
from deepfake_detect.inference.verdicts import verdict_of
from deepfake_detect.sample import make_partial_sample, make_sample
from deepfake_detect.settings import load_config
from tests.conftest import TRAINING_TIMEOUT_S, write_config

pytestmark = pytest.mark.timeout(TRAINING_TIMEOUT_S)  # trains a model: longer than pytest.ini's limit

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = ROOT / "configs" / "sample.py"


def train_demo_model(root):
    """Train the demo's model into `root` as `make demo` does; return its model.keras."""
    videos = root / "videos"
    make_sample(videos)
    config = write_config(root / "demo.py", VIDEOS_DIR=videos, OUTPUT_DIR=root, RUNS_DIR=root / "runs")
    config.write_text(SAMPLE_CONFIG.read_text() + "\n" + config.read_text())  # the demo's recipe, then folders
    for script, extra in (("00-convert_video_to_image", []), ("01a-crop_faces_with_mtcnn", []),
                          ("02-prepare_fake_real_dataset", ["--replace"]), ("03-train_cnn", ["--overwrite"])):
        assert importlib.import_module(script).main(["--config", str(config), *extra]) == 0, script
    return root / "runs" / "sample" / "model.keras"


@pytest.fixture(scope="module")
def partial_results(tmp_path_factory):
    """({video name: Result}, metadata) of the partial sample scored by the demo's model."""
    run = Path(os.environ.get("DEMO_RUN", ROOT / "runs" / "sample"))
    model = run / "model.keras"
    if not model.is_file():
        model = train_demo_model(tmp_path_factory.mktemp("demo"))
    folder = tmp_path_factory.mktemp("partial")
    metadata = make_partial_sample(folder)
    names = sorted(metadata)
    results = Scorer(model).score_files([folder / name for name in names], load_config(SAMPLE_CONFIG))
    return dict(zip(names, results)), json.loads((folder / "metadata.json").read_text())


def test_two_person_video_flags_only_the_swapped_person(partial_results):
    results, metadata = partial_results
    for name in ("two-people-1.mp4", "two-people-2.mp4"):
        result = results[name]
        [[_, _, swapped]] = metadata[name]["fake_periods"]
        assert [p.person for p in result.persons] == [1, 2], (name, result.persons)
        verdicts = {p.person: p.verdict for p in result.persons}
        assert verdicts[swapped] == "FAKE" and verdicts[3 - swapped] != "FAKE", (name, result.persons)
        assert verdict_of(result.p_real_by_rule["person_max"], 0.5, 0.1) == "FAKE", (name, result.p_real_by_rule)
        # Where in time the swapped person is caught varies between training runs (a 2.6-s and a
        # 4.9-s segment seen for the same 5-s video), so only who is caught is held here.
        assert {s.person for s in result.segments} == {swapped}, (name, result.segments)
    real = results["two-people-3.mp4"]
    assert len(real.persons) == 2 and real.segments == [] and real.verdict == "REAL", real.persons


def test_spliced_take_segment_overlaps_the_true_fake_period(partial_results):
    """The screenshot's case (a real take, then its swapped twin from 5 s on): the time flagged
    fake (all its segments together) has IoU >= 0.5 with the true period, and a segment starts
    within a second of it (as the issue asks). A demo model may also raise a short false segment
    on the real part (0-1.6 s seen with packages of 2026-12; the union's IoU was then 0.74), so
    the segments are not held to one.
    The other spliced take (swapped from 4 s) must read FAKE under "segment" with a segment that
    starts within a second of the truth; how much of its span the demo's two-identity model
    follows varies between training runs (IoU 0.30 and 1.0 seen), so it is not held to 0.5."""
    results, metadata = partial_results
    name = "spliced-astronaut.mp4"
    [truth] = metadata[name]["fake_periods"]
    segments = results[name].segments
    flagged = sum(s.end - s.start for s in segments)
    inside = sum(max(0.0, min(s.end, truth[1]) - max(s.start, truth[0])) for s in segments)
    union = flagged + (truth[1] - truth[0]) - inside
    assert inside / union >= 0.5, (name, segments, truth)
    for name in ("spliced-astronaut.mp4", "spliced-hopper.mp4"):
        [truth] = metadata[name]["fake_periods"]
        assert any(abs(s.start - truth[0]) <= 1.0 for s in results[name].segments), (name, results[name].segments)
        assert results[name].p_real_by_rule["segment"] < 0.5 and results[name].persons[0].person == 1
