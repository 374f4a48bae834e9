"""The run's one resumable checkpoint, and a clean stop on SIGTERM / SIGINT (what SLURM sends before it
preempts a job, and Ctrl-C).

``last.ckpt`` is written at the *start* of a training batch, never at the end of one: at that point every
random draw the uninterrupted run makes before the batch's forward pass has been made (a validation's and a
new epoch's DataLoader iterators each draw from torch's global generator), so the RNG state saved there is the
one the batch uses. A resumed run sets that state at the start of its first batch (``DualEncoderModule``), after
its own iterator draws, and continues the uninterrupted stream bit for bit at any step: inside an epoch, at an
epoch boundary, right after a validation.

On a signal the callback finishes the batch in progress, writes ``last.ckpt`` at the next batch start, asks
SLURM to requeue the job where configured (``preemption.requeue``, as Lightning's SLURM environment does
with ``scontrol requeue``), and raises :class:`TrainingStopped`; ``train.py`` writes it into ``FAILED`` with
the command that resumes the run and exits with 128 + the signal number.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import torch

from mdr.runtime.errors import InputError

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SAVED_AT_KEY = "mdr_saved_at"


class TrainingStopped(Exception):
    """Training was stopped by a signal after saving a resumable checkpoint: the run is not finished."""

    def __init__(self, signum: int, step: int, resume_command: str, requeued: bool = False):
        self.signum, self.step, self.resume_command, self.requeued = signum, step, resume_command, requeued
        name = signal.Signals(signum).name
        then = "; SLURM requeued the job" if requeued else ""
        super().__init__(f"stopped by signal {name} at step {step}{then}; resume with: {resume_command}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by that signal


def resume_command(run_dir: Path, overrides: list[str], script: str = "train.py") -> str:
    """The command that continues this run in its own folder: its overrides, ``hydra.run.dir`` and
    ``ckpt_path=last`` (a multirun cell resumes alone, as a single run)."""
    kept = [
        o
        for o in overrides
        if not re.match(r"[+~]*(ckpt_path|hydra\.run\.dir|hydra\.sweep\.dir|paths\.output_dir)=", o)
    ]
    words = ["python", script, *kept, f"hydra.run.dir={run_dir}", "ckpt_path=last"]
    return " ".join(shlex.quote(w) for w in words)


def slurm_job_id() -> str | None:
    """``<array job>_<task>`` for an array task, else ``SLURM_JOB_ID``; None outside SLURM."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_slurm_job() -> bool:
    """``scontrol requeue <job>``; True when SLURM accepted it."""
    job = slurm_job_id()
    if not job or not re.fullmatch(r"[0-9_]+", job):
        log.warning("preemption.requeue=true but this is not a SLURM job (no SLURM_JOB_ID): not requeued")
        return False
    try:
        code = subprocess.call(["scontrol", "requeue", job])
    except FileNotFoundError:
        log.warning("preemption.requeue=true but scontrol is not on PATH: job %s not requeued", job)
        return False
    if code != 0:
        log.warning("scontrol requeue %s failed with exit code %d", job, code)
    return code == 0


class ResumeCheckpoint(L.Callback):
    """Owns ``checkpoints/last.ckpt`` (the only "last" checkpoint of a run): written at the start of the first
    training batch after each validation, every ``every_n_steps`` steps when set, and when training ends
    (``periodic``; ``checkpoint.save_last``), and always at a stop signal. See the module docstring for why
    at a batch's start."""

    def __init__(
        self,
        ckpt_dir: str | Path,
        every_n_steps: int | None = None,
        resume_command: str = "",
        requeue: bool = False,
        handle_signals: bool = True,
        periodic: bool = True,
    ):
        if every_n_steps is not None and every_n_steps < 1:
            raise InputError(f"checkpoint.every_n_train_steps={every_n_steps} must be >= 1 (or null)")
        self.path = Path(ckpt_dir) / "last.ckpt"
        self.every_n_steps, self.resume_command, self.requeue = every_n_steps, resume_command, requeue
        self.handle_signals, self.periodic = handle_signals, periodic
        self.received: int | None = None
        self._fix_total_ready = False
        self._previous: dict[int, object] = {}
        self._validated = False

    # ---- signals ----
    def _on_signal(self, signum, frame) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without waiting for the batch
        self.received = signum
        log.warning(
            "received %s: finishing the current batch, then saving a resumable checkpoint and stopping",
            signal.Signals(signum).name,
        )

    def on_train_start(self, trainer, pl_module) -> None:
        # Installed after Lightning's own handlers (Trainer._run), which they replace: Lightning's would end the
        # run with a SystemExit(0) at the next epoch end, which a sweep or SLURM records as a success.
        if self.handle_signals:
            for sig in STOP_SIGNALS:
                with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                    self._previous[sig] = signal.signal(sig, self._on_signal)

    def _restore_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _stop_requested(self, trainer) -> bool:
        """Whether any rank received a signal (every rank stops at the same step under DDP)."""
        local = self.received is not None
        if trainer.world_size > 1:
            flag = torch.tensor([float(local)], device=trainer.strategy.root_device)
            return bool(trainer.strategy.reduce(flag, reduce_op="sum").item() > 0)
        return local

    # ---- saving ----
    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._validated = True

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[SAVED_AT_KEY] = "train_batch_start"

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._fix_total_ready = checkpoint.get(SAVED_AT_KEY) == "train_batch_start"

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._fix_total_ready:
            # Lightning resets a restarted epoch's own counters but not its run-long ones: the batch that was
            # ready when the checkpoint was written is counted ready twice, and with validation every N global
            # steps (check_val_every_n_epoch=null, the fp32 step cap) every later validation came one step early.
            trainer.fit_loop.epoch_loop.batch_progress.total.ready -= 1
            self._fix_total_ready = False
        step = int(batch["step"])  # == trainer.global_step: the steps already trained
        stopping = self._stop_requested(trainer)
        due = self.periodic and (
            self._validated or bool(self.every_n_steps and step > 0 and step % self.every_n_steps == 0)
        )
        if stopping or due:
            self.save(trainer, step)
        if stopping:
            self._stop(trainer, step)

    def save(self, trainer, next_step: int) -> None:
        dm = trainer.datamodule
        loop = trainer.fit_loop.epoch_loop
        # Lightning adds 1 to the loggers' step counter when it restarts from a checkpoint that was not written at
        # a batch's end (it assumes one written before the counter's increment): save it one lower, so curves
        # after a resume keep their step numbers.
        loop._batches_that_stepped -= 1
        try:
            with dm.resuming_at(next_step) if hasattr(dm, "resuming_at") else contextlib.nullcontext():
                trainer.save_checkpoint(self.path)
        finally:
            loop._batches_that_stepped += 1
        self._validated = False

    def _stop(self, trainer, step: int) -> None:
        signum = self.received if self.received is not None else signal.SIGTERM  # another rank's signal
        for logger in trainer.loggers:  # the curves so far (Lightning's CSV logger buffers them)
            logger.save()
        requeued = bool(self.requeue and trainer.is_global_zero and requeue_slurm_job())
        self._restore_handlers()
        raise TrainingStopped(signum, step, self.resume_command, requeued)

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore_handlers()
        if self.periodic:
            trainer.save_checkpoint(self.path)  # the finished state; resuming it trains nothing more

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore_handlers()


def exit_for_stop(stopped: TrainingStopped) -> None:
    """What ``train.py`` does with a stopped run: the reason and the resume command as the last log line,
    and a non-zero exit (128 + signal), so a sweep or a SLURM job does not count it as finished."""
    log.error("%s", stopped)
    sys.exit(stopped.exit_code)
