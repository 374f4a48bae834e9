"""``eval.py``: score an off-the-shelf model, a training checkpoint or saved embeddings; no training."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from mdr.cli.common import CKPT_FIX, checkpoint_finetune, configure_progress, eval_plan, make
from mdr.cli.results_archive import archive_run, archived_cell, eval_cell_overrides
from mdr.cli.rows import CKPT_HASH, file_sha256, fused_cells, score_fused_row, skip_if_archived
from mdr.cli.schema import check_settings
from mdr.data.tatoeba import TatoebaSet
from mdr.eval.fusion import check_fusable
from mdr.eval.outputs.embeddings import load_embeddings
from mdr.eval.plan import EvalPlan
from mdr.eval.suite import format_headline, run_eval
from mdr.modeling.text_encoder import TextEncoder
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.inputs import check_torch_checkpoint
from mdr.runtime.provenance import record_start
from mdr.runtime.run_folder import RunFolder
from mdr.training.checkpointing import load_encoder_weights, train_langs_of

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict:
    """Three sources of embeddings: a saved embeddings.npz, an evaluation-only baseline, or a (trained) model.
    With ``results_dir`` the small results are archived like a training sweep's (and a cell already there is
    skipped)."""
    folder = RunFolder(cfg.paths.output_dir)
    run_dir = folder.path
    overrides = eval_cell_overrides(folder.overrides(), cfg.ckpt)
    ckpt_hash = file_sha256(cfg.ckpt) if cfg.ckpt and cfg.results_dir and Path(cfg.ckpt).is_file() else None
    fused = fused_cells(cfg.eval.fusion, overrides)
    if skip_if_archived(folder, cfg.results_dir, overrides, fused, model_hash=ckpt_hash):
        return {}
    with folder.failure_marker():
        check_settings(cfg)  # ranges, before anything is read or loaded
        provenance = record_start(run_dir, {"eval": str(cfg.eval.precision)})
        configure_progress(cfg)
        plan = eval_plan(cfg)  # fails on bad data before loading a model
        if cfg.ckpt:
            check_torch_checkpoint(cfg.ckpt, CKPT_FIX)  # and on a bad checkpoint file
        trained_with = RunFolder.of_checkpoint(cfg.ckpt).config() if cfg.ckpt else None
        seen = list(cfg.seen_langs) if cfg.seen_langs else None
        encoder, embeddings = None, None
        if cfg.embeddings:
            embeddings = saved_embeddings(cfg, plan)
        else:
            encoder, ckpt_langs = load_encoder(cfg, trained_with)
            seen = seen or ckpt_langs
            if plan.attacks and cfg.ckpt and not seen:
                raise InputError(
                    f"checkpoint {cfg.ckpt} records no training languages, so the attack cannot report seen "
                    "and unseen languages apart: pass seen_langs=[...] (the languages it was trained on)"
                )
        record = {**run_record(cfg, trained_with, provenance), CKPT_HASH: ckpt_hash}
        if plan.fusion is not None:
            check_fusable(encoder)  # before the base row is scored
        cache = {} if plan.fusion is not None else None  # the fused row reuses the base row's embeddings
        if fused and archived_cell(cfg.results_dir, overrides) is not None:
            report = {}  # the base cell is archived already: only its fused row is missing, and scored here
            print(f"base row already in {cfg.results_dir} (kept); scoring the fused row only")
        else:
            report = run_eval(
                encoder,
                plan,
                run_dir,
                seen_langs=seen,
                extra=record,
                embeddings=embeddings,
                encode_cache=cache,
            )
            print(format_headline(report))
        fused_report = score_fused_row(
            encoder, plan, run_dir, overrides, record, seen, provenance, cfg.results_dir, cache
        )
        if fused_report is not None:
            print(
                f"fused with BM25 (RRF k={plan.fusion.k}), in {run_dir / 'fused'}:\n{format_headline(fused_report)}"
            )
        if cfg.results_dir and report:
            archive_run(run_dir, cfg.results_dir, overrides)
        print(f"results in {run_dir}")
        return report


def run_record(cfg: DictConfig, trained_with: dict | None, provenance: dict) -> dict:
    """What ``metrics.json`` records of this evaluation; report.py groups a checkpoint's evaluation by
    how it was trained (``config.trained_with``)."""
    extra = {
        "ckpt": cfg.ckpt,
        "embeddings": cfg.embeddings,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "provenance": provenance,
    }
    if trained_with:
        extra["config"]["trained_with"] = trained_with
    return extra


def saved_embeddings(cfg: DictConfig, plan: EvalPlan) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``embeddings=...``: one LAReQA dataset's saved embeddings, checked against the plan's loaded set."""
    if len(plan.sets) != 1 or plan.qrels_sets or isinstance(plan.sets[0], TatoebaSet):
        raise InputError("embeddings=... scores exactly one LAReQA dataset: pass data=xquad_r or data=mlqa_r")
    path = Path(cfg.embeddings)
    if not path.is_file():
        raise MissingInputError(
            f"embeddings file {path} does not exist; write one with eval.save_embeddings=true"
        )
    plan.settings.save_embeddings = False  # they are saved already
    rs = plan.sets[0]
    return {rs.name: load_embeddings(path, rs)}


def load_encoder(cfg: DictConfig, trained_with: dict | None) -> tuple[TextEncoder, list[str] | None]:
    """The model, set up with the checkpoint's fine-tuning mode and weights; also the checkpoint's training
    languages (None without a checkpoint)."""
    encoder = make(cfg.model.encoder)
    if not encoder.trainable:  # an evaluation-only baseline (mdr.modeling.baselines)
        if cfg.ckpt:
            raise InputError(f"model={cfg.model.name} is an evaluation-only encoder: it takes no ckpt=")
        return encoder, None
    checkpoint_finetune(cfg, trained_with).apply(encoder)  # LoRA / adapter weights need their modules
    langs = train_langs_of(load_encoder_weights(encoder, cfg.ckpt)) if cfg.ckpt else None
    device = cfg.device
    encoder.to(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    return encoder, langs
