"""Ranking metrics from the ranks of each query's relevant candidates.

Everything is computed from exact ranks over the whole pool, so AP needs no cutoff.

**Tie rule (pessimistic).** A non-relevant candidate whose score *equals* a relevant one's is ranked
ahead of it. A degenerate model that gives every candidate the same score therefore gets the worst
ranks, never perfect ones. (trec_eval breaks ties by docid instead; on real float embeddings ties
practically never happen and the two agree, which the tests check against ranx.)

With relevant items sorted by score, the j-th one (1-based) has rank ``j + #{non-relevant with score >=
its score}``; ties among relevant items do not change any metric here.
"""

from __future__ import annotations

import math

import torch

from mdr.runtime.errors import InputError

PAD = -1


def count_at_least(scores: torch.Tensor, values: torch.Tensor, chunk_rows: int = 256) -> torch.Tensor:
    """``out[q, r] = #{n : scores[q, n] >= values[q, r]}``, O(N log R) per row.

    Each score is bucketed among the row's sorted values (``searchsorted``); a suffix sum of the bucket
    histogram then counts, for every value, the scores at or above it (ties included).
    """
    Q, N = scores.shape
    R = values.shape[1]
    if R == 1:  # one relevant item (mono / cross pools): a direct comparison is cheapest
        return (scores >= values.to(scores.dtype)).sum(1, keepdim=True)
    out = torch.empty((Q, R), dtype=torch.long)
    for a in range(0, Q, chunk_rows):
        s = scores[a : a + chunk_rows]
        v = values[a : a + chunk_rows].to(s.dtype)
        v_sorted = v.sort(dim=1).values.contiguous()
        bucket = torch.searchsorted(v_sorted, s.contiguous(), right=True)  # #{values <= score}
        hist = torch.zeros((s.shape[0], R + 1), dtype=torch.long).scatter_add_(
            1, bucket, torch.ones_like(bucket)
        )
        at_least = hist.flip(1).cumsum(1).flip(1)  # at_least[k] = #{scores whose bucket >= k}
        last_tie = torch.searchsorted(
            v_sorted, v.contiguous(), right=True
        )  # each value's last position when sorted
        out[a : a + chunk_rows] = at_least.gather(1, last_tie)
    return out


def relevant_ranks(scores: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Ranks (1-based, float) of the relevant candidates, sorted ascending, ``inf`` for padding.

    ``scores``: (Q, N); ``relevant``: (Q, R) candidate indices, padded with -1.
    """
    valid = relevant >= 0
    rel_scores = scores.gather(1, relevant.clamp(min=0))
    rel_scores = torch.where(valid, rel_scores, torch.full_like(rel_scores, float("inf")))
    # sort relevant by score, descending; padding (+inf placeholder) goes last
    key = torch.where(valid, rel_scores, torch.full_like(rel_scores, float("-inf")))
    order = key.argsort(dim=1, descending=True, stable=True)
    sorted_scores = rel_scores.gather(1, order)
    sorted_valid = valid.gather(1, order)
    ge_all = count_at_least(scores, sorted_scores)
    # relevant candidates with score >= s_j (counted among the valid ones)
    ge_rel = ((key.unsqueeze(1) >= sorted_scores.unsqueeze(2)) & valid.unsqueeze(1)).sum(-1)
    nonrel_ge = ge_all - ge_rel
    j = torch.arange(1, relevant.shape[1] + 1).expand_as(nonrel_ge)
    ranks = (j + nonrel_ge).double()
    return torch.where(sorted_valid, ranks, torch.full_like(ranks, math.inf))


def metrics_from_ranks(ranks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-query metrics from sorted relevant ranks (Q, R) (``inf`` = padding). Queries need R >= 1."""
    n_rel = torch.isfinite(ranks).sum(1).double()
    if (n_rel == 0).any():
        raise InputError("metrics need at least one relevant candidate per query; skip such queries first")
    j = torch.arange(1, ranks.shape[1] + 1, dtype=torch.float64).expand_as(ranks)
    prec_at_rel = torch.where(torch.isfinite(ranks), j / ranks, torch.zeros_like(ranks))
    first = ranks[:, 0]
    in10 = (ranks <= 10).double()
    in20 = ranks <= 20
    dcg10 = (in10 / torch.log2(torch.where(torch.isfinite(ranks), ranks, torch.ones_like(ranks)) + 1)).sum(1)
    ideal = (1.0 / torch.log2(torch.arange(2, 12, dtype=torch.float64))).cumsum(0)
    idcg10 = ideal[(n_rel.clamp(max=10) - 1).long()]
    return {
        "map": prec_at_rel.sum(1) / n_rel,
        "map@20": torch.where(in20, prec_at_rel, torch.zeros_like(prec_at_rel)).sum(1) / n_rel,
        "p@1": (first == 1).double(),
        "mrr@5": torch.where(first <= 5, 1.0 / first, torch.zeros_like(first)),
        "mrr": 1.0 / first,
        "r@10": in10.sum(1) / n_rel,
        "ndcg@10": dcg10 / idcg10,
    }


def ndcg(ranked_gains: list[float], judged_gains: list[float], k: int = 10) -> float:
    """nDCG@k with linear gains (gain = relevance, as trec_eval) and a log2 discount; the ideal ranking is
    the judged gains sorted. ``metrics_from_ranks`` computes the binary-relevance case of this same
    definition from ranks, vectorised (a test checks that the two agree)."""
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(ranked_gains[:k]) if g > 0)
    ideal = sorted((g for g in judged_gains if g > 0), reverse=True)[:k]
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def rank_distance(ranks: torch.Tensor) -> torch.Tensor:
    """Language bias: max rank - min rank of a query's relevant candidates (0 with one relevant)."""
    finite = torch.isfinite(ranks)
    last = torch.where(finite, ranks, torch.zeros_like(ranks)).max(1).values
    return last - ranks[:, 0]
