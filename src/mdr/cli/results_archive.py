"""Keep a sweep's small results in git, so a long sweep outlives the machine it runs on.

With ``results_dir=results/<experiment>``, every finished run copies what the report needs — metrics.json,
the resolved config and overrides, per-query ranks, Tatoeba's per-language table; never checkpoints or
TREC runs — to ``<results_dir>/<cell>/``, where the cell is the run's overrides (``sampler=xx,seed=0``).
A run whose cell is already there is skipped, so re-launching the same multirun continues it.
``python report.py <results_dir>`` rebuilds the tables from these folders alone.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

import yaml

from mdr.runtime.errors import MissingInputError

log = logging.getLogger(__name__)

KEPT = (
    "metrics.json",
    "provenance.json",
    ".hydra/config.yaml",
    ".hydra/overrides.yaml",
    "eval/*/per_query.npz",
    "eval/*/per_language.csv",
    "eval/*/summary.md",
    "eval/*/adversarial_queries.jsonl",
)
MAX_CELL_NAME = 160
# merge.*: which merged rows a run adds (merge.wise=[0.5]) is not part of the base cell's identity; each merged
# row is its own cell, named by merge=wise0.5
NOT_A_CELL_KEY = (
    "results_dir",
    "paths.",
    "hydra.",
    "trainer.devices",
    "progress.",
    "merge.",
    "preemption.",
    "ckpt_path",
)


def recorded_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides Hydra recorded for this run (none when composed without Hydra's runtime)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in (yaml.safe_load(path.read_text()) or [])] if path.exists() else []


def eval_cell_overrides(overrides: list[str], ckpt: str | None) -> list[str]:
    """An ``eval.py`` run's identity: its overrides, with ``ckpt=<path>`` replaced by the overrides of the
    training run that wrote the checkpoint (``ckpt.sampler=xx``, ``ckpt.seed=1``): paths differ between
    machines, the training cell does not."""
    if not ckpt:
        return overrides
    kept = [o for o in overrides if not o.lstrip("+~").startswith("ckpt=")]
    trained = recorded_overrides(Path(ckpt).parent.parent)
    if not trained:
        return [*kept, f"ckpt={Path(ckpt).parent.parent.name}"]
    return [
        *kept,
        *(f"ckpt.{o.lstrip('+~')}" for o in trained if not o.lstrip("+~").startswith(NOT_A_CELL_KEY)),
    ]


def cell_name(overrides: list[str]) -> str:
    """The run's identity within a sweep: its overrides, sorted, without paths and logging knobs."""
    kept = sorted(o for o in overrides if not o.lstrip("+~").startswith(NOT_A_CELL_KEY))
    if not kept:
        return "default"
    name = re.sub(r"[^A-Za-z0-9=,._+\-\[\]]", "_", ",".join(kept))
    if len(name) > MAX_CELL_NAME:  # file systems stop at 255 bytes: keep a readable head and a hash of all
        name = f"{name[: MAX_CELL_NAME - 17]}...{hashlib.sha1(name.encode()).hexdigest()[:14]}"
    return name


def soup_cell(parents: list[list[str]], name: str) -> list[str]:
    """A merge of several training runs as a results cell: every key the parents share keeps its value, a key
    whose values differ joins them with ``+`` in the parents' order (a key a parent lacks counts as
    ``default``), plus ``merge=<name>``. The soup of ``sampler=xx,seed=5`` and ``sampler=xy,seed=5`` is
    ``merge=soup,sampler=xx+xy,seed=5``: keyed by its two parents and its seed."""
    cells = [
        dict(o.lstrip("+~").split("=", 1) for o in p if not o.lstrip("+~").startswith(NOT_A_CELL_KEY))
        for p in parents
    ]
    keys = list(dict.fromkeys(k for c in cells for k in c))
    merged = [f"{k}={'+'.join(dict.fromkeys(c.get(k, 'default') for c in cells))}" for k in keys]
    return [*merged, f"merge={name}"]


def archived_cell(
    results_dir: str | Path | None, overrides: list[str], merged: list[list[str]] | None = None
) -> Path | None:
    """The cell's folder when it already holds a complete run (metrics.json) and every merged row the run
    would add (``merged``: their cells' overrides) is archived too, else None: a base cell without its merged
    rows is not done, since the merged rows need the trained weights, which are not kept."""
    if not results_dir:
        return None
    cell = Path(results_dir) / cell_name(overrides)
    rows = [Path(results_dir) / cell_name(o) for o in merged or []]
    return cell if all((c / "metrics.json").exists() for c in [cell, *rows]) else None


def archive_run(run_dir: Path, results_dir: str | Path, overrides: list[str]) -> Path:
    """Copy the run's small results into its cell (metrics.json last: its presence marks a complete cell)."""
    cell = Path(results_dir) / cell_name(overrides)
    tmp = cell.with_name(f".{cell.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for pattern in KEPT:
        for src in run_dir.glob(pattern):
            dest = tmp / src.relative_to(run_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    if not (tmp / "metrics.json").exists():
        shutil.rmtree(tmp, ignore_errors=True)
        raise MissingInputError(f"{run_dir} has no metrics.json: only complete runs are archived")
    shutil.rmtree(cell, ignore_errors=True)
    tmp.rename(cell)
    size = sum(p.stat().st_size for p in cell.rglob("*") if p.is_file())
    log.info("results archived to %s (%.1f MB): commit it to keep this cell", cell, size / 1e6)
    return cell
