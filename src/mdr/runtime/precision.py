"""The one place that decides numeric precision, for training (Lightning's ``precision``) and encoding
(an autocast dtype): ``auto`` means bf16 where the hardware runs it fast (CUDA GPUs with bf16, CPUs with
AMX) and fp32 otherwise.

Why AMX and not AVX512-BF16 for CPUs: measured on a 2-core Intel Xeon with AVX512-BF16 but no AMX
(torch 2.15), a 2048x384 @ 384x1536 matmul took 16.1 ms in bf16 against 9.1 ms in fp32, and a training
step of the offline default 4.5 s against 2.8 s: bf16 there is slower, not faster."""

from __future__ import annotations

import torch

from mdr.runtime.errors import InputError

FP32_NAMES = ("32", "fp32", "32-true")
BF16_NAMES = ("bf16", "bf16-mixed")


def cpu_bf16_is_fast() -> bool:
    """The CPU has AMX tiles (Sapphire Rapids and later), where bf16 matrix products beat fp32."""
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def trainer_precision(precision: str, accelerator: str) -> str:
    """Lightning's ``precision`` for ``trainer.precision``: ``auto`` -> bf16-mixed (16-mixed on GPUs without
    bf16) where it is fast, else 32-true; any other value is passed through."""
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_bf16_is_fast() else "32-true"


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for encoding on ``device`` (None: plain fp32) for ``eval.precision``."""
    if precision in FP32_NAMES:
        return None
    if precision in BF16_NAMES:
        return torch.bfloat16
    if precision != "auto":
        raise InputError(f"eval.precision={precision!r}; choose auto, bf16 or fp32")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_bf16_is_fast() else None
