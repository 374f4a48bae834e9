"""DataLoader workers that outlive a stop signal, so the main process can still save a resumable checkpoint.

SLURM signals every process of a job step at preemption, ``kill -- -PGID`` signals a whole process group,
and Ctrl-C sends SIGINT to the terminal's foreground group. A worker that dies of SIGTERM makes the main
process fail at its next batch ("DataLoader worker ... is killed by signal: Terminated"), and one that quits
on SIGINT makes it fail as "exited unexpectedly": either way before :class:`~mdr.training.preemption.ResumeCheckpoint`
has finished the batch and written ``last.ckpt``. Workers therefore ignore both signals; the main process
receives them, stops at the next batch start, and shuts its workers down as usual (a worker also exits by
itself when its parent is gone: torch's worker watchdog).

The signals are blocked in the main thread while an iterator starts its workers, so a signal that arrives
between a worker's fork and its ``worker_init_fn`` cannot kill it: the worker inherits the blocked mask,
sets the signals to ignored (which discards one already pending) and unblocks them; the main process
unblocks them after the workers started and handles any that arrived meanwhile.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from torch.utils.data import DataLoader

WORKER_IGNORED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_CAN_MASK = hasattr(signal, "pthread_sigmask")  # POSIX; on Windows the workers only ignore the signals


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn``: this worker ignores SIGTERM and SIGINT (the main process decides when it stops)."""
    for sig in WORKER_IGNORED_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if _CAN_MASK:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_IGNORED_SIGNALS)


class _ThenCall:
    """``ignore_stop_signals`` followed by the caller's own ``worker_init_fn`` (picklable for spawn)."""

    def __init__(self, then: Callable[[int], None]):
        self.then = then

    def __call__(self, worker_id: int) -> None:
        ignore_stop_signals(worker_id)
        self.then(worker_id)


class StopSignalSafeDataLoader(DataLoader):
    """A DataLoader whose worker processes ignore stop signals (see the module docstring for why)."""

    def __init__(self, *args, worker_init_fn: Callable[[int], None] | None = None, **kwargs):
        init = ignore_stop_signals if worker_init_fn is None else _ThenCall(worker_init_fn)
        super().__init__(*args, worker_init_fn=init, **kwargs)

    def __iter__(self):
        if self.num_workers == 0 or not _CAN_MASK:
            return super().__iter__()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_IGNORED_SIGNALS)
        try:
            return super().__iter__()  # starts the workers (persistent ones only on the first call)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
