"""Stages 00 and 01a on a real two-node Ray cluster on loopback (--ray), against the local pool.

    .venv/bin/pytest tests/test_ray.py          # needs requirements-ray.txt (make test installs it)

The fixture starts a head node and a worker node (its own temp folder, process group and custom
resource `worker_node`), 1 CPU each, on 127.0.0.1 with free ports, and stops both (their process
groups, then anything still running from their temp folders) at the end; it never runs `ray stop`,
which would stop every Ray on the machine. The built-in sample (8 videos of 2 s) goes through
stage 00 and 01a with --ray and must equal the local run byte for byte; then once more while the
worker node is killed as soon as it is building a video's folder; stage 04 scores the sample's
folder with Ray actors and must give the local run's table; stage 05 extracts the same face cache
with Ray actors as with the local pool. Takes about 5 minutes on 2 cores.
"""

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import TRAINING_TIMEOUT_S, folder_contents, write_config
from deepfake_detect.files import PARTIAL_MARK

# Starting a two-node cluster and killing a node mid-run: longer than pytest.ini's limit.
pytestmark = [pytest.mark.ray, pytest.mark.timeout(TRAINING_TIMEOUT_S)]
# Set by `make test`, which has just installed requirements-ray.txt: these tests then import Ray
# for real, so a broken Ray install fails them instead of turning them into silent skips.
REQUIRE_RAY = "DEEPFAKE_DETECT_REQUIRE_RAY"


def ray_import_problem():
    """None when Ray imports; else the error, as one line."""
    try:
        import ray  # noqa: F401
    except Exception as error:  # noqa: BLE001 - a broken install raises more than ImportError
        return f"{type(error).__name__}: {error}"
    return None


@pytest.fixture(autouse=True, scope="module")
def ray_installed():
    """Skips this file's tests without Ray (it is optional), unless REQUIRE_RAY says it must be there."""
    problem = ray_import_problem()
    if problem and os.environ.get(REQUIRE_RAY) == "1":
        pytest.fail(f"{REQUIRE_RAY}=1 (make test installed Ray) but Ray cannot be imported: {problem}")
    if problem:
        pytest.skip(f"Ray is optional: pip install -r requirements-ray.txt (make test does) ({problem})")

