"""TensorFlow device set-up shared by every stage that runs a network (01a, 03, 04)."""

import contextlib
import os
import sys

# Set (to "1") by a stage's --verbose flag; worker processes inherit it with the environment.
VERBOSE_VARIABLE = "DEEPFAKE_DETECT_VERBOSE"
_started = False  # whether this process has imported and queried TensorFlow through here yet


def verbose():
    """True when the user asked for TensorFlow's own start-up messages (--verbose)."""
    return os.environ.get(VERBOSE_VARIABLE) == "1"


@contextlib.contextmanager
def silenced_stderr():
    """Send everything written to file descriptor 2 to the null device for the duration.

    TensorFlow's C++ start-up messages ("All log messages before absl::InitializeLog() ...",
    "Could not find cuda drivers ...", "oneDNN custom operations are on ...") are written to
    the descriptor directly while it loads, whatever TF_CPP_MIN_LOG_LEVEL says, so only
    redirecting the descriptor itself keeps them off the user's screen.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def configure_tensorflow(threads=None):
    """Prepare TensorFlow before its first use; returns the list of physical GPUs.

    GPU memory grows as needed instead of being taken whole, so MTCNN and a model can share a
    GPU. The original called set_memory_growth(gpus[0]) unconditionally and crashed with
    IndexError on machines without a GPU; with none this does nothing. `threads`, if given, caps
    TensorFlow's CPU threads, so that several worker processes do not each start one thread per
    core. TensorFlow's start-up messages are hidden (its log level is set to errors only and
    its import and first device query write to the null device) unless the stage ran with
    --verbose. Every stage imports TensorFlow first through here.
    """
    global _started
    quiet = not verbose() and not _started
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with silenced_stderr() if quiet else contextlib.nullcontext():
        import tensorflow as tf

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:
                pass  # TensorFlow already started in this process; its threads stay as they are
        gpus = tf.config.list_physical_devices("GPU")
    _started = True
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised by an earlier call in this process
    return gpus
