"""``merge.py``: a weighted average of train.py checkpoints (and optionally the pretrained backbone) of one
model, written as an export folder that ``SentenceTransformer(path)`` and ``eval.py model.encoder.name=<path>``
load. Every input is checked before any model loads, and nothing is written before every check passed.

With ``evaluate=true`` (implied by ``results_dir``) the merge is scored exactly as its parents were (their own
``eval`` settings, read from their run folders) into ``<run>/merged/<name>/``, and with ``results_dir`` archived
as its own results row, keyed by its parents (``soup_cell``): the soup of the X-X and X-Y runs of seed 5 is the
cell ``experiment=decisive,merge=soup,sampler=xx+xy,seed=5``."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mdr.cli.common import CKPT_FIX, checkpoint_finetune, eval_plan, make
from mdr.cli.results_archive import soup_cell
from mdr.cli.rows import score_as_row, skip_if_archived
from mdr.cli.schema import check_settings
from mdr.eval.plan import EvalPlan
from mdr.eval.suite import format_headline
from mdr.modeling.merging import (
    check_weights,
    load_plain_state,
    merge_name,
    plain_state,
    weighted_average,
)
from mdr.report.collect import row_key
from mdr.runtime.errors import InputError
from mdr.runtime.files import atomic_write_text
from mdr.runtime.inputs import check_torch_checkpoint
from mdr.runtime.provenance import record_start
from mdr.runtime.run_folder import RunFolder
from mdr.training.checkpointing import START_STATE, load_encoder_weights, train_langs_of

log = logging.getLogger(__name__)


def merge(cfg: DictConfig) -> Path | None:
    """Check, merge, export; then (``evaluate``) score and (``results_dir``) archive. None when skipped."""
    check_settings(cfg)  # ranges, before anything is read or loaded
    checkpoints, all_weights = checked_inputs(cfg)
    run = RunFolder(cfg.paths.output_dir)
    run_dir = run.path
    results_dir = cfg.results_dir
    evaluating = cfg.evaluate or bool(results_dir)
    parents = [RunFolder.of_checkpoint(c).config() for c in checkpoints]
    name = merge_name([float(w) for w in cfg.weights], float(cfg.pretrained_weight))
    cells = [parent_cell(c) for c in checkpoints] if evaluating else []  # also checks each has a run folder
    cell = soup_cell(cells, name) if evaluating else []
    if skip_if_archived(run, results_dir, cell):
        return None
    check_mergeable(cfg, checkpoints, parents)
    start = pretrained_end(checkpoints, parents) if len(all_weights) > len(checkpoints) else None
    plan, parent_config = parents_eval(cfg, checkpoints, parents) if evaluating else (None, None)
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"out={out} exists and is not empty; merge into a new folder")
    model = parent_config.model if evaluating else cfg.model  # scored like the parents: their lengths too
    with run.failure_marker():
        provenance = record_start(
            run_dir, {"eval": str(parent_config.eval.precision) if evaluating else None}
        )
        states, langs = {}, []
        for i, ckpt in enumerate(checkpoints):  # keyed by position: one checkpoint may be listed twice
            encoder = make(model.encoder)
            checkpoint_finetune(cfg, parents[i]).apply(encoder)
            langs += [x for x in train_langs_of(load_encoder_weights(encoder, ckpt)) or [] if x not in langs]
            states[f"{ckpt} (#{i + 1})"] = plain_state(encoder, ckpt)
        target = make(model.encoder)
        if start is not None:  # the parents pretrained before fine-tuning: that model is their start
            states[f"the model training started from ({start})"] = torch.load(
                start, map_location="cpu", weights_only=True
            )
        elif len(all_weights) > len(checkpoints):
            states["the pretrained backbone"] = plain_state(target, "the pretrained backbone")
        load_plain_state(target, weighted_average(states, all_weights, bool(cfg.extrapolate)))
        from mdr.modeling.export import export_encoder

        recipe = {
            "inputs": list(states),
            "weights": all_weights,
            "model": OmegaConf.to_container(model, resolve=True),
        }
        export_encoder(target, out, config=recipe)
        atomic_write_text(out / "merge.json", json.dumps(recipe, indent=2) + "\n")
        print(f"merged {len(states)} models -> {out}; score it with: python eval.py model.encoder.name={out}")
        if evaluating:
            row = {
                "kind": "soup" if name == "soup" else "average",
                "name": name,
                "weights": all_weights,
                "of": [str(c) for c in checkpoints],
                "cells": cells,
                "row": soup_row_key(parents),
                "seed": common_seed(parents),
            }
            folder = RunFolder(run_dir / "merged" / name)
            evaluate_merge(cfg, target, plan, parent_config, row, cell, langs, folder, provenance)
    return out


def checked_inputs(cfg: DictConfig) -> tuple[list[str], list[float]]:
    checkpoints = [str(c) for c in cfg.checkpoints or []]
    weights = [float(w) for w in cfg.weights or []]
    pretrained_weight = float(cfg.pretrained_weight)
    if not checkpoints:
        raise InputError("checkpoints=[...] is empty: name the train.py checkpoints to merge")
    if len(weights) != len(checkpoints):
        raise InputError(
            f"weights has {len(weights)} values for {len(checkpoints)} checkpoints; give one each"
        )
    all_weights = [*weights, *([pretrained_weight] if pretrained_weight else [])]
    check_weights(all_weights, len(all_weights), bool(cfg.extrapolate))
    for ckpt in checkpoints:
        check_torch_checkpoint(ckpt, CKPT_FIX)
    return checkpoints, all_weights


def check_mergeable(cfg: DictConfig, checkpoints: list[str], parents: list[dict]) -> None:
    """Refuse, before any model loads, a parent trained with bottleneck adapters (no plain weights to merge)."""
    for ckpt, parent in zip(checkpoints, parents):
        if str(checkpoint_finetune(cfg, parent).mode) == "adapter":
            raise InputError(
                f"{ckpt} was trained with finetune=adapter: weight-space merging is defined for full fine-tuning "
                "and LoRA only (an adapter has no pretrained counterpart); merge full or LoRA runs"
            )


def pretrained_end(checkpoints: list[str], parents: list[dict]) -> Path | None:
    """The pretrained end of a merge with ``pretrained_weight``: the backbone (None), or, where the parents
    pretrained before fine-tuning (``pretrain.enabled``), the model they started from (their ``start.pt``), the
    same one for every parent."""
    from mdr.data.content_hash import content_digest

    pretrained = [bool(((p or {}).get("pretrain") or {}).get("enabled")) for p in parents]
    if not any(pretrained):
        return None
    if not all(pretrained):
        mixed = checkpoints[pretrained.index(False)], checkpoints[pretrained.index(True)]
        raise InputError(
            f"{mixed[0]} did not pretrain, while {mixed[1]} did (pretrain.enabled): pretrained_weight needs the "
            "one model every parent started from; merge runs that started alike, or set pretrained_weight=0"
        )
    starts = [Path(ckpt).parent / START_STATE for ckpt in checkpoints]
    for ckpt, path in zip(checkpoints, starts):
        if not path.is_file():
            raise InputError(
                f"{ckpt} pretrained before fine-tuning, but {path} is missing (train.py writes it since issue "
                "#46): the model it started from is unknown; retrain it, or set pretrained_weight=0"
            )
    if len({content_digest(p) for p in starts}) > 1:
        raise InputError(
            f"the parents started from different pretrained models ({', '.join(map(str, starts))}): "
            "pretrained_weight is ambiguous; merge runs of one pretraining, or set pretrained_weight=0"
        )
    return starts[0]


def parent_cell(ckpt: str) -> list[str]:
    """The overrides of the training run that wrote ``ckpt`` (``<run>/checkpoints/best.ckpt``)."""
    run = RunFolder.of_checkpoint(ckpt)
    if not run.has_config:
        raise InputError(
            f"{ckpt} is not inside a train.py run folder (no {run.config_path}), so the merge "
            "cannot be scored like its parents or keyed by them; merge without evaluate/results_dir and score "
            "the export with eval.py"
        )
    return run.overrides()


def soup_row_key(parents: list[dict]) -> list[str]:
    """The report's base key of the merge (sampler, model, finetune): each part the parents' common value, or
    their values joined by ``+`` (``xx+xy``)."""
    keys = [row_key(p) for p in parents]
    return ["+".join(dict.fromkeys(parts)) for parts in zip(*keys)]


def common_seed(parents: list[dict]) -> int | None:
    """The parents' seed when they share one (a soup is paired with other recipes by it), else None."""
    seeds = {p.get("seed") for p in parents}
    return seeds.pop() if len(seeds) == 1 else None


