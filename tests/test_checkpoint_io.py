"""A checkpoint write that runs out of space keeps the previous checkpoint loadable and stops the run with one
line naming the folder and the space it needs (a full scratch disk, a resumed run saving again)."""

import errno
import os
import subprocess
import uuid

import pytest
import torch
from helpers import quick_tiny_overrides, run

from mdr.runtime.errors import DiskFullError
from mdr.training.checkpoint_io import atomic_torch_save


def _fail_after(monkeypatch, n_bytes: int):
    """os.write that writes ``n_bytes`` in all, then fails as a full disk does."""
    real, left = os.write, [n_bytes]

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real(fd, bytes(data[: left[0]]))
        left[0] -= n
        return n

    monkeypatch.setattr(os, "write", write)


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    atomic_torch_save({"step": 1, "w": torch.arange(1000.0)}, path)
    _fail_after(monkeypatch, 2000)  # half of the new checkpoint reaches the disk
    with pytest.raises(DiskFullError) as err:
        atomic_torch_save({"step": 2, "w": torch.arange(1000.0) * 2}, path)
    monkeypatch.undo()
    message = str(err.value)
    assert str(path.parent) in message and "MiB" in message and "the previous last.ckpt is intact" in message
    assert torch.load(path)["step"] == 1  # the old checkpoint, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left


def test_a_complete_write_replaces_the_checkpoint(tmp_path):
    path = tmp_path / "best.ckpt"
    atomic_torch_save({"step": 1}, path)
    atomic_torch_save({"step": 2}, path)
    assert torch.load(path)["step"] == 2 and [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]


@pytest.fixture
def small_disk(tmp_path):
    """A 250 MiB tmpfs: room for two of the tiny model's ~96 MB checkpoints, not for a third being written."""
    where = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=250m", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()}); needs root")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_train_py_on_a_full_disk_stops_in_one_line_and_keeps_its_checkpoints(
    small_disk, tiny_model_dir, data_dir
):
    run_dir = small_disk / "run"
    proc = run("train.py", *quick_tiny_overrides(tiny_model_dir, run_dir, data_dir), check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("train.py: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"no space left in {run_dir / 'checkpoints'}" in lines[0] and "free at least" in lines[0]
    left = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert left and all(name.endswith(".ckpt") for name in left)  # no temporary file
    for name in left:
        assert "state_dict" in torch.load(run_dir / "checkpoints" / name, weights_only=False)  # each loadable
    assert not (run_dir / "metrics.json").exists() and "DiskFullError" in (run_dir / "FAILED").read_text()
