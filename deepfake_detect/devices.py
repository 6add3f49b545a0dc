"""TensorFlow device set-up shared by every stage that runs a network (01a, 03, 04)."""

import os


def configure_tensorflow(threads=None):
    """Prepare TensorFlow before its first use; returns the list of physical GPUs.

    GPU memory grows as needed instead of being taken whole, so MTCNN and a model can share a
    GPU. The original called set_memory_growth(gpus[0]) unconditionally and crashed with
    IndexError on machines without a GPU; with none this does nothing. `threads`, if given, caps
    TensorFlow's CPU threads, so that several worker processes do not each start one thread per
    core. Start-up logs are quietened (on a machine without a GPU, level 2 still prints an
    alarming "failed call to cuInit" line); set TF_CPP_MIN_LOG_LEVEL yourself to see them.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # TensorFlow already started in this process; its threads stay as they are
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised by an earlier call in this process
    return gpus
