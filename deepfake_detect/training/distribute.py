"""Where stage 03 trains: the machines of a multi-worker run (named in TF_CONFIG), each machine's
share of the crops, and the tf.distribute strategy over this machine's devices.

A multi-worker run is watched from outside TensorFlow: each machine's stage 03 supervises a child
process that trains (supervise), so SIGTERM or Ctrl+C stop it at any point, even while TensorFlow
waits on a peer, and a child whose peer was lost is started again to resume from the last
finished epoch. The supervisor gives the child's peers CLUSTER_TIMEOUT_S seconds to come up.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from deepfake_detect.models.devices import configure_tensorflow

# Exit status of a training child whose cluster broke (a peer died or restarted): its supervisor
# starts it again, and it resumes from the last epoch every machine finished.
RESTART_STATUS = 75
# Restarts of the training child in a row (with no epoch finished in between) before its
# supervisor gives up; an epoch finished since the last start begins the count again.
MAX_RESTARTS = 5
# Set in the training child's environment, so that 03-train_cnn.py trains instead of supervising.
CHILD_VARIABLE = "DEEPFAKE_DETECT_TRAINING_CHILD"
# Bytes of gradients per all-reduce between machines (EfficientNet-B0's are 17 MB in float32).
PACK_BYTES = 32 * 1024 * 1024
# Set in the training child's environment: the file it creates once the cluster formed.
FORMED_VARIABLE = "DEEPFAKE_DETECT_CLUSTER_FORMED"
# Seconds a stopping child gets after SIGTERM before it is killed.
STOP_GRACE_S = 5


class ClusterError(ValueError):
    """TF_CONFIG cannot describe a cluster, or the cluster did not form; the message says why."""


def parse_tf_config(text):
    """TF_CONFIG (JSON) -> {"cluster": {job: ["host:port"]}, "task": {"type", "index"}}, checked;
    None when unset. Raises ClusterError naming what is wrong."""
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterError(f"TF_CONFIG is not JSON ({error})") from None
    cluster, task = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    if not isinstance(cluster, dict) or not cluster:
        raise ClusterError('TF_CONFIG has no "cluster": give {"cluster": {"worker": ["host:port", ...]}, '
                           '"task": {"type": "worker", "index": 0}}')
    for job, addresses in cluster.items():
        if job not in ("chief", "worker"):
            raise ClusterError(f'TF_CONFIG cluster job "{job}": stage 03 trains with "chief" and "worker" only')
        if not isinstance(addresses, list) or not addresses:
            raise ClusterError(f'TF_CONFIG cluster "{job}" must be a non-empty list of "host:port"')
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ClusterError(f'TF_CONFIG cluster "{job}": {address!r} is not "host:port"')
    if len(cluster.get("chief", [])) > 1:
        raise ClusterError('TF_CONFIG cluster "chief" names more than one machine')
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ClusterError(f'TF_CONFIG "task" must say which machine this is: {{"type": one of '
                           f'{", ".join(cluster)}, "index": n}}')
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ClusterError(f'TF_CONFIG task index {index!r} is not one of the {len(cluster[task["type"]])} '
                           f'"{task["type"]}" machines (numbered from 0)')
    return {"cluster": cluster, "task": {"type": task["type"], "index": index}}


def peers(tf_config_text):
    """[("worker 1", "host:port")] of the other machines in TF_CONFIG."""
    config = parse_tf_config(tf_config_text)
    task = config["task"]
    return [(f"{job} {index}", address) for job, addresses in config["cluster"].items()
            for index, address in enumerate(addresses) if (job, index) != (task["type"], task["index"])]


def reachable(address, timeout_s=1.0):
    """True when a TCP connection to "host:port" opens within timeout_s."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def cluster_size(tf_config_text):
    """Machines named in a TF_CONFIG (JSON) that train: its chief and workers; 1 when unset."""
    if not tf_config_text:
        return 1
    cluster = parse_tf_config(tf_config_text)["cluster"]
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def is_chief(tf_config_text):
    """True on the machine that writes the run's outputs: the chief, else worker 0."""
    if cluster_size(tf_config_text) == 1:
        return True
    config = json.loads(tf_config_text)
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def worker_position(tf_config_text):
    """(this machine's position, machines) among a TF_CONFIG's chief and workers: chief first,
    then workers by index; (0, 1) when unset."""
    machines = cluster_size(tf_config_text)
    if machines == 1:
        return 0, 1
    config = json.loads(tf_config_text)
    task = config.get("task", {})
    has_chief = 1 if "chief" in config.get("cluster", {}) else 0
    if task.get("type") == "chief":
        return 0, machines
    return has_chief + int(task.get("index", 0)), machines


