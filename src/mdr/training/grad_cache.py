"""GradCache (Gao et al., 2021): the in-batch contrastive loss of a large batch in bounded activation memory.

1. Embed queries and passages chunk by chunk without building graphs, remembering each chunk's RNG state.
2. Compute the loss on the detached embeddings and backpropagate to them only (cheap: no encoder).
3. Re-embed each chunk with a graph, replaying its RNG state (same dropout masks), and backpropagate the
   cached embedding gradients through it. Peak activation memory is one chunk's, the gradients are the
   full batch's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mdr.runtime.errors import InputError


class _RngState:
    """CPU and CUDA RNG states captured before a chunk's first forward, to replay its dropout exactly."""

    def __init__(self, device: torch.device):
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        self.device = device

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


def _chunks(inputs: dict[str, torch.Tensor], size: int) -> list[dict[str, torch.Tensor]]:
    """Consecutive chunks of ``size`` rows, without the columns that are padding in every row of the chunk."""
    n = next(iter(inputs.values())).shape[0]
    out = []
    for a in range(0, n, size):
        chunk = {k: v[a : a + size] for k, v in inputs.items()}
        if "attention_mask" in chunk:
            cols = chunk["attention_mask"].bool().any(0)
            chunk = {k: v[:, cols] for k, v in chunk.items()}
        out.append(chunk)
    return out


def grad_cache_step(
    encode: Callable[..., torch.Tensor],
    loss_fn: Callable[..., torch.Tensor],
    batch: dict,
    chunk_size: int,
    backward: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Accumulate the gradients of ``loss_fn`` over ``batch`` into the encoder; return the (detached) loss.

    ``backward`` performs a backward pass (Lightning's ``manual_backward`` under a Trainer, so precision
    plugins and DDP hooks apply); plain ``Tensor.backward`` otherwise.
    """
    if chunk_size < 1:
        raise InputError(f"loss.grad_cache_chunk={chunk_size} must be >= 1")
    backward = backward or (lambda t: t.backward())
    sides = {"query": _chunks(batch["query"], chunk_size), "passage": _chunks(batch["passage"], chunk_size)}
    states: dict[str, list[_RngState]] = {"query": [], "passage": []}
    reps: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for side, chunks in sides.items():
            out = []
            for chunk in chunks:
                states[side].append(_RngState(next(iter(chunk.values())).device))
                out.append(encode(**chunk))
            reps[side] = torch.cat(out)
    q = reps["query"].detach().requires_grad_()
    p = reps["passage"].detach().requires_grad_()
    loss = loss_fn(q, p, batch["query_ids"], batch["cand_answer_ids"], batch["labels"])
    q_grad, p_grad = torch.autograd.grad(loss, [q, p])
    rng_after = torch.get_rng_state()
    for side, grads in (("query", q_grad), ("passage", p_grad)):
        start = 0
        for chunk, state in zip(sides[side], states[side]):
            state.restore()
            emb = encode(**chunk)
            n = emb.shape[0]
            backward(
                (emb * grads[start : start + n].to(emb.dtype)).sum()
            )  # d(loss)/d(params) via the cached grads
            start += n
    torch.set_rng_state(rng_after)
    return loss.detach()
