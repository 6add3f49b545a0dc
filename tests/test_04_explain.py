"""Stage 04's explanations: Grad-CAM heatmaps per face (explain.py) and the P(fake) timeline of
a video (timeline.py), through the Scorer and the command line (--explain, --annotate).

    .venv/bin/pytest tests/test_04_explain.py

A tiny EfficientNet-B0 at 64 px (weights=None, fixed seed) with its last layer rescaled so its
scores differ from face to face (test_03_export.spread_model); MTCNN finds the real portraits.
"""

import importlib
import json
import re

import cv2
import numpy as np
import pytest

from deepfake_detect.inference import explain
from deepfake_detect.inference import timeline
from deepfake_detect.inference.scoring import Scorer
from deepfake_detect.faces.crops import expand_box
from deepfake_detect.faces.detector import Face
from deepfake_detect.settings import load_config
from conftest import write_config, write_frames_video
from test_03_export import build_spread_model, parity_crops
from test_04_detect import write_media

stage04 = importlib.import_module("04-detect_deepfakes")


def write_gap_video(path, portrait_rgb, fps=10):
    """A 3-s video: a portrait for 1 s, a blank wall for 1 s, the portrait again (kept frames
    0, 10, 20 at one per second; frame 10 has no face)."""
    frame = cv2.cvtColor(portrait_rgb, cv2.COLOR_RGB2BGR)
    wall = np.full_like(frame, 128)
    return write_frames_video(path, (wall if fps <= index < 2 * fps else np.roll(frame, index, axis=1)
                                     for index in range(3 * fps)), fps)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from deepfake_detect.sample import portrait_images

    root = tmp_path_factory.mktemp("explain")
    model = build_spread_model(root / "runs" / "tiny" / "model.keras", parity_crops())
    media = write_media(root / "media")
    media["gap.mp4"] = write_gap_video(root / "media" / "gap.mp4", portrait_images()["astronaut"])
    config = write_config(root / "config.py", RUNS_DIR=root / "runs")
    return {"root": root, "model": model, "media": media, "config": config, "cfg": load_config(config)}


@pytest.fixture(scope="module")
def scorer(workspace):
    return Scorer(workspace["model"])


# ------------------------------------------------------------------ Grad-CAM

def test_last_conv_layer_is_found_by_structure(scorer):
    backbone, index = explain.find_last_conv(scorer.model)
    assert backbone is scorer.model.layers[0]
    assert backbone.layers[index].name == "top_activation"  # found, not named: B0's last 4-D layer
    assert all(len(layer.output.shape) == 2 for layer in backbone.layers[index + 1:])


def test_grad_cam_on_the_largest_backbone():
    from deepfake_detect.models.network import build_model

    model = build_model("EfficientNetB7", input_size=64, weights=None)
    cam = explain.GradCam(model, batch_size=2)
    assert cam.layer_name == "top_activation"
    batch = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    p_real, heatmaps = cam.explain(batch)
    np.testing.assert_allclose(p_real, model.predict_on_batch(batch).reshape(-1), atol=1e-5)
    assert heatmaps[0].shape == (2, 2)


def test_explain_gives_the_same_scores_and_a_heatmap_per_face(scorer, workspace):
    cfg = workspace["cfg"]
    plain = scorer.score_file(workspace["media"]["astronaut.mp4"], cfg)
    explained = scorer.score_file(workspace["media"]["astronaut.mp4"], cfg, explain=True)
    assert len(explained.faces) == len(plain.faces) >= 2
    for face, reference in zip(explained.faces, plain.faces):
        assert face.p_real == pytest.approx(reference.p_real, abs=1e-5)
        assert reference.heatmap is None
        heatmap = face.heatmap
        assert heatmap.shape == (2, 2)  # 64 px / 32
        assert heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)
        assert heatmap.max() - heatmap.min() > 0.1  # not a constant map


