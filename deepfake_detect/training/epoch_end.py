"""What stage 03's training loop does at each epoch's end (EpochLog), on one machine or several:
history.csv logs every epoch once, model.keras holds the best val loss, early stopping counts
patience across an interruption, a NaN loss stops training, TensorBoard gets the epoch's scalars,
and a per-epoch backup lets a run killed mid-training (or a cluster that lost a machine) resume
from its last finished epoch as if it had never stopped.

Order of the writes at an epoch's end, so that a kill at any point resumes with a model.keras and a
history.csv that belong together: first the backup (the best model so far, when this epoch is it,
as best-<epoch>.keras; the weights and optimizer state; then its record, with every history row:
the record is what a resume goes by), and only then history.csv and model.keras, copied from the
backup. A resume publishes both again from the backup as of the epoch it resumes from.
"""

import csv
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from deepfake_detect.files import write_text_atomic

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")


def read_history(path):
    """Rows of history.csv as dicts of floats (epoch as int); [] when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{key: (int(value) if key == "epoch" else float(value)) for key, value in row.items() if value != ""}
            for row in rows]


def write_history(path, rows):
    """Write history rows (dicts) to CSV atomically; epochs are numbered from 1."""
    lines = [",".join(HISTORY_COLUMNS)]
    for row in rows:
        lines.append(",".join("" if row.get(c) is None else (str(row[c]) if c == "epoch" else f"{row[c]:.6f}")
                              for c in HISTORY_COLUMNS))
    write_text_atomic(path, "\n".join(lines) + "\n")


def best_of(rows, monitor="val_loss"):
    """(best value, its epoch) among history rows, lowest `monitor`; (None, None) when empty."""
    scored = [row for row in rows if monitor in row and not math.isnan(row[monitor])]
    if not scored:
        return None, None
    best = min(scored, key=lambda row: row[monitor])
    return best[monitor], best["epoch"]


# The backup's record of finished epochs, written after the epoch's weights (Keras' BackupAndRestore name).
BACKUP_RECORD = "training_metadata.json"
# TensorBoard scalars per epoch: logs/train and logs/validation, as Keras' TensorBoard callback names them.
SCALARS = ("loss", "accuracy", "auc")


def read_backup_record(backup_dir):
    """The backup's record: {"epoch": finished epochs, "rows": history rows} ({} when none; an
    older backup's record has no "rows")."""
    record = Path(backup_dir) / BACKUP_RECORD
    return json.loads(record.read_text()) if record.is_file() else {}


def backup_epoch(backup_dir):
    """Epochs the backup in backup_dir holds finished (0: none)."""
    return read_backup_record(backup_dir).get("epoch", 0)


def best_model_path(backup_dir, epoch):
    """Where the backup keeps the model of `epoch` while it is the best (or was, one epoch ago)."""
    return Path(backup_dir) / f"best-{epoch}.keras"


def save_best_model(backup_dir, epoch, model):
    """Save `model`, the best so far after `epoch`, into the backup (temporary name, then rename)."""
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    temporary = backup_dir / f".tmp-{os.getpid()}-best.keras"
    model.save(temporary)
    os.replace(temporary, best_model_path(backup_dir, epoch))


def save_backup(backup_dir, epoch, model, optimizer, rows=()):
    """Write the weights and optimizer state after `epoch` finished epochs, then the record (with
    the history `rows`); keep the previous epoch's too, so machines whose backups are one epoch
    apart can agree, and the best models as of both epochs."""
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    arrays = {f"m{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    temporary = backup_dir / f".tmp-{os.getpid()}.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, backup_dir / f"epoch-{epoch}.npz")
    write_text_atomic(backup_dir / BACKUP_RECORD, json.dumps({"epoch": epoch, "rows": list(rows)}) + "\n")
    for old in backup_dir.glob("epoch-*.npz"):
        if int(old.stem.split("-")[1]) < epoch - 1:
            old.unlink(missing_ok=True)
    needed = {best_of([r for r in rows if r["epoch"] <= last])[1] for last in (epoch - 1, epoch)}
    for old in backup_dir.glob("best-*.keras"):
        if int(old.stem.split("-")[1]) not in needed:
            old.unlink(missing_ok=True)


def restore_backup(backup_dir, epoch, model, optimizer):
    """Load the weights and optimizer state saved after `epoch` finished epochs (0: nothing)."""
    if epoch == 0:
        return
    with np.load(Path(backup_dir) / f"epoch-{epoch}.npz") as arrays:
        model.set_weights([arrays[f"m{i}"] for i in range(len(model.weights))])
        for i, variable in enumerate(optimizer.variables):
            variable.assign(arrays[f"o{i}"])


