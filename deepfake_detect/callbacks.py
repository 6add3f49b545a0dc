"""Stage 03's training callbacks, and history.csv that they keep: every epoch is logged once,
model.keras holds the best val loss, and early stopping counts patience across an interruption,
so a run killed mid-training and started again resumes as if it had never stopped.
"""

import csv
import math
import os
from pathlib import Path

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


def make_callbacks(run_dir, patience):
    """The training callbacks, in the order they must run at each epoch's end.

    The epoch log, best checkpoint and early stopping read history.csv when training (re)starts,
    so an interrupted run that BackupAndRestore brings back at epoch k neither logs an epoch
    twice nor forgets the best val loss it had reached before the interruption.
    """
    import keras

    run_dir = Path(run_dir)
    history_path = run_dir / "history.csv"

    class EpochLog(keras.callbacks.Callback):
        """Rewrite history.csv (atomically) after every epoch, dropping rows a resume redoes."""

        def on_train_begin(self, logs=None):
            self.rows, self.started = read_history(history_path), False

        def on_epoch_begin(self, epoch, logs=None):
            if not self.started:
                self.rows, self.started = [row for row in self.rows if row["epoch"] <= epoch], True

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items() if k in HISTORY_COLUMNS}}
            self.rows.append(row)
            write_history(history_path, self.rows)

    class BestCheckpoint(keras.callbacks.Callback):
        """Save model.keras (temporary name, then rename) whenever val loss improves."""

        def on_epoch_begin(self, epoch, logs=None):
            if not hasattr(self, "best"):
                earlier = [row for row in read_history(history_path) if row["epoch"] <= epoch]
                self.best = best_of(earlier)[0]
                self.best = math.inf if self.best is None else self.best

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get("val_loss")
            if value is not None and not math.isnan(value) and value < self.best:
                self.best = value
                final = run_dir / "model.keras"
                temporary = run_dir / f".tmp-{os.getpid()}-model.keras"
                self.model.save(temporary)
                os.replace(temporary, final)

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping whose patience counts epochs from before an interruption too."""

        def on_epoch_begin(self, epoch, logs=None):
            if getattr(self, "resumed_at", None) is None:
                self.resumed_at = epoch
                best, best_epoch = best_of([row for row in read_history(history_path) if row["epoch"] <= epoch])
                if best is not None:
                    self.best, self.best_epoch, self.wait = best, best_epoch - 1, epoch - best_epoch

    return [
        EpochLog(),
        BestCheckpoint(),
        ResumableEarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True, verbose=1),
        keras.callbacks.TerminateOnNaN(),
        # Last, so the epoch's log and checkpoint exist before the backup says it is done.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True),
    ]
