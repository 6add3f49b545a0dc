"""Stage 03's training loop: one distributed step (strategy.run) for one device, several GPUs or
several machines, resuming from the last epoch's backup."""

import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from deepfake_detect.models.network import build_model
from deepfake_detect.training.batches import load_split
from deepfake_detect.training.distribute import cluster_size
from deepfake_detect.training.epoch_end import EpochLog, backup_epoch, restore_backup

def set_training_seed(seed):
    """Seed Python, NumPy and TensorFlow (keras.utils.set_random_seed); None leaves them unseeded."""
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)


def build_training(cfg, strategy):
    """(model, optimizer, metrics) with their variables placed by `strategy`: the detector, Adam
    at LEARNING_RATE (wrapped in a LossScaleOptimizer under mixed precision, as compile does) and
    {"train": {...}, "val": {...}} of loss (mean), accuracy and AUC."""
    import keras

    with strategy.scope():
        model = build_model(cfg.BACKBONE, cfg.INPUT_SIZE, cfg.WEIGHTS, cfg.BATCHNORM_MOMENTUM)
        optimizer = keras.optimizers.Adam(learning_rate=cfg.LEARNING_RATE)
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)  # now, so a backup can be restored into it
        metrics = {split: {"loss": keras.metrics.Mean(name="loss"),
                           "accuracy": keras.metrics.BinaryAccuracy(name="accuracy"),
                           "auc": keras.metrics.AUC(name="auc")} for split in ("train", "val")}
    return model, optimizer, metrics


def make_steps(strategy, model, optimizer, metrics):
    """(train_step, val_step, average_step): tf.functions of one distributed batch, run on every
    replica by strategy.run, and one that averages the moving statistics over the replicas. The
    loss is the batch's mean binary cross-entropy over the global batch
    (tf.nn.compute_average_loss), so gradients summed over replicas equal one machine's."""
    import keras
    import tensorflow as tf

    cross_entropy = keras.losses.BinaryCrossentropy(reduction=None)

    def update(split, y, scores, per_example):
        metrics[split]["loss"].update_state(per_example)
        metrics[split]["accuracy"].update_state(y, scores)
        metrics[split]["auc"].update_state(y, scores)

    def train_replica(x, y):
        y = tf.reshape(y, (-1, 1))
        with tf.GradientTape() as tape:
            scores = model(x, training=True)
            per_example = cross_entropy(y, scores)
            loss = tf.nn.compute_average_loss(per_example)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(loss)  # the loss itself unless a LossScaleOptimizer
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        update("train", y, scores, per_example)

    def val_replica(x, y):
        y = tf.reshape(y, (-1, 1))
        scores = model(x, training=False)
        update("val", y, scores, cross_entropy(y, scores))

    @tf.function
    def train_step(batch):
        strategy.run(train_replica, args=batch)

    @tf.function
    def val_step(batch):
        strategy.run(val_replica, args=batch)

    def average_replica():
        context = tf.distribute.get_replica_context()
        return context.all_reduce("MEAN", [tf.identity(variable.value) for variable in averaged])

    @tf.function
    def average_step():
        means = strategy.run(average_replica)
        for variable, mean in zip(averaged, means):  # every machine holds the same means
            variable.assign(strategy.experimental_local_results(mean)[0])

    # Keras 3 updates BatchNorm's moving statistics on each replica from its own batches only;
    # averaging them after each epoch keeps one model on every replica and machine.
    averaged = [v for v in model.non_trainable_variables if v.dtype.startswith("float")] \
        if strategy.num_replicas_in_sync > 1 else []
    return train_step, val_step, average_step if averaged else (lambda: None)


def agree_on_epoch(strategy, finished):
    """The finished epochs every machine's backup holds: the lowest of theirs (the cluster's
    first collective, so it also waits for every peer to be up). `finished` on one machine."""
    import tensorflow as tf

    if cluster_size(os.environ.get("TF_CONFIG")) == 1:
        return finished
    gathered = strategy.gather(strategy.run(lambda: tf.constant([finished])), axis=0)
    return int(tf.reduce_min(gathered).numpy())


def run_epoch(step, dataset, split_metrics, desc):
    """Run `step` over a distributed dataset with a progress bar on a terminal; return
    {name: value} of the split's metrics, reset for the next epoch."""
    from tqdm import tqdm

    for batch in tqdm(dataset, desc=desc, unit="batch", leave=False, disable=not sys.stdout.isatty()):
        step(batch)
    values = {name: float(metric.result()) for name, metric in split_metrics.items()}
    for metric in split_metrics.values():
        metric.reset_state()
    return values


def train_model(cfg, strategy, run_dir, files_by_split, cache_dir=None, writes_run=True, cluster_formed=None):
    """Build the model, decode train and val, and train for up to EPOCHS epochs with our own
    distributed step (the same on one machine and several: Keras 3's fit cannot run under
    MultiWorkerMirroredStrategy), resuming from run_dir/backup if an earlier run was interrupted.
    The machine that `writes_run` writes history.csv, model.keras and TensorBoard logs into run_dir
    (epoch_end.EpochLog). `cluster_formed` (distribute.FormedMark) is set once every peer answered.
    Returns the weights' digest, the same on every machine of a cluster."""
    model, optimizer, metrics = build_training(cfg, strategy)  # first: a weights problem shows at once
    backup_dir = Path(run_dir) / "backup"
    resumed = agree_on_epoch(strategy, backup_epoch(backup_dir))
    if cluster_formed is not None:
        cluster_formed.set()
    restore_backup(backup_dir, resumed, model, optimizer)
    train_data, _ = load_split(files_by_split["train"], cfg, "train", cache_dir)
    val_data, _ = load_split(files_by_split["val"], cfg, "val", cache_dir)
    train_data = strategy.experimental_distribute_dataset(train_data)
    val_data = strategy.experimental_distribute_dataset(val_data)
    train_step, val_step, average_step = make_steps(strategy, model, optimizer, metrics)
    log = EpochLog(run_dir, backup_dir, cfg.EARLY_STOPPING_PATIENCE, writes_run, resumed)
    for epoch in range(resumed + 1, cfg.EPOCHS + 1):
        print(f"Epoch {epoch}/{cfg.EPOCHS}", flush=True)
        started = time.monotonic()
        logs = run_epoch(train_step, train_data, metrics["train"], "train")
        average_step()
        val_logs = run_epoch(val_step, val_data, metrics["val"], "val")
        logs.update({f"val_{name}": value for name, value in val_logs.items()})
        print(f"  {time.monotonic() - started:,.1f} s - "
              + " - ".join(f"{name}: {value:.4f}" for name, value in logs.items()), flush=True)
        stopped = log.end_epoch(epoch, logs, model, optimizer, float(cfg.LEARNING_RATE))
        if stopped:
            print(f"  stopped after epoch {epoch}: {stopped} (best val loss in epoch {log.best_epoch})")
            break
    log.finish()
    return weights_digest(model)


def weights_digest(model):
    """SHA-256 (first 16 hex digits) of the model's float weights (not the dropout seeds, which
    differ on purpose): machines that trained one model agree."""
    digest = hashlib.sha256()
    for variable in model.weights:
        if variable.dtype.startswith("float"):
            digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()[:16]