def test_overlay_changes_the_crop_by_its_heatmap(scorer, workspace):
    face = scorer.score_file(workspace["media"]["hopper.jpg"], workspace["cfg"], explain=True).faces[0]
    overlay = explain.overlay_heatmap(face.crop, face.heatmap)
    assert overlay.shape == face.crop.shape and overlay.dtype == np.uint8
    change = np.abs(overlay.astype(int) - face.crop.astype(int)).sum(axis=2)
    assert change.mean() > 10
    # hot and cold cells are painted in different colours: red where the map is 1, blue where it is 0
    stretched = cv2.resize(face.heatmap, face.crop.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    hot, cold = stretched > 0.9, stretched < 0.1
    assert hot.any() and cold.any()
    red_minus_blue = overlay[..., 0].astype(int) - overlay[..., 2].astype(int) \
        - (face.crop[..., 0].astype(int) - face.crop[..., 2].astype(int))
    assert red_minus_blue[hot].mean() > red_minus_blue[cold].mean() + 50


def test_annotated_image_differs_only_where_the_face_is(scorer, workspace, tmp_path):
    config, image = str(workspace["config"]), workspace["media"]["astronaut.png"]
    assert stage04.main(["--config", config, str(image), "--annotate", str(tmp_path / "plain")], scorer=scorer) == 0
    assert stage04.main(["--config", config, str(image), "--annotate", str(tmp_path / "explained"),
                         "--explain"], scorer=scorer) == 0
    plain = cv2.imread(str(tmp_path / "plain" / "astronaut-annotated.png")).astype(int)
    explained = cv2.imread(str(tmp_path / "explained" / "astronaut-annotated.png")).astype(int)
    faces = scorer.score_file(image, workspace["cfg"]).faces
    inside = np.zeros(plain.shape[:2], bool)
    for face in faces:
        x1, y1, x2, y2 = expand_box(Face(*face.box), workspace["cfg"].FACE_MARGIN, plain.shape[1], plain.shape[0])
        inside[y1:y2, x1:x2] = True
    difference = np.abs(plain - explained).sum(axis=2)
    assert difference[inside].mean() > 10     # the heatmap is painted over the face crop
    assert difference[~inside].max() == 0     # and nowhere else


def test_details_and_json_carry_the_heatmaps(scorer, workspace, tmp_path, capsys):
    out = tmp_path / "scores.json"
    status = stage04.main(["--config", str(workspace["config"]), str(workspace["media"]["hopper.jpg"]),
                           "--details", "--explain", "--json", str(out)], scorer=scorer)
    assert status == 0
    assert re.search(r"Grad-CAM peak at \d+%,\d+% \(x,y\) of the crop", capsys.readouterr().out)
    record = json.loads(out.read_text())["inputs"][0]
    faces = record["face_scores"]
    assert len(faces) == record["faces"] >= 1
    assert faces[0]["overlay"].startswith("data:image/jpeg;base64,")
    assert np.max(faces[0]["heatmap"]) == pytest.approx(1.0)
    assert 0 < faces[0]["heatmap_peak_x"] < 1 and 0 < faces[0]["heatmap_peak_y"] < 1


# ------------------------------------------------------------------ timeline

def read_svg_points(svg):
    """[(x, y)] of the SVG polyline of scores."""
    points = re.search(r'<polyline class="scores" points="([^"]+)"', svg).group(1)
    return [tuple(map(float, point.split(","))) for point in points.split()]


def test_timeline_svg_points_read_back_as_the_frame_scores(scorer, workspace):
    cfg = workspace["cfg"]
    result = scorer.score_file(workspace["media"]["gap.mp4"], cfg)
    assert result.frame_indices == [0, 10, 20]
    series = timeline.frame_series(result)
    assert [frame for frame, p in series if p is None] == [10]
    svg = timeline.timeline_svg(series, cfg.THRESHOLD)
    points = read_svg_points(svg)
    scored = [(frame, p) for frame, p in series if p is not None]
    assert len(points) == len(scored) == 2
    for (x, y), (frame, p_fake) in zip(points, scored):
        expected = np.mean([f.p_fake for f in result.faces if f.frame == frame])
        assert 1 - (y - timeline.TOP) / timeline.PLOT_HEIGHT == pytest.approx(expected, abs=0.01)
        assert x == pytest.approx(timeline.LEFT + frame / 20 * timeline.PLOT_WIDTH, abs=0.01)
    assert re.findall(r'class="no-face" data-frame="(\d+)"', svg) == ["10"]
    threshold_y = float(re.search(r'<line class="threshold" x1="[^"]+" y1="([^"]+)"', svg).group(1))
    assert 1 - (threshold_y - timeline.TOP) / timeline.PLOT_HEIGHT == pytest.approx(1 - cfg.THRESHOLD, abs=0.01)
    assert "<script" not in svg and "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_annotate_writes_the_timeline_png_of_a_video(scorer, workspace, tmp_path):
    status = stage04.main(["--config", str(workspace["config"]), str(workspace["media"]["gap.mp4"]),
                           "--annotate", str(tmp_path)], scorer=scorer)
    assert status == 0
    image = cv2.imread(str(tmp_path / "gap-timeline.png"))
    assert image is not None and image.shape[1] > 400 and image.std() > 10
    assert (tmp_path / "gap-annotated.mp4").is_file()
    assert not (tmp_path / "astronaut-timeline.png").exists()


def test_progress_reports_every_frame_read(scorer, workspace):
    seen = []
    result = scorer.score_file(workspace["media"]["gap.mp4"], workspace["cfg"], progress=seen.append)
    assert seen == [1, 2, 3] and len(result.frame_indices) == 3
