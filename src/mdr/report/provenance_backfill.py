"""Provenance for results cells written before runs recorded it at their start, marked ``reconstructed``.

``python -m mdr.report.provenance_backfill results/decisive --cpu "Intel Xeon" --flags avx2,avx512f,avx512_bf16
--torch 2.15 --evidence "..." [--before 2026-11-26]`` writes ``provenance.json`` into every cell that has none;
metrics.json stays as committed. What a cell's own files say wins over the command line: a cell whose
metrics.json has the old ``environment`` block (read when the run ended) takes its CPU and torch from it.
The git commit is the one that first archived the cell's metrics.json: the code the run ran is at or before it.
Cells archived after ``--before`` without an ``environment`` block are left alone (the command-line facts are
only known to hold for the earlier ones).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from mdr.runtime.files import atomic_write_json
from mdr.runtime.provenance import RECONSTRUCTED
from mdr.runtime.run_folder import RunFolder


def archiving_commit(metrics: Path) -> tuple[str | None, str | None]:
    """(commit, ISO date) of the commit that added ``metrics``; Nones when git does not know it."""
    out = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H %aI", "--", metrics.name],
        cwd=metrics.parent,
        capture_output=True,
        text=True,
    )
    lines = out.stdout.split()
    return (lines[-2], lines[-1]) if out.returncode == 0 and len(lines) >= 2 else (None, None)


def reconstruct(cell: Path, facts: dict, before: str | None) -> dict | None:
    """The reconstructed block of one cell, or None where neither its files nor ``facts`` can say."""
    run = RunFolder(cell)
    metrics = run.metrics()
    commit, date = archiving_commit(run.metrics_path)
    env = metrics.get("environment") or {}
    precision = {
        "train": (metrics.get("train") or {}).get("precision"),
        "eval_dtype": metrics.get("encode_precision"),
    }
    block = {
        "source": RECONSTRUCTED,
        "git_commit": commit,
        "git_commit_meaning": "the commit that archived this cell; the run's code is at or before it",
        "archived_at": date,
        "dirty": None,
        "diff_sha256": None,
        "precision": precision,
    }
    if env:
        name = env.get("cpu")
        block |= {
            "cpu": name,
            "cpu_flags": env.get("cpu_flags") or [],
            "cpu_count": env.get("cpu_count"),
            "gpu": env.get("gpu"),
            "versions": {
                "torch": env.get("torch"),
                "python": env.get("python"),
                "transformers": facts["versions"]["transformers"],
            },
            "evidence": f"metrics.json 'environment', read when the run ended (git {str(env.get('git_commit'))[:12]}); "
            f"transformers: {facts['evidence']}",
        }
        return block
    if before and date and date[:10] >= before:
        return None
    return block | facts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--cpu", required=True, help="the CPU model name lscpu showed")
    p.add_argument(
        "--flags", default="", help="comma-separated CPU flags (avx2,avx512f,avx512_bf16,amx_tile)"
    )
    p.add_argument("--torch", default=None)
    p.add_argument("--transformers", default=None)
    p.add_argument("--evidence", required=True, help="where these facts come from (docs, commit)")
    p.add_argument("--before", default=None, help="only cells archived before this date (YYYY-MM-DD)")
    args = p.parse_args(argv)
    facts = {
        "cpu": args.cpu,
        "cpu_flags": [f for f in args.flags.split(",") if f],
        "cpu_count": None,
        "gpu": None,
        "versions": {"torch": args.torch, "transformers": args.transformers, "python": None},
        "evidence": args.evidence,
    }
    written = skipped = 0
    for folder in args.folders:
        for cell in sorted(p for p in folder.iterdir() if RunFolder(p).complete):
            run = RunFolder(cell)
            if run.provenance_path.exists() or "provenance" in run.metrics():
                continue
            block = reconstruct(cell, facts, args.before)
            if block is None:
                skipped += 1
                print(f"left alone (archived after --before, no environment block): {cell}")
                continue
            atomic_write_json(run.provenance_path, block)
            written += 1
    print(f"provenance reconstructed for {written} cell(s); {skipped} left alone")


if __name__ == "__main__":
    main()
