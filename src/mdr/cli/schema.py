"""Typed configs: the schemas Hydra composes the three entry points' configs against (structured configs in
Hydra's ConfigStore), so that a mistyped key or a value of the wrong type inside a nested setting is refused at
composition, before any data or model loads, by every entry point (``mdr.cli.entry`` shows Hydra's refusal as
one line). Every default of these settings lives here (or, for ``eval``, in ``mdr.eval.settings``); the YAML
files extend the schemas and say what each knob does. Ranges and the settings that take a mapping
(``eval.corpus_shards``, ``eval.attack``) are checked by :func:`check_settings` at start-up, before anything
loads. Configs read back from run folders (merge parents, the report) are read as they were written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from mdr.eval.settings import EvalSettings
from mdr.runtime.errors import InputError


@dataclass
class EvalNode(EvalSettings):
    """``eval:`` as a Hydra node: the settings plus what instantiates them."""

    _target_: str = "mdr.eval.suite.EvalSettings"  # the name configs have always recorded (re-exported there)
    _convert_: str = "all"


@dataclass
class ProgressSettings:
    """How long work shows progress (``mdr.runtime.progress``)."""

    mode: str = "auto"  # auto (a bar on a terminal, else lines) | bar | lines | none
    every_n_steps: int = 20  # training: a line every N optimiser steps ...
    every_s: float = (
        60.0  # ... or every S seconds, whichever comes first; also the period of evaluation lines
    )


@dataclass
class ComputeSettings:
    """How a training batch is computed (the same gradients either way)."""

    length_chunks: int = (
        4  # encode each batch in this many length-sorted chunks, each padded to its own longest
    )
    compile: Any = False  # torch.compile the backbone: true (inductor) or a backend name
    grad_cache: bool = False  # GradCache: same gradients, activation memory of one chunk (large batches)
    grad_cache_chunk: int = 32  # examples per GradCache chunk
    # fp32 on a CPU without AMX is slow: cap such a run at this many steps (null: no cap; a run that sets
    # trainer.max_steps itself is never capped)
    cpu_fp32_max_steps: int | None = 80


@dataclass
class MergeSettings:
    """Weight-space merging at the end of training (``mdr.modeling.merging``)."""

    wise: list[float] = field(default_factory=list)  # WiSE-FT rows: (1 - lambda) pretrained + lambda trained
    extrapolate: bool = False  # allow lambda outside [0, 1]


@dataclass
class PreemptionSettings:
    requeue: bool = False  # on SIGTERM also `scontrol requeue` the SLURM job (same folder: ckpt_path=auto)


@dataclass
class TrainConfig:
    """``conf/train.yaml``'s root: typed where a nested setting would otherwise be a dict read defensively."""

    seed: int = 0
    ckpt_path: Any = None
    log_batches: bool = False
    results_dir: Any = None
    compute: ComputeSettings = field(default_factory=ComputeSettings)
    merge: MergeSettings = field(default_factory=MergeSettings)
    preemption: PreemptionSettings = field(default_factory=PreemptionSettings)
    loss: Any = None
    pretrain: Any = None
    optim: Any = None
    checkpoint: Any = None
    export: Any = None
    paths: Any = None
    data: Any = None
    model: Any = None
    sampler: Any = None
    finetune: Any = None
    trainer: Any = None
    logger: Any = None
    eval: Any = None
    progress: Any = None


def register() -> None:
    """Make the schemas known to Hydra (called by each entry point before it composes)."""
    cs = ConfigStore.instance()
    cs.store(group="eval", name="schema", node=EvalNode)
    cs.store(group="progress", name="schema", node=ProgressSettings)
    cs.store(name="train_schema", node=TrainConfig)


# ---- start-up checks: ranges, and scalars of untyped groups that a user overrides by hand ----
# (key, type, lowest allowed, highest allowed, what the key is): checked when present
SCALARS = (
    ("data.datamodule.batch_size", int, 1, None, "examples per training batch"),
    ("data.datamodule.num_workers", int, 0, None, "DataLoader worker processes"),
    ("sampler.alpha", float, 0.0, 1.0, "the probability of an X-X batch"),
    ("trainer.max_steps", int, -1, None, "optimiser steps (-1: by epochs)"),
    ("trainer.max_epochs", int, 1, None, "epochs"),
    ("optim.lr", float, 0.0, None, "the learning rate"),
    ("optim.weight_decay", float, 0.0, None, "AdamW weight decay"),
    ("optim.warmup_ratio", float, 0.0, 1.0, "the share of steps with a rising learning rate"),
    ("compute.length_chunks", int, 1, None, "length-sorted chunks per batch"),
    ("compute.grad_cache_chunk", int, 1, None, "examples per GradCache chunk"),
    ("compute.cpu_fp32_max_steps", int, 1, None, "the fp32 CPU step cap (null: none)"),
    ("progress.every_n_steps", int, 1, None, "steps between progress lines"),
    ("progress.every_s", float, 0.0, None, "seconds between progress lines"),
)


def _number(value, kind: type, key: str, meaning: str):
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = float(value)
        if kind is int and number != int(number):
            raise ValueError
        return kind(number)
    except (TypeError, ValueError):
        raise InputError(
            f"{key}={value!r}: expected {'an integer' if kind is int else 'a number'} ({meaning})"
        ) from None


CHOICES = (("progress.mode", ("auto", "bar", "lines", "none")),)
POSITIVE = ("optim.lr", "progress.every_s")  # > low, not >=


def _bounds(key: str, low, high) -> str:
    if high is not None:
        return f"in [{low:g}, {high:g}]"
    return f"{'>' if key in POSITIVE else '>='} {low:g}"


def check_settings(cfg: DictConfig) -> None:
    """One line naming the key for a value out of range or of the wrong type, before anything loads."""
    for key, allowed in CHOICES:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value not in allowed:
            raise InputError(f"{key}={value!r}: choose one of {list(allowed)}")
    for key, kind, low, high, meaning in SCALARS:
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is None:
            continue
        number = _number(value, kind, key, meaning)
        below = number < low or (key in POSITIVE and number == low)
        if below or (high is not None and number > high):
            raise InputError(f"{key}={value!r}: must be {_bounds(key, low, high)} ({meaning})")
