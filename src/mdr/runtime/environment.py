"""Where a result was computed: the git commit and the machine, recorded in every metrics.json, so a sweep
that spans days and machines can tell which cells ran on which code and CPU kind (timings and, across CPU
kinds, float rounding differ)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

CPU_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def git_commit(root: str | Path | None = None) -> str | None:
    """HEAD of the project checkout, with ``+dirty`` when tracked files differ from it; None outside git."""
    root = Path(root or os.environ.get("MDR_PROJECT_ROOT", Path(__file__).resolve().parents[3]))
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


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


def describe() -> dict:
    import torch

    name, flags = cpu_model()
    return {
        "git_commit": git_commit(),
        "cpu": name,
        "cpu_flags": flags,
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
