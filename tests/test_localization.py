"""Stage 05's temporal localization of fake segments (metrics.localization_*) on a case checked by
hand, and its plumbing from metadata's `fake_periods` to the video table's metrics.

    .venv/bin/pytest tests/test_localization.py
"""

import json

import pytest

from deepfake_detect.datasets.discovery import videos_from_metadata
from deepfake_detect.evaluation.scores import PER_VIDEO_COLUMNS, as_table, localization_of, parse_spans, periods_text
from deepfake_detect.metrics import localization_ap, localization_ar, localization_metrics, temporal_iou

# Three videos: v1 swapped from 4 s to 10 s, v2 from 0 s to 5 s, v3 real. Predictions (start, end,
# P(fake), person), ranked by P(fake): v1's (IoU 5.5/6.5 = 0.846, a hit at 0.5 and 0.75), v3's
# (a false alarm: v3 has nothing to find), v2's (IoU 3/5 = 0.6: a hit at 0.5 only).
TRUTHS = {"v1": [(4.0, 10.0)], "v2": [(0.0, 5.0)], "v3": []}
PREDICTIONS = {"v1": [(3.5, 9.5, 0.9, 1)], "v3": [(1.0, 3.0, 0.85, 1)], "v2": [(0.0, 3.0, 0.8, 1)]}


def test_temporal_iou():
    assert temporal_iou((4, 10), (3.5, 9.5)) == pytest.approx(5.5 / 6.5)
    assert temporal_iou((0, 1), (2, 3)) == 0.0


def test_ap_at_05_and_075_by_hand():
    # IoU 0.5: hit, miss, hit -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1. Interpolated, the
    # precision at recall 1/2 is max(1, 1/2, 2/3) = 1, at recall 1 it is 2/3:
    # AP = 1/2 * 1 + 1/2 * 2/3 = 0.8333.
    assert localization_ap(PREDICTIONS, TRUTHS, 0.5) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # IoU 0.75: only v1's prediction hits: AP = 1/2 * 1.
    assert localization_ap(PREDICTIONS, TRUTHS, 0.75) == pytest.approx(0.5)


def test_ar_at_10_by_hand():
    # Of the IoUs 0.50, 0.55, ..., 0.95: v1's 0.846 passes 7, v2's 0.6 passes 3; AR = (7 + 3) / 20.
    assert localization_ar(PREDICTIONS, TRUTHS) == pytest.approx(0.5)


def test_a_period_naming_its_person_matches_only_that_persons_segment():
    truths = {"v1": [(4.0, 10.0, 2)]}
    assert localization_ap({"v1": [(3.5, 9.5, 0.9, 1)]}, truths, 0.5) == 0.0
    assert localization_ap({"v1": [(3.5, 9.5, 0.9, 2)]}, truths, 0.5) == 1.0
    assert localization_metrics({}, {}) is None


def test_fake_periods_from_metadata_to_the_localization_of_a_video_table(tmp_path):
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (tmp_path / name).write_bytes(b"x")
    metadata = {"a.mp4": {"label": "FAKE", "fake_periods": [[4, 10]]},
                "b.mp4": {"label": "FAKE", "fake_periods": [[0, 5, 2]]}, "c.mp4": {"label": "REAL"}}
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    videos, problems = videos_from_metadata(tmp_path, tmp_path / "metadata.json", (".mp4",))
    assert problems == [] and [v.fake_periods for v in videos] == [((4, 10),), ((0, 5, 2),), None]
    assert [periods_text(v.fake_periods) for v in videos] == ["4-10", "0-5@2", None]
    assert parse_spans("0-5@2") == [(0.0, 5.0, 2)] and parse_spans("2:3.5-9.5:0.900") == [(3.5, 9.5, 0.9, 2)]
    rows = [{"video": "a", "label": "FAKE", "p_real": 0.1, "segments": "1:3.5-9.5:0.900", "fake_periods": "4-10"},
            {"video": "b", "label": "FAKE", "p_real": 0.2, "segments": "2:0.0-3.0:0.800", "fake_periods": "0-5@2"},
            {"video": "c", "label": "REAL", "p_real": 0.9, "segments": "1:1.0-3.0:0.850", "fake_periods": None}]
    found = localization_of(as_table(rows, PER_VIDEO_COLUMNS))
    assert found["videos"] == 3 and found["fake_periods"] == 2  # c: REAL, taken as known to have none
    assert found["ap_0.5"] == pytest.approx(0.5 + 0.5 * 2 / 3) and found["ap_0.75"] == pytest.approx(0.5)
