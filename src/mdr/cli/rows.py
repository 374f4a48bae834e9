"""A results row, for every driver: skip a cell the results folder already holds, and score an encoder as a row
of its own (a merged WiSE-FT row inside a training run, a soup from merge.py): its run folder with stand-in
Hydra files and the provenance of the process that made it, the evaluation plan's sets scored, the small
results archived."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from mdr.cli.results_archive import archive_run, archived_cell
from mdr.eval.plan import EvalPlan
from mdr.eval.suite import run_eval
from mdr.runtime.errors import InputError
from mdr.runtime.files import atomic_write_json
from mdr.runtime.run_folder import RunFolder

log = logging.getLogger(__name__)
CKPT_HASH = "ckpt_sha256"  # metrics.json: the content hash of the checkpoint an eval.py row scored


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def skip_if_archived(
    run: RunFolder,
    results_dir: str | Path | None,
    cell: list[str],
    merged: list[list[str]] | None = None,
    model_hash: str | None = None,
) -> bool:
    """True (and ``SKIPPED`` left in the run folder) when ``results_dir`` already holds this cell (and every
    merged row the run would add): re-launching a sweep continues it. ``model_hash``: the checkpoint this run
    scores; a cell that recorded another one is refused, never taken for this one's results."""
    done = archived_cell(results_dir, cell, merged)
    if done is None:
        return False
    recorded = RunFolder(done).metrics().get(CKPT_HASH) if model_hash else None
    if recorded and recorded != model_hash:
        raise InputError(
            f"{done} holds the results of another checkpoint (sha256 {recorded[:12]}, this one {model_hash[:12]}) "
            "under the same cell name; score this checkpoint into another results_dir, or delete that cell to "
            "replace it"
        )
    run.mark_skipped(f"this cell's results are already in {done}")
    log.info("skipped: %s already holds this cell's results (delete it to run the cell again)", done)
    return True


def score_as_row(
    encoder,
    plan: EvalPlan,
    folder: RunFolder,
    cell: list[str],
    record: dict,
    langs: list[str] | None,
    provenance: dict,
    results_dir: str | Path | None = None,
    encode_cache: dict | None = None,
) -> dict:
    """Evaluate ``encoder`` into ``folder`` as the results cell ``cell``. ``record``: what metrics.json keeps
    beside the scores (``config``, ``merged``, ``train``); the config is also written as the row's Hydra config."""
    folder.write_stand_in(record["config"], cell)
    atomic_write_json(folder.provenance_path, provenance)
    report = run_eval(
        encoder, plan, folder.path, langs, {**record, "provenance": provenance}, encode_cache=encode_cache
    )
    if results_dir:
        archive_run(folder.path, results_dir, cell)
    return report


def score_fused_row(
    encoder,
    plan: EvalPlan,
    run_dir: Path,
    cell: list[str],
    record: dict,
    langs: list[str] | None,
    provenance: dict,
    results_dir: str | Path | None = None,
    encode_cache: dict | None = None,
) -> dict | None:
    """``eval.fusion``: RRF of ``encoder`` (the run's dense model) and BM25, scored into ``<run>/fused/rrf/``
    and archived as the cell ``cell + fusion=rrf`` (None without ``eval.fusion``). ``encode_cache``: the one
    the base row filled, so the dense model's texts are not encoded twice."""
    from mdr.eval.fusion import ROW_NAME, FusedRanker

    if plan.fusion is None:
        return None
    ranker = FusedRanker(encoder, plan.fusion.bm25_model(), plan.fusion.k)
    row = {"kind": "fusion", "method": ROW_NAME, "k": plan.fusion.k, "of": str(run_dir)}
    fused_record = {**record, "config": {**record["config"], "fused": row}, "fused": row}
    folder = RunFolder(Path(run_dir) / "fused" / ROW_NAME)
    (fused_cell,) = fused_cells(True, cell)
    return score_as_row(
        ranker,
        plan.for_fused_row(),
        folder,
        fused_cell,
        fused_record,
        langs,
        provenance,
        results_dir,
        encode_cache,
    )


def fused_cells(fusion, cell: list[str]) -> list[list[str]]:
    """The results cell of a run's fused row (``fusion=rrf``): the base cell without the ``eval.fusion``
    settings; none when the run has no ``eval.fusion``."""
    from mdr.eval.fusion import ROW_NAME

    if not fusion:
        return []
    return [[*(o for o in cell if not o.lstrip("+~").startswith("eval.fusion")), f"fusion={ROW_NAME}"]]