def worker_share(files, tf_config_text):
    """This machine's files of a multi-worker run: every N-th from its position, before any
    decoding, so each machine reads 1/N of the crops. Every share is cut to the same length
    (dropping at most N-1 crops), so that all machines run the same number of steps."""
    position, machines = worker_position(tf_config_text)
    if machines == 1:
        return files
    return files[position::machines][:len(files) // machines]


def choose_strategy(mixed_precision=True, cpu_devices=0):
    """Set up devices and return (tf.distribute strategy, description). Call before any other TF use.

    Several machines in TF_CONFIG: MultiWorkerMirroredStrategy. GPUs: memory growth, mixed
    precision unless switched off (the model's output layer stays float32) and MirroredStrategy
    over all of them. `cpu_devices` >= 2 splits the CPU into that many logical devices mirrored
    like GPUs, to exercise the multi-device path on a machine without GPUs. Otherwise the default
    (one-device) strategy: training runs unchanged on CPU.
    """
    gpus = configure_tensorflow()  # first: it sets TensorFlow's log level before the import
    import keras
    import tensorflow as tf

    if cpu_devices and cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    if gpus and mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    precision = "mixed float16" if gpus and mixed_precision else "float32"

    machines = cluster_size(os.environ.get("TF_CONFIG"))
    if machines > 1:
        # Gradients all-reduced in packs, not one collective per variable (hundreds per step).
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(bytes_per_pack=PACK_BYTES))
        where = f"{machines} machines ({strategy.num_replicas_in_sync} replicas)"
    elif cpu_devices and cpu_devices > 1:
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        where = f"{len(devices)} logical CPU devices"
    elif len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        where = f"{len(gpus)} GPUs"
    else:
        strategy = tf.distribute.get_strategy()
        where = "1 GPU" if gpus else "CPU"
    return strategy, f"{where}, {strategy.num_replicas_in_sync} replica(s), {precision}"


def unreachable_message(tf_config_text, timeout_s):
    """The one line a machine stops with when its cluster did not form within timeout_s seconds."""
    missing = [(name, address) for name, address in peers(tf_config_text) if not reachable(address)]
    if missing:
        names = ", ".join(f"{name} at {address}" for name, address in missing)
        return (f"could not reach {names} within CLUSTER_TIMEOUT_S = {timeout_s:g} s: start stage 03 there "
                f"with the same TF_CONFIG, or check the address and that the port is open")
    return (f"every peer answered but the cluster did not form within CLUSTER_TIMEOUT_S = {timeout_s:g} s: "
            f"are they all running stage 03 with the same TF_CONFIG?")


class FormedMark:
    """In the training child: set() tells the supervisor that every peer answered (a file it watches)."""

    def __init__(self, path):
        self.path = path

    def set(self):
        open(self.path, "w").close()


def formed_mark():
    """The training child's FormedMark, or None outside a supervised multi-machine run."""
    path = os.environ.get(FORMED_VARIABLE)
    return FormedMark(path) if path else None


def lost_peer(error):
    """True for the errors TensorFlow raises when a machine of the cluster died or restarted."""
    import tensorflow as tf

    return isinstance(error, (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
                              tf.errors.DeadlineExceededError, tf.errors.FailedPreconditionError,
                              tf.errors.InternalError))


