"""Where stage 03 trains: the machines of a multi-worker run (named in TF_CONFIG), each machine's
share of the crops, and the tf.distribute strategy over this machine's devices.
"""

import json
import os

from deepfake_detect.devices import configure_tensorflow


def cluster_size(tf_config_text):
    """Machines named in a TF_CONFIG (JSON) that train: its chief and workers; 1 when unset."""
    if not tf_config_text:
        return 1
    cluster = json.loads(tf_config_text).get("cluster", {})
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
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
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
