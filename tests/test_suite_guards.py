"""The test suite guards itself (issue 24, item 12): no test can hang CI, `make test` prints the
slowest tests, and the Ray tests fail rather than skip when `make test` installed Ray.

    .venv/bin/pytest tests/test_suite_guards.py

Each check runs pytest itself in a subprocess on a small test file or on tests/test_ray.py with a
broken `ray` package in front of the real one. About 20 s.
"""

import configparser
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_pytest(args, cwd, env=None, timeout=240):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def test_every_test_has_a_time_limit_and_a_hung_one_fails(tmp_path):
    ini = configparser.ConfigParser()
    ini.read(REPO / "pytest.ini")
    assert 0 < int(ini["pytest"]["timeout"]) <= 600  # a hung test costs at most 10 minutes
    assert "pytest-timeout" in (REPO / "requirements-test.txt").read_text()
    # The plugin really stops a hung test (limit lowered here so as not to wait 10 minutes).
    (tmp_path / "test_hangs.py").write_text("import time\n\ndef test_hangs():\n    time.sleep(600)\n\n"
                                            "def test_next():\n    pass\n")
    result = run_pytest(["-c", str(REPO / "pytest.ini"), "--rootdir", str(tmp_path), "-o", "timeout=3",
                         "-o", "testpaths=.", "test_hangs.py"], cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "Timeout" in result.stdout and "1 failed, 1 passed" in result.stdout, result.stdout[-2000:]


def test_make_test_prints_the_slowest_tests_and_requires_ray():
    recipe = (REPO / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "--durations=25" in recipe and "DEEPFAKE_DETECT_REQUIRE_RAY=1" in recipe
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_a_broken_ray_fails_the_ray_tests_under_make_test_and_skips_them_otherwise(tmp_path):
    broken = tmp_path / "shadow" / "ray"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('ray is broken here on purpose')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "shadow"), str(REPO)])}
    args = ["tests/test_ray.py", "-k", "actors_fit", "-q"]

    required = run_pytest(args, REPO, {**env, "DEEPFAKE_DETECT_REQUIRE_RAY": "1"})
    assert required.returncode != 0 and "skipped" not in required.stdout, required.stdout[-2000:]
    assert "Ray cannot be imported: ImportError: ray is broken here on purpose" in required.stdout

    optional = run_pytest(args, REPO, {**env, "DEEPFAKE_DETECT_REQUIRE_RAY": ""})
    assert optional.returncode == 0 and "1 skipped" in optional.stdout, optional.stdout[-2000:]