def write_summary(tag, value, step, plugin="scalars"):
    """Write one TensorBoard summary to the default writer: a scalar, or (plugin "images") an
    RGB uint8 image (H, W, 3). Through tf.summary.write, which needs no tensorboard package: only
    viewing the logs does (pip install tensorboard)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin))
    if plugin == "images":  # the images plugin's layout: [width, height, encoded image, ...]
        value = tf.stack([tf.as_string(value.shape[1]), tf.as_string(value.shape[0]), tf.io.encode_png(value)])
    else:
        value = tf.constant(value, tf.float32)
    tf.summary.write(tag, value, step=step, metadata=metadata)


class EpochLog:
    """The end of every epoch: the best model.keras and TensorBoard, written by the machine that
    `writes_run`; history.csv, the stop rules (early stopping on val loss, NaN loss) and the
    backup, kept by every machine in its own run_dir and backup_dir.

    Starting at epoch k (resumed), rows of history.csv past k are dropped (those epochs are
    redone) and the best val loss and patience count from the rows before.
    """

    def __init__(self, run_dir, backup_dir, patience, writes_run, start_epoch):
        self.run_dir, self.backup_dir, self.patience, self.writes_run = Path(run_dir), backup_dir, patience, writes_run
        self.history_path = self.run_dir / "history.csv"
        # The backup's rows are those of its weights; history.csv may be an epoch behind or ahead.
        rows = read_backup_record(backup_dir).get("rows")
        rows = read_history(self.history_path) if rows is None else rows
        self.rows = [row for row in rows if row["epoch"] <= start_epoch]
        best, self.best_epoch = best_of(self.rows)
        self.best = math.inf if best is None else best
        self.writers = None
        if writes_run:
            import tensorflow as tf

            self.writers = {name: tf.summary.create_file_writer(str(self.run_dir / "logs" / name))
                            for name in ("train", "validation")}
        if start_epoch:
            self.publish(new_best=True)  # a kill may have come between the backup and these

    def publish(self, new_best):
        """Write history.csv from the rows and, with `new_best`, model.keras from the backup's
        copy of the best epoch's model (temporary name, then rename: never half-written)."""
        # Every machine keeps history.csv in its own folder, so all of them count patience alike after a resume.
        write_history(self.history_path, self.rows)
        best = best_model_path(self.backup_dir, self.best_epoch)
        if self.writes_run and new_best and self.best_epoch is not None and best.is_file():
            temporary = self.run_dir / f".tmp-{os.getpid()}-model.keras"
            shutil.copyfile(best, temporary)
            os.replace(temporary, self.run_dir / "model.keras")

    def end_epoch(self, epoch, logs, model, optimizer, learning_rate):
        """Record finished epoch `epoch` (from 1) with logs {"loss", "accuracy", "auc", "val_*"};
        return why training stops now ("early stopping", "NaN loss") or None."""
        row = {"epoch": epoch, **{key: float(value) for key, value in logs.items() if key in HISTORY_COLUMNS}}
        self.rows.append(row)
        improved = math.isfinite(row["val_loss"]) and row["val_loss"] < self.best
        if improved:
            self.best, self.best_epoch = row["val_loss"], epoch
            if self.writes_run:
                save_best_model(self.backup_dir, epoch, model)
        if self.writes_run:  # before the commit, as before: a resume never lacks an epoch's scalars
            self.write_scalars(epoch, row, learning_rate)
        save_backup(self.backup_dir, epoch, model, optimizer, self.rows)  # its record last: the commit
        self.publish(new_best=improved)
        if not math.isfinite(row["loss"]):
            return "NaN loss"
        if self.best_epoch is not None and epoch - self.best_epoch >= self.patience:
            return "early stopping"
        return None

    def write_scalars(self, epoch, row, learning_rate):
        """TensorBoard: epoch_loss, epoch_accuracy, epoch_auc of train and validation, and the learning rate."""
        for name, prefix in (("train", ""), ("validation", "val_")):
            with self.writers[name].as_default():
                for scalar in SCALARS:
                    if prefix + scalar in row:
                        write_summary(f"epoch_{scalar}", row[prefix + scalar], epoch)
                if name == "train":
                    write_summary("epoch_learning_rate", learning_rate, epoch)
            self.writers[name].flush()

    def finish(self):
        """Training ended: the backup is of no more use."""
        shutil.rmtree(self.backup_dir, ignore_errors=True)
        for writer in (self.writers or {}).values():
            writer.close()


def write_roc_summary(log_dir, labels, scores):
    """TensorBoard (log_dir/validation): the best model's val ROC of detecting fakes as an image,
    and its val ROC AUC, at the step of the last epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf
    from sklearn.metrics import roc_curve

    from deepfake_detect.metrics import roc_auc

    labels, scores = np.asarray(labels), np.asarray(scores)
    auc = roc_auc(labels, scores)
    figure, axis = plt.subplots(figsize=(4, 4))
    if auc is not None:  # fake is the positive class, with 1 - P(pristine) as its score
        false_positive, true_positive, _ = roc_curve(1 - labels, 1 - scores)
        axis.plot(false_positive, true_positive, label=f"crops (AUC {auc:.3f})")
        axis.legend(loc="lower right")
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set(xlabel="real called fake", ylabel="fake caught", title="val ROC, best model")
    figure.canvas.draw()
    image = np.ascontiguousarray(np.asarray(figure.canvas.buffer_rgba())[..., :3])
    plt.close(figure)
    step = len(read_history(Path(log_dir).parent / "history.csv"))
    writer = tf.summary.create_file_writer(str(Path(log_dir) / "validation"))
    with writer.as_default():
        write_summary("val_roc", image, step, plugin="images")
        if auc is not None:
            write_summary("best_model_val_roc_auc", auc, step)
    writer.close()
