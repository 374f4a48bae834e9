"""Fine-tuning modes: which parameters of the encoder train. One class per mode, each selected by its
config's ``_target_`` (``conf/finetune/``); ``mode`` is the label reports and checkpoint readers use.

- ``Full``: every parameter (``model.encoder.freeze_embeddings`` still applies);
- ``Frozen``: none; ``train.py`` skips training and evaluates (the zero-shot baseline row);
- ``LoRA``: low-rank adapters from ``peft`` on the attention / FFN projections, base weights frozen;
- ``Adapter``: bottleneck adapters (``mdr.modeling.bottleneck``) after the FFN (and attention) output
  projections, base weights frozen.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from torch import nn

from mdr.runtime.errors import InputError

log = logging.getLogger(__name__)

# LoRA target modules per architecture (HF ``config.model_type``), as peft names them
LORA_TARGETS = {
    "bert": ["query", "key", "value", "dense"],
    "xlm-roberta": ["query", "key", "value", "dense"],
    "roberta": ["query", "key", "value", "dense"],
    "mbart": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class FinetuneMode:
    """Sets an encoder up for one way of fine-tuning, in place (``apply``)."""

    mode: ClassVar[str]
    trains: ClassVar[bool] = True  # False: train.py evaluates without training
    freezes_base: ClassVar[bool] = False  # True: a pooled-output head (LaBSE's Dense) stays frozen too

    def __init__(self, mode: str | None = None):
        if mode is not None and mode not in MODES:
            raise InputError(
                f"finetune.mode={mode!r} is unknown; choose one of {sorted(MODES)} (finetune=full|frozen|lora|adapter)"
            )
        if mode not in (None, self.mode):
            raise InputError(
                f"finetune.mode={mode!r} does not match finetune._target_ {type(self).__name__} "
                f"(mode {self.mode!r}): select the mode with finetune={mode}"
            )

    def apply(self, encoder) -> dict:
        """Prepare ``encoder``; returns the trainable / total parameter counts (logged and recorded)."""
        self.prepare(encoder.model if hasattr(encoder, "model") else encoder, encoder)
        if self.freezes_base and getattr(encoder, "dense", None) is not None:
            encoder.dense.requires_grad_(False)
        counts = {
            "mode": self.mode,
            "trainable": count_trainable(encoder),
            "total": sum(p.numel() for p in encoder.parameters()),
        }
        log.info(
            "finetune=%s: %d trainable of %d parameters", self.mode, counts["trainable"], counts["total"]
        )
        return counts

    def prepare(self, model: nn.Module, encoder) -> None:
        """Mode-specific set-up of the backbone ``model`` (``encoder.model``)."""


class Full(FinetuneMode):
    mode = "full"


class Frozen(FinetuneMode):
    mode = "frozen"
    trains = False

    def prepare(self, model: nn.Module, encoder) -> None:
        for p in encoder.parameters():
            p.requires_grad_(False)


class LoRA(FinetuneMode):
    """peft LoRA: ``r``, ``alpha``, ``dropout``; ``target_modules`` ``auto`` picks them per architecture."""

    mode = "lora"
    freezes_base = True

    def __init__(
        self,
        r: int = 8,
        alpha: int = 16,
        dropout: float = 0.1,
        target_modules: list[str] | str | None = "auto",
        mode: str | None = None,
    ):
        super().__init__(mode)
        self.r, self.alpha, self.dropout, self.target_modules = r, alpha, dropout, target_modules

    def targets_for(self, model: nn.Module) -> list[str]:
        model_type = model.config.model_type
        targets = self.target_modules
        if targets in (None, "auto"):
            if model_type not in LORA_TARGETS:
                raise InputError(
                    f"no default LoRA target modules for model type {model_type!r}: set "
                    "finetune.target_modules=[...] to Linear layer names of the model"
                )
            targets = LORA_TARGETS[model_type]
        linear_names = {
            name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)
        }
        missing = [t for t in targets if t not in linear_names]
        if missing:
            raise InputError(
                f"LoRA target modules {missing} do not exist in {model_type!r}; its Linear layers are "
                f"{sorted(linear_names)}: fix finetune.target_modules"
            )
        return list(targets)

    def prepare(self, model: nn.Module, encoder) -> None:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.targets_for(model),
            bias="none",
        )
        encoder.model = get_peft_model(model, config)


class Adapter(FinetuneMode):
    """Bottleneck adapters: ``reduction_factor``, ``non_linearity``, ``placement`` (pfeiffer | houlsby),
    ``targets`` (``auto``: per architecture; or regexes over Linear module names)."""

    mode = "adapter"
    freezes_base = True

    def __init__(
        self,
        reduction_factor: int = 16,
        non_linearity: str = "relu",
        placement: str = "pfeiffer",
        targets: list[str] | str | None = "auto",
        mode: str | None = None,
    ):
        super().__init__(mode)
        self.reduction_factor, self.non_linearity = reduction_factor, non_linearity
        self.placement, self.targets = placement, targets

    def prepare(self, model: nn.Module, encoder) -> None:
        from mdr.modeling.bottleneck import add_adapters

        patterns = None if self.targets in (None, "auto") else list(self.targets)
        add_adapters(model, self.reduction_factor, self.non_linearity, self.placement, patterns)


MODES: dict[str, type[FinetuneMode]] = {c.mode: c for c in (Full, Frozen, LoRA, Adapter)}


def finetune_mode(settings: dict) -> FinetuneMode:
    """The mode of a ``finetune:`` config node without ``_target_`` (run folders written before one
    ``_target_`` per mode existed): ``{mode: lora, r: 8, ...}``."""
    settings = {k: v for k, v in dict(settings).items() if k != "_target_"}
    mode = settings.get("mode", "full")
    if mode not in MODES:
        raise InputError(
            f"finetune.mode={mode!r} is unknown; choose one of {sorted(MODES)} (finetune=full|frozen|lora|adapter)"
        )
    return MODES[mode](**settings)
