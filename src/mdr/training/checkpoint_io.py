"""Checkpoints written so that a failed write never destroys the previous one.

Lightning's own writer goes through an fsspec transaction that, on a local disk, writes to the system temp
folder and then moves the file over the old checkpoint: across filesystems the move is a copy, so a full
disk truncates ``last.ckpt`` and leaves it unloadable. Here the checkpoint is serialised in memory, written to
a temporary file beside its target, flushed to disk and renamed over it only when complete (the same rule as
metrics.json). A write that runs out of space removes its temporary file, keeps the old checkpoint, and stops
the run with one line naming the folder and the space it needs.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from mdr.runtime.errors import DiskFullError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` into ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getbuffer()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno in NO_SPACE:
            kept = f"; the previous {path.name} is intact" if path.exists() else ""
            raise DiskFullError(
                f"no space left in {path.parent} to write {path.name}: free at least "
                f"{len(data) / 2**20:.0f} MiB there (the checkpoint's size), or point hydra.run.dir at a larger "
                f"disk{kept}"
            ) from None
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer with :func:`atomic_torch_save` (loading is unchanged)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_torch_save(checkpoint, path)
