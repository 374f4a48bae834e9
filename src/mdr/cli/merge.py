"""``merge.py``: a weighted average of train.py checkpoints (and optionally the pretrained backbone) of one
model, written as an export folder that ``SentenceTransformer(path)`` and ``eval.py model.encoder.name=<path>``
load. Every input is checked before any model loads, and nothing is written before every check passed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mdr.cli.common import failure_marker, make
from mdr.cli.evaluate import CKPT_FIX, checkpoint_finetune, training_config
from mdr.modeling.merging import check_weights, load_plain_state, plain_state, weighted_average
from mdr.runtime.errors import InputError
from mdr.runtime.files import atomic_write_text
from mdr.runtime.inputs import check_torch_checkpoint
from mdr.training.checkpointing import load_encoder_weights

log = logging.getLogger(__name__)


def merge(cfg: DictConfig) -> Path:
    checkpoints = [str(c) for c in cfg.checkpoints or []]
    weights = [float(w) for w in cfg.weights or []]
    pretrained_weight = float(cfg.get("pretrained_weight") or 0.0)
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
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"out={out} exists and is not empty; merge into a new folder")
    run_dir = Path(cfg.paths.output_dir)
    with failure_marker(run_dir):
        states = {}
        for i, ckpt in enumerate(checkpoints):  # keyed by position: one checkpoint may be listed twice
            encoder = make(cfg.model.encoder)
            checkpoint_finetune(cfg, training_config(ckpt)).apply(encoder)
            load_encoder_weights(encoder, ckpt)
            states[f"{ckpt} (#{i + 1})"] = plain_state(encoder, ckpt)
        target = make(cfg.model.encoder)
        if pretrained_weight:
            states["the pretrained backbone"] = plain_state(target, "the pretrained backbone")
        load_plain_state(target, weighted_average(states, all_weights, bool(cfg.extrapolate)))
        from mdr.modeling.export import export_encoder

        recipe = {
            "inputs": list(states),
            "weights": all_weights,
            "model": OmegaConf.to_container(cfg.model, resolve=True),
        }
        export_encoder(target, out, config=recipe)
        atomic_write_text(out / "merge.json", json.dumps(recipe, indent=2) + "\n")
    print(f"merged {len(states)} models -> {out}; score it with: python eval.py model.encoder.name={out}")
    return out
