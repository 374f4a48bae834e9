"""Keep a sweep's small results in git, so a long sweep outlives the machine it runs on.

With ``results_dir=results/<experiment>``, every finished run copies what the report needs — metrics.json,
the resolved config and overrides, per-query ranks, Tatoeba's per-language table; never checkpoints or
TREC runs — to ``<results_dir>/<cell>/``, where the cell is the run's overrides (``sampler=xx,seed=0``).
A run whose cell is already there is skipped, so re-launching the same multirun continues it.
``python report.py <results_dir>`` rebuilds the tables from these folders alone.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from mdr.runtime.errors import MissingInputError
from mdr.runtime.provenance import PROVENANCE_FILE
from mdr.runtime.run_folder import (
    CONFIG,
    METRICS,
    OVERRIDES,
    RunFolder,
    cell_name,
    counts_for_cell,
    parse_overrides,
)

log = logging.getLogger(__name__)

KEPT = (
    METRICS,
    PROVENANCE_FILE,
    CONFIG,
    OVERRIDES,
    "eval/*/per_query.npz",
    "eval/*/per_language.csv",
    "eval/*/summary.md",
    "eval/*/adversarial_queries.jsonl",
    "eval/*/passages.json",  # eval.poison: the adversarial passages, the attacker / evaluated split, transfer
    "eval/*/split.json",
    "eval/*/transfer.csv",
    "eval/*/transfer.png",
)


def eval_cell_overrides(overrides: list[str], ckpt: str | None) -> list[str]:
    """An ``eval.py`` run's identity: its overrides, with ``ckpt=<path>`` replaced by the overrides of the
    training run that wrote the checkpoint (``ckpt.sampler=xx``, ``ckpt.seed=1``): paths differ between
    machines, the training cell does not."""
    if not ckpt:
        return overrides
    kept = [o for o in overrides if not o.lstrip("+~").startswith("ckpt=")]
    trainer_run = RunFolder.of_checkpoint(ckpt)
    trained = trainer_run.overrides()
    if not trained:
        return [*kept, f"ckpt={trainer_run.path.name}"]
    return [*kept, *(f"ckpt.{o.lstrip('+~')}" for o in trained if counts_for_cell(o))]


def soup_cell(parents: list[list[str]], name: str) -> list[str]:
    """A merge of several training runs as a results cell: every key the parents share keeps its value, a key
    whose values differ joins them with ``+`` in the parents' order (a key a parent lacks counts as
    ``default``), plus ``merge=<name>``. The soup of ``sampler=xx,seed=5`` and ``sampler=xy,seed=5`` is
    ``merge=soup,sampler=xx+xy,seed=5``: keyed by its two parents and its seed."""
    cells = [parse_overrides([o for o in p if counts_for_cell(o)]) for p in parents]
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
    return cell if all(RunFolder(c).complete for c in [cell, *rows]) else None


def archive_run(run_dir: Path, results_dir: str | Path, overrides: list[str]) -> Path:
    """Copy the run's small results into its cell (metrics.json last: its presence marks a complete cell). A
    complete cell is never replaced: a run that comes back for a row the cell lacks (a fused or merged row)
    leaves the archived numbers as they were; its own stay in its run folder."""
    cell = Path(results_dir) / cell_name(overrides)
    if RunFolder(cell).complete:
        log.warning("%s already holds this cell's results: kept (this run's are in %s)", cell, run_dir)
        return cell
    tmp = cell.with_name(f".{cell.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for pattern in KEPT:
        for src in run_dir.glob(pattern):
            dest = tmp / src.relative_to(run_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    if not RunFolder(tmp).complete:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MissingInputError(f"{run_dir} has no metrics.json: only complete runs are archived")
    shutil.rmtree(cell, ignore_errors=True)
    tmp.rename(cell)
    size = sum(p.stat().st_size for p in cell.rglob("*") if p.is_file())
    log.info("results archived to %s (%.1f MB): commit it to keep this cell", cell, size / 1e6)
    return cell
