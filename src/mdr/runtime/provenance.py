"""Where a result was computed, captured once when a run starts: the code (commit, dirty tree and a hash of its
diff), the machine (CPU model and the flags that decide speed and rounding), the library versions and the
precision. ``<run>/provenance.json`` is written before the first training step and ``metrics.json`` carries the
same block unchanged, so a checkout that moves while a run trains cannot rename the code the run ran.

The report groups seeds into *blocks* by provenance (:func:`block_of`: CPU kind and major library versions;
the commit is listed, never blocked on), so a claim whose rows mix blocks can compare like with like."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from mdr.runtime.files import atomic_write_json

PROVENANCE_FILE = "provenance.json"
# avx512_bf16 without amx makes bf16 slower than fp32 here; amx makes it fast: both change what "auto" picks
CPU_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
LIBRARIES = ("torch", "transformers", "lightning", "numpy")
RECORDED, RECONSTRUCTED = "recorded", "reconstructed"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None


def project_root() -> Path:
    return Path(os.environ.get("MDR_PROJECT_ROOT", Path(__file__).resolve().parents[3]))


def code_state(root: str | Path | None = None) -> dict:
    """``{git_commit, dirty, diff_sha256}`` of the checkout (tracked files only); Nones outside git."""
    root = Path(root) if root else project_root()
    head = _git(root, "rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return {"git_commit": None, "dirty": None, "diff_sha256": None}
    diff = _git(root, "diff", "HEAD", "--binary")
    patch = diff.stdout if diff is not None and diff.returncode == 0 else b""
    return {
        "git_commit": head.stdout.decode().strip(),
        "dirty": bool(patch),
        "diff_sha256": hashlib.sha256(patch).hexdigest() if patch else None,
    }


def cpu_model() -> tuple[str, list[str]]:
    """The CPU's model name (as lscpu shows it) and which of the flags that decide speed it has."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return name, [f for f in CPU_FLAGS_OF_INTEREST if f in flags]


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def capture(precision: dict | None = None, root: str | Path | None = None) -> dict:
    """The provenance block of a run starting now (``precision``: what the run will compute in)."""
    import torch

    name, flags = cpu_model()
    return {
        "source": RECORDED,
        "captured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **code_state(root),
        "cpu": name,
        "cpu_flags": flags,
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": library_versions(),
        "precision": precision or {},
    }


def launch_rank() -> int:
    """This process's global rank as the launcher set it (torchrun / Lightning's DDP: RANK, NODE_RANK and
    LOCAL_RANK; SLURM: SLURM_PROCID), before any process group exists; 0 for a plain run."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"]) + int(os.environ.get("NODE_RANK", 0))
    return int(os.environ.get("SLURM_PROCID", 0)) if "SLURM_NTASKS" in os.environ else 0


def record_start(run_dir: str | Path, precision: dict | None = None) -> dict:
    """Write ``<run>/provenance.json`` at the run's start and return the block metrics.json will carry. A run
    resumed in its folder keeps its first start's block and lists each later start under ``resumes`` (a resume
    on other code or another machine is visible, and the block the run started with is never replaced). Only
    rank 0 writes; other ranks return what they would have written."""
    path = Path(run_dir) / PROVENANCE_FILE
    now = capture(precision)
    if launch_rank() != 0:
        return now
    if path.is_file():
        first = json.loads(path.read_text())
        first.setdefault("resumes", []).append(now)
        block = first
    else:
        block = now
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, block)
    return block


def major(version: str | None, parts: int = 2) -> str:
    """``2.14.1+cu130`` -> ``2.14``: releases that share it compute the same kernels for our purposes."""
    if not version:
        return "?"
    return ".".join(version.split("+", 1)[0].split(".")[:parts])


def cpu_kind(block: dict) -> str:
    """The CPU model with the flags that change speed or bf16 rounding (``AMD EPYC [avx512_bf16]``)."""
    flags = set(block.get("cpu_flags") or [])
    decisive = [f for f in ("avx512_bf16", "amx_bf16") if f in flags] or (
        ["avx512f"] if "avx512f" in flags else ["avx2"] if "avx2" in flags else []
    )
    gpu = block.get("gpu")
    return gpu if gpu else f"{block.get('cpu') or '?'} [{','.join(decisive) or 'no avx2'}]"


def block_of(block: dict | None) -> str:
    """A cell's seed block: CPU kind and major library versions (torch, transformers), never the commit."""
    if not block:
        return "unknown"
    versions = block.get("versions") or {"torch": block.get("torch")}
    return f"{cpu_kind(block)} | torch {major(versions.get('torch'))} | transformers {major(versions.get('transformers'), 1)}"


def read_provenance(run_dir: str | Path, metrics: dict | None = None) -> dict | None:
    """A finished run's provenance: metrics.json's block (recorded at the start), else the folder's
    provenance.json (recorded, or reconstructed for cells written before runs recorded it), else None."""
    if metrics and metrics.get("provenance"):
        return metrics["provenance"]
    path = Path(run_dir) / PROVENANCE_FILE
    return json.loads(path.read_text()) if path.is_file() else None
