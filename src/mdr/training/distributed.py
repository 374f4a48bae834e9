"""Distributed helpers, in one place: gathers for the in-batch loss (with and without gradients), rank, and
the gradient averaging GradCache does itself under DDP. Each is the identity without a process group."""

from __future__ import annotations

import torch


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    return torch.distributed.get_rank() if _distributed() else 0


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank, keeping the autograd graph (identity without DDP)."""
    if not _distributed() or torch.distributed.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    if not _distributed() or torch.distributed.get_world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(out, x)
    return torch.cat(out, dim=0)


def average_gradients(params, world_size: int) -> None:
    """All-reduce and average the gradients of ``params`` over ranks in one flat buffer (what DDP does)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
