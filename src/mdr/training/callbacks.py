"""Training callbacks that are part of the run-folder contract."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L

from mdr.runtime.errors import InputError
from mdr.runtime.progress import duration, line

log = logging.getLogger("mdr.progress")


class BatchLog(L.Callback):
    """Append each trained batch's plan (step, batch type, languages, ids) to ``batches.jsonl``.

    An audit trail of what the sampler fed the model: lets a user check batch composition, and a
    resumed run be compared batch by batch with an uninterrupted one.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        corpus = trainer.datamodule.train_corpus
        row = {
            "step": batch["step"],
            "rank": trainer.global_rank,
            "kind": batch["kind"],
            "query_langs": batch["query_langs"],
            "passage_langs": batch["passage_langs"],
            "ids": [corpus.ids[i] for i in batch["query_ids"].tolist()],
        }
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def total_epochs(trainer) -> int | str:
    """The epochs this run will see: ``max_epochs``, or fewer where ``max_steps`` ends it earlier."""
    per_epoch = trainer.num_training_batches
    if trainer.max_steps and trainer.max_steps > 0 and isinstance(per_epoch, int) and per_epoch > 0:
        by_steps = -(-trainer.max_steps // per_epoch)
        return (
            min(by_steps, trainer.max_epochs) if trainer.max_epochs and trainer.max_epochs > 0 else by_steps
        )
    return trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"


class ProgressLog(L.Callback):
    """Plain progress lines for logs (stdout not a terminal: nohup, SLURM, CI), where Lightning's live bar
    shows nothing: every ``every_n_steps`` optimiser steps or ``every_s`` seconds, whichever comes first,
    ``train 40/234 steps (17%) | epoch 1/2 | loss 0.4123 | 23.1 ex/s | elapsed 1m12s | ETA 5m40s``; a
    line per validation with its metrics, and one when training ends."""

    def __init__(self, every_n_steps: int = 20, every_s: float = 60.0):
        if every_n_steps < 1 or every_s <= 0:
            raise InputError(
                f"progress.every_n_steps={every_n_steps} must be >= 1 and progress.every_s={every_s} > 0"
            )
        self.every_n_steps, self.every_s = every_n_steps, every_s

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = self.last_time = time.perf_counter()
        self.first_step = self.last_step = trainer.global_step  # > 0 when resuming
        self.examples = 0
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.examples += int(batch["labels"].shape[0]) * trainer.world_size
        if pl_module.loss_history:
            self.losses.append(pl_module.loss_history[-1])
        now, step = time.perf_counter(), trainer.global_step
        if step - self.last_step >= self.every_n_steps or now - self.last_time >= self.every_s:
            self._line(trainer, now, step)

    def _line(self, trainer, now: float, step: int) -> None:
        """Steps and percent count the whole run; rate and ETA come from the steps this process trained (a
        resumed run says where it resumed)."""
        fields = {"epoch": f"{trainer.current_epoch + 1}/{total_epochs(trainer)}"}
        if self.losses:
            fields["loss"] = f"{sum(self.losses) / len(self.losses):.4f}"
        fields["ex/s"] = f"{self.examples / max(now - self.last_time, 1e-9):.1f}"
        if self.first_step:
            fields["resumed at step"] = str(self.first_step)
        total = int(trainer.estimated_stepping_batches)
        elapsed = now - self.start
        text = line("train", step, total, elapsed, "steps", fields)
        done = step - self.first_step
        if done > 0 and self.first_step and step < total:  # ETA from this process's own rate
            text = text.rsplit(" | ETA ", 1)[0] + f" | ETA {duration(elapsed / done * (total - step))}"
        if trainer.is_global_zero:
            log.info(text)
        self.last_time, self.last_step, self.examples, self.losses = now, step, 0, []

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        shown = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        values = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted(shown.items()))
        log.info("validation at step %d: %s", trainer.global_step, values or "no metrics")

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            elapsed = time.perf_counter() - self.start
            log.info(
                "training done: %d steps in %s", trainer.global_step - self.first_step, duration(elapsed)
            )
