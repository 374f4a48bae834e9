"""DataLoader workers survive the stop signals that SLURM or Ctrl-C send to a whole process group."""

import os
import signal

from torch.utils.data import DataLoader, Dataset

from mdr.training.worker_signals import StopSignalSafeDataLoader


class WorkerFacts(Dataset):
    """Item i -> (i, the pid that loaded it, what the caller's worker_init_fn recorded, the stop signals the
    loading process ignores, those it blocks)."""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        stops = (signal.SIGTERM, signal.SIGINT)
        ignored = {s for s in stops if signal.getsignal(s) is signal.SIG_IGN}
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, []) & set(stops)
        return i, os.getpid(), os.environ.get("MDR_TEST_WORKER_INIT", ""), ignored, blocked


def record_worker_init(worker_id):
    os.environ["MDR_TEST_WORKER_INIT"] = f"ran in worker {worker_id}"


def signal_the_worker_midway(loader):
    """Iterate; after the first item, SIGTERM and SIGINT the worker that loaded it; return every item."""
    items = []
    for item in loader:
        if not items:
            os.kill(item[1], signal.SIGTERM)
            os.kill(item[1], signal.SIGINT)
        items.append(item)
    return items


def test_the_worker_survives_sigterm_and_sigint_and_the_callers_init_still_runs():
    loader = StopSignalSafeDataLoader(
        WorkerFacts(), batch_size=None, num_workers=1, worker_init_fn=record_worker_init
    )
    items = signal_the_worker_midway(loader)
    assert [item[0] for item in items] == list(range(6))
    assert len({item[1] for item in items}) == 1 and items[0][1] != os.getpid()  # one worker, never replaced
    assert {item[2] for item in items} == {"ran in worker 0"}
    # ignored, not left blocked from the iterator's start (a blocked signal would stay pending for ever)
    assert all(item[3] == {signal.SIGTERM, signal.SIGINT} and not item[4] for item in items)
    still_blocked = signal.pthread_sigmask(signal.SIG_BLOCK, []) & {signal.SIGTERM, signal.SIGINT}
    assert not still_blocked  # the main thread unblocks them once the worker has started


def test_a_plain_dataloader_worker_dies_of_the_same_sigterm():
    """The failure the safe loader prevents (so the test above could fail)."""
    loader = DataLoader(WorkerFacts(), batch_size=None, num_workers=1)
    try:
        signal_the_worker_midway(loader)
    except RuntimeError as e:
        assert "killed by signal: Terminated" in str(e) or "exited unexpectedly" in str(e), e
    else:
        raise AssertionError("a plain DataLoader's worker should have died of SIGTERM")
