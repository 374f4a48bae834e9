"""The one place that decides numeric precision, for training (Lightning's ``precision``) and encoding
(an autocast dtype): ``auto`` means bf16 where the hardware has it (CUDA GPUs with bf16, CPUs with
AVX512-BF16) and fp32 otherwise."""

from __future__ import annotations

import torch

FP32_NAMES = ("32", "fp32", "32-true")
BF16_NAMES = ("bf16", "bf16-mixed")


def cpu_supports_bf16() -> bool:
    try:
        return bool(torch.cpu._is_avx512_bf16_supported())
    except AttributeError:
        return False


def trainer_precision(precision: str, accelerator: str) -> str:
    """Lightning's ``precision`` for ``trainer.precision``: ``auto`` -> bf16-mixed (16-mixed on GPUs without
    bf16) where supported, else 32-true; any other value is passed through."""
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_supports_bf16() else "32-true"


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for encoding on ``device`` (None: plain fp32) for ``eval.precision``."""
    if precision in FP32_NAMES:
        return None
    if precision in BF16_NAMES:
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"eval.precision={precision!r}; choose auto, bf16 or fp32")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else None
