"""Top-k with a fixed tie-break: score descending, then the document's id (issue #46).

``torch.topk`` and FAISS return tied scores in an order that depends on the kernel, the chunking and the
shard size, so the same model could rank two tied documents differently in-memory and sharded, and a tie at
the k-th place could let either document into the run. Here ties are broken by a per-document integer key,
by default the lexicographic rank of the docid (``docid_key``), so the ranking depends on the scores and the
ids only, not on where a document sits in the corpus file or which shard holds it (trec_eval also orders
tied documents by docid, descending; we keep ascending, the stable choice, and say so).

Rows whose k-th score is shared beyond the cut (rare with dense vectors; common with duplicated passages)
are fixed one by one; the common case costs one more place in ``topk`` and no pass over the score block.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mdr.runtime.errors import InputError

NO_DOC_KEY = torch.iinfo(torch.int64).max  # the key of a padding slot (index -1): after every document


def docid_key(doc_ids: Sequence[str]) -> np.ndarray:
    """Each document's position when the ids are sorted: the tie key of ``top_k`` (int64, one per doc)."""
    key = np.empty(len(doc_ids), dtype=np.int64)
    key[np.argsort(np.asarray(doc_ids, dtype=object), kind="stable")] = np.arange(len(doc_ids))
    return key


def _keys(idx: torch.Tensor, key: torch.Tensor | None) -> torch.Tensor:
    """The tie key of each index (padding -1 sorts last)."""
    if key is None:
        return torch.where(idx >= 0, idx, torch.full_like(idx, NO_DOC_KEY))
    return torch.where(idx >= 0, key[idx.clamp(min=0)], torch.full_like(idx, NO_DOC_KEY))


def order_rows(idx: torch.Tensor, vals: torch.Tensor, key: torch.Tensor | None = None):
    """Each row sorted by score descending, ties by key ascending (a FAISS result, a merged candidate list)."""
    by_key = _keys(idx, key).argsort(dim=1, stable=True)
    idx, vals = idx.gather(1, by_key), vals.gather(1, by_key)
    by_score = vals.argsort(dim=1, descending=True, stable=True)
    return idx.gather(1, by_score), vals.gather(1, by_score)


def top_k(
    scores: torch.Tensor, k: int, key: torch.Tensor | None = None, offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best columns of each row of ``scores`` (Q, N), ordered by score then key; indices are
    ``offset + column`` (a shard's first document), and ``key`` is indexed by those global indices."""
    k = min(k, scores.shape[1])
    deeper = min(k + 1, scores.shape[1])  # one more: a tie across the cut shows as an equal (k+1)-th score
    top = scores.topk(deeper, dim=1)
    if torch.isnan(top.values).any():  # topk ranks NaN above every number: a NaN anywhere reaches the top
        raise InputError(
            "retrieval scores contain NaN: the model produced NaN embeddings; check the checkpoint "
            "(or the eval precision) before searching"
        )
    idx, vals = top.indices[:, :k] + offset, top.values[:, :k].clone()
    kth = vals[:, -1:]
    tied_rows = [] if deeper == k else (top.values[:, k] == top.values[:, k - 1]).nonzero().flatten().tolist()
    for (
        r
    ) in tied_rows:  # the k-th score is shared past the cut: keep the tied documents with the smallest keys
        row = scores[r]
        above = (row > kth[r]).nonzero().flatten()
        tied = (row == kth[r]).nonzero().flatten()
        tied_keys = _keys(tied + offset, key)
        chosen = tied[tied_keys.argsort(stable=True)[: k - len(above)]]
        cols = torch.cat([above, chosen])
        idx[r], vals[r] = cols + offset, row[cols]
    return order_rows(idx, vals, key)


def merge_top_k(
    best: tuple[torch.Tensor, torch.Tensor],
    new: tuple[torch.Tensor, torch.Tensor],
    k: int,
    key: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two per-row candidate lists (indices, scores; padding -1 / -inf) merged into the ``k`` best, by the
    same order as ``top_k``: a streaming search over shards equals one search over the whole corpus."""
    idx = torch.cat([best[0], new[0]], dim=1)
    vals = torch.cat([best[1], new[1]], dim=1)
    idx, vals = order_rows(idx, vals, key)
    return idx[:, :k], vals[:, :k]