def parents_eval(cfg: DictConfig, checkpoints: list[str], parents: list[dict | None]) -> tuple:
    """The evaluation settings and model every parent was scored with (they must agree), checked, with the data
    readable, and the first parent's config: a merge is compared with its parents, so it is scored exactly like
    them (same eval settings, same encoder lengths)."""
    sections = []
    for parent in parents:  # each checked to have a run folder (parent_cell) before this
        node = OmegaConf.create(parent)
        node.paths = cfg.paths  # this machine's data folder
        sections.append(node)

    def settings(node: DictConfig, part: str):
        """Eval settings as instantiated (a key a parent's config predates takes its default), the model as
        recorded."""
        return make(node.eval) if part == "eval" else OmegaConf.to_container(node.model, resolve=True)

    for part in ("eval", "model"):
        first = settings(sections[0], part)
        for ckpt, node in zip(checkpoints[1:], sections[1:]):
            if settings(node, part) != first:
                raise InputError(
                    f"{ckpt} was trained or evaluated with other {part} settings than {checkpoints[0]}; merge "
                    "runs of one sweep, or merge without evaluate/results_dir and score the export with eval.py"
                )
    return eval_plan(sections[0]), sections[0]


def evaluate_merge(
    cfg: DictConfig,
    encoder,
    plan: EvalPlan,
    parent_config: DictConfig,
    row: dict,
    cell: list[str],
    langs: list[str],
    folder: RunFolder,
    provenance: dict,
) -> dict:
    """Score the merged encoder into ``folder`` (a run folder of its own: config, overrides = its cell) and
    archive it under ``results_dir``. The recorded config is the first parent's with the merge described
    (``merged``); the seed is the parents' common seed, or none."""
    t0 = time.perf_counter()
    encoder.to("cuda" if torch.cuda.is_available() else "cpu")
    config = OmegaConf.to_container(parent_config, resolve=True)
    config["seed"] = row["seed"]
    config["merged"] = row
    record = {"config": config, "merged": row, "train": {"train_langs": langs}}
    report = score_as_row(encoder, plan, folder, cell, record, langs, provenance, cfg.results_dir)
    log.info(
        "merge %s: evaluated in %.0f s; %s", row["name"], time.perf_counter() - t0, format_headline(report)
    )
    print(format_headline(report))
    return report
