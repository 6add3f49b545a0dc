"""The Python API (deepfake_detect.api.Detector): the README's example run as written, scores of
arrays and paths, and a light `import deepfake_detect`.

    .venv/bin/pytest tests/test_api.py

The README's example is the first ```python block after the line `<!-- python-api-example -->`;
it runs in a temporary folder holding `runs/sample/model.keras` (a tiny EfficientNet-B0 built
fresh, weights=None) and `clip.mp4` (a real portrait, panning for 2 s).
"""

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_detect.inference.results import IMAGE, NOT_FOUND, SCORED
from test_04_detect import build_test_model, write_media, write_portrait_video

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_MARKER = "<!-- python-api-example -->"


def readme_example(readme):
    """The code of the first ```python block after EXAMPLE_MARKER in `readme`; fails the test
    (not skips it) when there is none, since the README must show a working example."""
    text = Path(readme).read_text(encoding="utf-8")
    if EXAMPLE_MARKER not in text:
        pytest.fail(f"{readme} has no line {EXAMPLE_MARKER} followed by a ```python block: "
                    f"the Python API example is missing from the README")
    block = re.search(r"```python\n(.*?)```", text.split(EXAMPLE_MARKER, 1)[1], re.S)
    if block is None:
        pytest.fail(f"{readme}: no ```python block after {EXAMPLE_MARKER}")
    return block.group(1)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from deepfake_detect.sample import portrait_images

    root = tmp_path_factory.mktemp("api")
    build_test_model(root / "runs" / "sample" / "model.keras")
    write_portrait_video(root / "clip.mp4", portrait_images()["astronaut"])
    return {"root": root, "media": write_media(root / "media")}


@pytest.fixture(scope="module")
def detector(workspace):
    from deepfake_detect import Detector

    return Detector.load(workspace["root"] / "runs" / "sample")


def test_the_readme_example_runs_as_written(workspace, monkeypatch, capsys):
    code = readme_example(REPO / "README.md")
    monkeypatch.chdir(workspace["root"])
    exec(compile(code, "README.md example", "exec"), {"__name__": "readme_example"})
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"(REAL|FAKE|UNCERTAIN) P\(fake\) [01]\.\d{3}", lines[0]), lines
    assert len(lines) == 3  # 2 s at 10 fps: frames 0 and 10 kept, one face each
    for line, frame in zip(lines[1:], (0, 10)):
        assert re.fullmatch(rf"{frame} \(\d+, \d+, \d+, \d+\) P\(fake\) [01]\.\d{{3}}", line), line


def test_an_array_scores_as_its_image_file(detector, workspace):
    path = workspace["media"]["hopper.jpg"]
    from_file = detector.score(path)
    image_rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    from_array = detector.score(image_rgb)
    assert from_array.status == from_file.status == SCORED and from_array.kind == IMAGE
    assert from_array.p_real == pytest.approx(from_file.p_real, abs=1e-6)
    assert [f.box for f in from_array.faces] == [f.box for f in from_file.faces]
    assert from_array.verdict == from_file.verdict and from_array.p_fake == pytest.approx(1 - from_array.p_real)


def test_an_array_of_another_shape_or_type_is_refused(detector):
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.score(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.score(np.zeros((64, 64, 3), np.float32))


def test_score_many_gives_a_result_per_path_in_order(detector, workspace):
    media = workspace["media"]
    paths = [media["astronaut.png"], workspace["root"] / "missing.png", media["plain.png"]]
    results = list(detector.score_many(paths))
    assert [r.status for r in results] == [SCORED, NOT_FOUND, "no face"]
    assert results[0].p_real == pytest.approx(detector.score(paths[0]).p_real, abs=1e-6)


def test_importing_the_package_loads_neither_tensorflow_nor_flask():
    code = ("import sys, deepfake_detect\n"
            "print([m for m in ('tensorflow', 'keras', 'flask') if m in sys.modules])\n"
            "print(deepfake_detect.Detector.__module__)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "deepfake_detect.api"]
    with pytest.raises(AttributeError, match="no attribute 'Detecter'"):
        import deepfake_detect

        deepfake_detect.Detecter


def test_pip_install_gives_the_package_its_template_and_default_config(tmp_path):
    """`pip install .` (here: a wheel built from a copy of the checkout, installed under a prefix)
    carries the web page's template and config.py, so settings load with no checkout around."""
    import shutil

    source = tmp_path / "source"
    shutil.copytree(REPO / "deepfake_detect", source / "deepfake_detect",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "config.py"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(pip + ["wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheel"),
                          str(source)], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "wheel").glob("deepfake_detect-*.whl"))
    subprocess.run(pip + ["install", "--quiet", "--no-deps", "--prefix", str(tmp_path / "prefix"), str(wheel)],
                   check=True, cwd=tmp_path)
    site = next((tmp_path / "prefix").glob("lib*/python3*/site-packages"), None) or tmp_path / "prefix/Lib/site-packages"
    probe = ("import deepfake_detect.settings as s, deepfake_detect.inference as i, pathlib\n"
             "cfg = s.load_config()\n"
             "print(pathlib.Path(s.__file__).parent.parent, cfg.CONFIG_FILE.name, cfg.INPUT_SIZE,\n"
             "      (pathlib.Path(i.__file__).parent / 'templates' / 'index.html').is_file())")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(site), "PATH": ""})
    assert done.returncode == 0, done.stderr
    installed_at, config_name, input_size, has_template = done.stdout.split()
    assert Path(installed_at).resolve() == site.resolve()  # the installed copy, not this checkout
    assert (config_name, input_size, has_template) == ("config.py", "128", "True")
    # Every subpackage (media/, faces/, models/, training/, ...) is in the wheel, with its modules.
    packages = sorted(init.parent.name for init in (REPO / "deepfake_detect").glob("*/__init__.py"))
    missing = [f"{name}/{module.name}" for name in packages for module in (REPO / "deepfake_detect" / name).glob("*.py")
               if not (site / "deepfake_detect" / name / module.name).is_file()]
    assert {"media", "faces", "models", "training", "datasets"} <= set(packages) and not missing, missing
    # ... and the live view's page and script (package data, like the upload page's template)
    assert (site / "deepfake_detect/live/templates/live.html").is_file()
    assert (site / "deepfake_detect/live/static/live.js").is_file()