def end_with_parent():
    """In a child process: be killed when the supervising parent dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a killed supervisor leaves its child to stop on its own


def stop_child(child):
    """SIGTERM, then SIGKILL after STOP_GRACE_S."""
    child.terminate()
    try:
        child.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def supervise(command, tf_config_text, timeout_s, progress=None):
    """Run the training `command` (argv) in a child process until it ends; return its status.

    Restarts it when it exits with RESTART_STATUS, at most MAX_RESTARTS times in a row: the count
    starts again whenever `progress()` (the epochs the machine's backup holds) went up since the
    child's last start, so a long run that loses a machine now and then goes on, while one that
    cannot finish an epoch stops with a sentence and status 1. Stops it with status 2 and one
    line naming the unreachable peers when its cluster has not formed timeout_s seconds after it
    started: the watch is here, outside TensorFlow, which can block without letting any other
    Python thread run. SIGTERM and SIGINT stop the child and return 143 / 130, whatever the child
    is doing.
    """
    stop = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: stop.append(number))
    formed = os.path.join(tempfile.gettempdir(), f"deepfake-detect-formed-{os.getpid()}")
    env = dict(os.environ, **{CHILD_VARIABLE: "1", FORMED_VARIABLE: formed})
    progress = progress or (lambda: 0)
    restarts, done_at_start = 0, progress()
    while True:
        if os.path.exists(formed):
            os.remove(formed)
        deadline = time.monotonic() + timeout_s
        child = subprocess.Popen(command, env=env, preexec_fn=end_with_parent if os.name == "posix" else None)
        print(f"cluster: waiting up to CLUSTER_TIMEOUT_S = {timeout_s:g} s for "
              + ", ".join(f"{name} at {address}" for name, address in peers(tf_config_text)), flush=True)
        while child.poll() is None and not stop:
            time.sleep(0.2)
            if time.monotonic() > deadline and not os.path.exists(formed):
                stop_child(child)
                print(f"error: {unreachable_message(tf_config_text, timeout_s)}", file=sys.stderr, flush=True)
                return 2
        if stop:
            stop_child(child)
            print(f"\nstopped ({signal.Signals(stop[0]).name}): run the same command to resume from the "
                  f"last finished epoch", file=sys.stderr, flush=True)
            return 128 + stop[0]
        if child.returncode != RESTART_STATUS:
            return child.returncode
        done = progress()
        if done > done_at_start:  # an epoch finished since the last start: "in a row" starts again
            restarts, done_at_start = 0, done
        if restarts == MAX_RESTARTS:
            print(f"error: the cluster lost a machine {MAX_RESTARTS + 1} times in a row without finishing an "
                  f"epoch in between: giving up; once every machine is up, run the same command to resume "
                  f"from the last finished epoch", file=sys.stderr, flush=True)
            return 1
        restarts += 1
        print(f"the cluster lost a machine: restarting this worker ({restarts} of {MAX_RESTARTS} in a row) to "
              f"resume from the last finished epoch", file=sys.stderr, flush=True)


def needs_supervisor(tf_config_text):
    """True on a machine of a multi-machine run before its training child started: this process
    then only supervises (supervise_script), so SIGTERM/Ctrl+C can stop training at any point and
    a lost peer restarts it."""
    return cluster_size(tf_config_text) > 1 and not os.environ.get(CHILD_VARIABLE)


def supervise_script(script, argv, name, tf_config_text, timeout_s, backup_dir=None):
    """supervise() stage 03's script run again as the child: the same flags, the run name made
    explicit, and no --overwrite (the supervisor already did it, once). `backup_dir`: this
    machine's training backup, whose finished epochs tell supervise() that training progressed."""
    from deepfake_detect.training.epoch_end import backup_epoch

    argv = [arg for arg in (sys.argv[1:] if argv is None else argv) if arg != "--overwrite"]
    progress = (lambda: backup_epoch(backup_dir)) if backup_dir else None
    return supervise([sys.executable, os.path.abspath(script), *argv, "--name", name], tf_config_text, timeout_s,
                     progress)
