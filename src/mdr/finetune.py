"""Fine-tuning modes: which parameters of the encoder train.

- ``full``: every parameter (``model.encoder.freeze_embeddings`` still applies);
- ``frozen``: none; ``train.py`` skips training and evaluates (the zero-shot baseline row);
- ``lora``: low-rank adapters from ``peft`` on the attention / FFN projections, base weights frozen;
- ``adapter``: bottleneck adapters (``mdr.bottleneck``) after the FFN (and attention) output projections.
"""

from __future__ import annotations

import logging

from torch import nn

log = logging.getLogger(__name__)

MODES = ("full", "frozen", "lora", "adapter")

# LoRA target modules per architecture (HF ``config.model_type``), as peft names them
LORA_TARGETS = {
    "bert": ["query", "key", "value", "dense"],
    "xlm-roberta": ["query", "key", "value", "dense"],
    "roberta": ["query", "key", "value", "dense"],
    "mbart": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def apply_finetune(
    encoder,
    mode: str = "full",
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.1,
    target_modules: list[str] | str | None = "auto",
    reduction_factor: int = 16,
    non_linearity: str = "relu",
    placement: str = "pfeiffer",
    targets: list[str] | str | None = "auto",
) -> dict:
    """Set up ``encoder`` for ``mode`` in place; returns trainable / total parameter counts.

    ``r``, ``alpha``, ``dropout``, ``target_modules`` are LoRA's; ``reduction_factor``, ``non_linearity``,
    ``placement``, ``targets`` the bottleneck adapters'.
    """
    if mode not in MODES:
        raise ValueError(
            f"finetune.mode={mode!r} is unknown; choose one of {MODES} (finetune=full|frozen|lora|adapter)"
        )
    if mode == "frozen":
        for p in encoder.parameters():
            p.requires_grad_(False)
    elif mode == "lora":
        from peft import LoraConfig, get_peft_model

        model_type = encoder.model.config.model_type
        if target_modules in (None, "auto"):
            if model_type not in LORA_TARGETS:
                raise ValueError(
                    f"no default LoRA target modules for model type {model_type!r}: set "
                    "finetune.target_modules=[...] to Linear layer names of the model"
                )
            target_modules = LORA_TARGETS[model_type]
        targets = list(target_modules)
        linear_names = {
            name.rsplit(".", 1)[-1] for name, m in encoder.model.named_modules() if isinstance(m, nn.Linear)
        }
        missing = [t for t in targets if t not in linear_names]
        if missing:
            raise ValueError(
                f"LoRA target modules {missing} do not exist in {model_type!r}; its Linear layers are "
                f"{sorted(linear_names)}: fix finetune.target_modules"
            )
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
        encoder.model = get_peft_model(encoder.model, config)
    elif mode == "adapter":
        from mdr.bottleneck import add_adapters

        patterns = None if targets in (None, "auto") else list(targets)
        encoder.adapter_config = add_adapters(
            encoder.model, reduction_factor, non_linearity, placement, patterns
        )
    if mode in ("lora", "adapter") and getattr(encoder, "dense", None) is not None:
        encoder.dense.requires_grad_(False)  # a pooled-output head is part of the frozen base
    counts = {
        "mode": mode,
        "trainable": count_trainable(encoder),
        "total": sum(p.numel() for p in encoder.parameters()),
    }
    log.info("finetune=%s: %d trainable of %d parameters", mode, counts["trainable"], counts["total"])
    return counts