REPO_DIR = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).with_name("ray"))
STARTUP_SECONDS = 120


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RayNode:
    """One `ray start --block` in its own process group and temp folder, so it can be killed alone."""

    def __init__(self, arguments, log_path, cpus=1):
        # Short temp folder: Ray's socket paths must stay under 108 characters.
        self.temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [RAY, "start", "--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
             "--num-cpus", str(cpus), "--temp-dir", self.temp_dir,
             "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
             *arguments],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.temp_dir)

    def own_pids(self):
        """Processes of this node: its process group, any process naming its temp folder, and
        their descendants (Ray's workers rename themselves ray::IDLE and may leave the group)."""
        parents, roots = {}, set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            if int(fields[2]) == self.process.pid or self.temp_dir.encode() in command:
                roots.add(pid)
        pids, grew = set(roots), True
        while grew:
            children = {pid for pid, parent in parents.items() if parent in pids} - pids
            pids |= children
            grew = bool(children)
        pids.discard(os.getpid())
        return pids

    def kill(self, sig=signal.SIGKILL):
        for pid in self.own_pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self):
        """Stop every process of this node: SIGTERM, a short grace, then SIGKILL."""
        self.kill(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while self.own_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.kill(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def wait_for_nodes(address, count, resource="worker_node"):
    """Block until `ray status` at `address` lists `count` live nodes (and `resource`, if given)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        status = subprocess.run([RAY, "status", "--address", address], capture_output=True, text=True)
        active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        if status.returncode == 0 and active.count(" node_") >= count and (resource or "") in status.stdout:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} did not come up:\n{status.stdout}{status.stderr}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """{"address", "head", "worker"}: a two-node cluster on loopback, stopped at the end."""
    logs = tmp_path_factory.mktemp("ray-logs")
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = RayNode(["--head", "--port", str(port), "--include-dashboard", "false",
                    "--ray-client-server-port", str(free_port())], logs / "head.log")
    nodes = {"address": address, "head": head, "worker": None}
    try:
        nodes["worker"] = start_worker_node(address, logs / "worker.log")
        wait_for_nodes(address, 2)
        yield nodes
    finally:
        for node in (nodes["worker"], head):
            if node is not None:
                node.stop()


def start_worker_node(address, log_path):
    time.sleep(2)  # the head's GCS must listen first
    return RayNode(["--address", address, "--resources", json.dumps({"worker_node": 1})], log_path)


@pytest.fixture(scope="module")
def sample_videos(tmp_path_factory):
    """The built-in sample, 2 videos per person and kind (8 videos) of 2 s each."""
    folder = tmp_path_factory.mktemp("sample") / "videos"
    subprocess.run([sys.executable, "-m", "deepfake_detect.sample", str(folder), "--videos-per-person", "2",
                    "--seconds", "2"], check=True, cwd=REPO_DIR, capture_output=True)
    return folder


def stage_command(script, config, *extra):
    return [sys.executable, str(REPO_DIR / script), "--config", str(config), *extra]


def run_stage(script, config, *extra):
    result = subprocess.run(stage_command(script, config, *extra), capture_output=True, text=True, cwd=REPO_DIR,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def local_output(sample_videos, tmp_path_factory):
    """Frames and faces of the sample made by the local process pool (the reference)."""
    root = tmp_path_factory.mktemp("local")
    config = write_config(root / "cfg.py", VIDEOS_DIR=sample_videos, OUTPUT_DIR=root / "out", RAY_ADDRESS=None)
    run_stage("00-convert_video_to_image.py", config, "--workers", "2")
    run_stage("01a-crop_faces_with_mtcnn.py", config, "--workers", "1")
    return {"frames": folder_contents(root / "out" / "frames"), "faces": folder_contents(root / "out" / "faces")}


def ray_config(root, sample_videos):
    return write_config(root / "cfg.py", VIDEOS_DIR=sample_videos, OUTPUT_DIR=root / "out", RAY_CPUS_PER_ACTOR=1)


def test_stages_00_and_01a_on_ray_equal_the_local_run(cluster, sample_videos, local_output, tmp_path):
    config = ray_config(tmp_path, sample_videos)
    printed = run_stage("00-convert_video_to_image.py", config, "--ray", cluster["address"])
    assert f"engine=Ray at {cluster['address']}" in printed
    assert "8 videos (8 done)" in printed
    printed = run_stage("01a-crop_faces_with_mtcnn.py", config, "--ray", cluster["address"])
    assert "8 videos (8 done)" in printed
    assert folder_contents(tmp_path / "out" / "frames") == local_output["frames"]
    assert folder_contents(tmp_path / "out" / "faces") == local_output["faces"]
    # A rerun finds everything done and starts no Ray work at all.
    assert "8 videos (8 already done)" in run_stage("00-convert_video_to_image.py", config, "--ray", cluster["address"])


def test_stage_04_over_a_folder_on_ray_equals_the_local_run(cluster, sample_videos, tmp_path):
    from tests.test_04_detect import build_test_model

    model = build_test_model(tmp_path / "model.keras")
    config = ray_config(tmp_path, sample_videos)
    tables = {}
    for engine, extra in (("local", []), ("ray", ["--ray", cluster["address"]])):
        csv_path = tmp_path / f"{engine}.csv"
        result = subprocess.run(stage_command("04-detect_deepfakes.py", config, str(sample_videos), "--run", str(model),
                                              "--csv", str(csv_path), *extra),
                                capture_output=True, text=True, cwd=REPO_DIR, timeout=600)
        assert result.returncode in (0, 1), result.stdout + result.stderr   # 1: some input had no face
        assert "stage 04 finished" in result.stdout and "8 inputs" in result.stdout
        with open(csv_path, newline="") as handle:
            tables[engine] = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]
    assert len(tables["local"]) == 8 and sum(row["status"] == "scored" for row in tables["local"]) >= 6
    assert tables["ray"] == tables["local"]   # the same rows, scores and order


def test_stage_05_extracts_faces_on_ray_as_the_local_pool_does(cluster, sample_videos, tmp_path):
    from tests.test_04_detect import build_test_model

    model = build_test_model(tmp_path / "model.keras")
    caches, tables = {}, {}
    for engine, extra in (("local", ["--workers", "1"]), ("ray", ["--ray", cluster["address"]])):
        root = tmp_path / engine
        config = write_config(tmp_path / f"{engine}.py", VIDEOS_DIR=sample_videos, OUTPUT_DIR=root,
                              EVALS_DIR=root / "evals", RAY_CPUS_PER_ACTOR=1, BOOTSTRAP_SAMPLES=50)
        printed = run_stage("05-evaluate_model.py", config, "--run", str(model), "--dataset",
                            f"sample={sample_videos}", "--name", "e", *extra)
        assert ("engine=Ray at" in printed) == (engine == "ray")
        assert "8 extracted, 0 from the cache" in printed
        caches[engine] = folder_contents(root / "eval_cache")
        tables[engine] = (root / "evals" / "e" / "per_video.csv").read_text(encoding="utf-8")
    assert caches["ray"] and caches["ray"] == caches["local"]   # the same crops, byte for byte
    assert tables["ray"] == tables["local"]


def partial_of_node(folder, node):
    """A partial folder in `folder` being built by a process of `node`, or None."""
    if not folder.is_dir():
        return None
    partials = [path for path in folder.iterdir() if PARTIAL_MARK in path.name]
    if partials:  # only then the slower look at the node's processes
        pids = node.own_pids()
        for path in partials:
            if int(path.name.rsplit("-", 1)[1]) in pids:
                return path
    return None


def run_killing_worker_node(command, watched, node, timeout=300):
    """Run a stage; kill `node` as soon as one of its processes builds a folder in `watched`.
    Returns (stdout, the partial folder it was building when killed)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_DIR)
    killed_during, deadline = None, time.monotonic() + timeout
    while process.poll() is None and killed_during is None and time.monotonic() < deadline:
        killed_during = partial_of_node(watched, node)
        if killed_during:
            node.kill()
        else:
            time.sleep(0.002)
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output, killed_during


def run_until_the_worker_node_dies(script, configs, cluster):
    """Run `script` with --ray on each (config, output folder) in turn until the worker node was
    killed while building a video there (a run in which it got no video proves nothing);
    returns (stdout, that output folder)."""
    outputs = []
    for config, watched in configs:
        output, killed_during = run_killing_worker_node(
            stage_command(script, config, "--ray", cluster["address"]), watched, cluster["worker"])
        if killed_during is not None:
            return output, watched
        outputs.append(output)
    raise AssertionError(f"the worker node never got a video while watched in {len(outputs)} runs:\n{outputs[-1]}")


def every_video_finished(output, count=8):
    """True when the summary counts all `count` videos as done or already done, none skipped or
    failed. A worker killed just after publishing a video's folder makes the retry find it
    finished: "8 videos (7 done, 1 already done)" is as right as "8 videos (8 done)"."""
    match = re.search(rf"{count} videos \((\d+) done(?:, (\d+) already done)?\)", output)
    return bool(match) and int(match[1]) + int(match[2] or 0) == count


def test_a_worker_node_dying_mid_run_changes_nothing(cluster, sample_videos, local_output, tmp_path):
    attempts = range(3)
    output, frames = run_until_the_worker_node_dies("00-convert_video_to_image.py", [
        (write_config(tmp_path / f"cfg00-{n}.py", VIDEOS_DIR=sample_videos, OUTPUT_DIR=tmp_path / f"out{n}"),
         tmp_path / f"out{n}" / "frames") for n in attempts], cluster)
    assert every_video_finished(output), output
    assert folder_contents(frames) == local_output["frames"]

    # The same for 01a's actors: a new worker node joins, and dies while cropping a video.
    cluster["worker"].stop()
    cluster["worker"] = start_worker_node(cluster["address"], tmp_path / "worker2.log")
    wait_for_nodes(cluster["address"], 2)
    output, faces = run_until_the_worker_node_dies("01a-crop_faces_with_mtcnn.py", [
        (write_config(tmp_path / f"cfg01a-{n}.py", FRAMES_DIR=frames, FACES_DIR=tmp_path / f"faces{n}",
                      OUTPUT_DIR=tmp_path / "out", RAY_CPUS_PER_ACTOR=1), tmp_path / f"faces{n}") for n in attempts],
        cluster)
    assert every_video_finished(output), output
    assert folder_contents(faces) == local_output["faces"]


# ------------------------------------------------------------------ without a cluster

def test_ray_flag_picks_the_address_and_the_default_stays_local(tmp_path, monkeypatch):
    from deepfake_detect import arguments, settings

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert arguments.apply_ray_flag(settings.load_config(), None).RAY_ADDRESS is None
    assert arguments.apply_ray_flag(settings.load_config(), "").RAY_ADDRESS == "auto"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    assert arguments.apply_ray_flag(settings.load_config(), None).RAY_ADDRESS == "10.0.0.9:6379"
    assert arguments.apply_ray_flag(settings.load_config(), "10.0.0.5:6379").RAY_ADDRESS == "10.0.0.5:6379"
    config = write_config(tmp_path / "cfg.py", RAY_ADDRESS="ray://head:10001")
    cfg = arguments.apply_ray_flag(settings.load_config(config), "")
    assert cfg.RAY_ADDRESS == "ray://head:10001"
    assert settings.describe_engine(cfg, 4) == "engine=Ray at ray://head:10001"
    with pytest.raises(settings.ConfigError, match="RAY_MAX_RETRIES"):
        settings.load_config(write_config(tmp_path / "bad.py", RAY_MAX_RETRIES=-1))


def test_actors_fit_each_node_and_follow_the_gpus():
    from deepfake_detect.jobs.ray_cluster import actor_slots

    assert actor_slots([{"CPU": 8.0}, {"CPU": 2.0}], 4, 1) == (2, False)         # the 2-CPU node fits none
    assert actor_slots([{"CPU": 16.0, "GPU": 2.0}, {"CPU": 8.0}], 4, 1) == (2, True)
    assert actor_slots([{"CPU": 16.0, "GPU": 1.0}], 4, 0.5) == (2, True)          # two actors share a GPU
    assert actor_slots([{"CPU": 1.0}], 4, 1) == (0, False)


def test_a_retry_clears_the_partial_folder_of_the_attempt_that_died(tmp_path):
    from deepfake_detect.files import finish_partial_folder, start_partial_folder

    # A Ray retry on the same host after the attempt's process died (pid gone): provably stale.
    attempt = subprocess.Popen([sys.executable, "-c", "pass"])
    attempt.wait()
    dead = tmp_path / f".clip{PARTIAL_MARK}{socket.gethostname()}-{attempt.pid}"
    dead.mkdir()
    (dead / "clip-000.png").write_bytes(b"half")
    partial = start_partial_folder(tmp_path / "clip")
    assert partial.name == f".clip{PARTIAL_MARK}{socket.gethostname()}-{os.getpid()}"
    assert not dead.exists()
    (partial / "clip-000.png").write_bytes(b"whole")
    assert finish_partial_folder(partial, tmp_path / "clip")
    assert [p.name for p in tmp_path.iterdir()] == ["clip"]
