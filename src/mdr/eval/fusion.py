"""Reciprocal-rank fusion of a dense model and BM25 (``eval.fusion``), scored as a row of its own.

RRF (Cormack, Clarke and Buettcher, SIGIR 2009): a candidate's fused score is ``sum_i 1 / (k + rank_i)`` over the
fused rankings, ``k = 60`` by default. A ranking's ties share their best rank (BM25 gives every candidate without
a shared token the same score 0), so the fusion does not depend on the order candidates happen to be stored in.

The fusion needs each model's full ranking of every pool; a training run does not keep those (nor its
checkpoints, in a sweep), so the run that trains a model fuses it: ``train.py ... eval.fusion={k: 60}`` scores
the trained model, then the fused row into ``<run>/fused/rrf/`` (archived as the cell ``fusion=rrf``);
``eval.py eval.fusion={k: 60}`` does the same for any model it loads (the untrained backbone included).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mdr.eval.scoring import LexicalRanker, dense_scorer, is_ranker
from mdr.runtime.errors import InputError

ROW_NAME = "rrf"  # <run>/fused/rrf, results cell fusion=rrf


@dataclass
class FusionSettings:
    """``eval.fusion``: RRF's constant and the BM25 it fuses with (``conf/model/bm25.yaml``'s keys)."""

    k: int = 60
    bm25: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: dict) -> FusionSettings:
        from mdr.eval.settings import typed_from_mapping

        settings = typed_from_mapping(cls, dict(cfg), "eval.fusion")
        if isinstance(settings.k, bool) or not isinstance(settings.k, int) or settings.k < 1:
            raise InputError(f"eval.fusion.k={settings.k!r}: RRF's constant is an integer >= 1 (60 is usual)")
        return settings

    def bm25_model(self):
        from mdr.modeling.lexical import BM25

        try:
            return BM25(**dict(self.bm25))
        except TypeError as e:
            raise InputError(f"eval.fusion.bm25: {e}; keys as in conf/model/bm25.yaml's encoder") from None


def best_ranks(scores: torch.Tensor) -> torch.Tensor:
    """1-based rank of every column in each row, ties sharing the best rank of their group."""
    descending = (-scores).sort(dim=1).values.contiguous()
    return torch.searchsorted(descending, (-scores).contiguous(), side="left") + 1


def rrf(score_matrices: list[torch.Tensor], k: int) -> torch.Tensor:
    """Fused scores of equal-shape (queries, candidates) score matrices."""
    shapes = {tuple(s.shape) for s in score_matrices}
    if len(shapes) != 1:
        raise InputError(
            f"fusion: the rankings to fuse cover different queries or candidates: shapes {shapes}"
        )
    # float64: sums of reciprocal ranks in the hundreds differ by less than float32 resolves
    return sum(1.0 / (k + best_ranks(s).to(torch.float64)) for s in score_matrices)


class FusedScorer:
    """Pool scores of several scorers fused by RRF."""

    def __init__(self, scorers: list, k: int):
        self.scorers, self.k = scorers, k

    def scores(self, rows: np.ndarray, pool: str) -> torch.Tensor:
        return rrf([s.scores(rows, pool) for s in self.scorers], self.k)


def check_fusable(model) -> None:
    """Refuse, before any scoring, what cannot be fused with BM25: saved embeddings (no model to rank a pool
    with) and a model that ranks without vectors itself (model=bm25)."""
    if model is None:
        raise InputError(
            "eval.fusion ranks with the model itself; saved embeddings= cannot be fused with BM25"
        )
    if not hasattr(model, "encode") or is_ranker(model):
        raise InputError(
            f"eval.fusion fuses a dense model with BM25; {getattr(model, 'name', 'this model')} ranks without "
            "vectors itself (model=bm25): drop eval.fusion, or evaluate a dense model"
        )


class FusedRanker:
    """A dense model and BM25 fused by RRF, as a :class:`mdr.eval.scoring.Ranker`."""

    trainable = False

    def __init__(self, dense, bm25, k: int = 60):
        check_fusable(dense)
        self.dense_model, self.bm25, self.k = dense, LexicalRanker(bm25), k
        self.name = f"{getattr(dense, 'name', 'dense')} + {bm25.name}, RRF k={k}"
        self.path = getattr(dense, "path", None)

    def check_languages(self, langs: list[str]) -> dict:
        return self.bm25.check_languages(langs)

    def record(self, langs: list[str]) -> dict:
        return {"kind": "fusion", "method": "rrf", "k": self.k, "dense": getattr(self.dense_model, "name", None),
                "bm25": self.bm25.record(langs)}  # fmt: skip

    def pool_scorer(self, rs, pools, encode):
        return FusedScorer([dense_scorer(rs, pools, encode), self.bm25.pool_scorer(rs, pools)], self.k)

    def bitext_ranks(self, ts, lang: str, encode) -> dict[str, np.ndarray]:
        from mdr.eval.tatoeba import pair_scores, ranks_from_scores

        pair = ts.languages[lang]
        emb = encode([*pair.texts, *pair.english], "query", f"{ts.name}: {lang}")
        n = len(pair.texts)
        dense = pair_scores(emb[:n], emb[n:])
        lexical = self.bm25.bitext_scores(ts, lang)
        return ranks_from_scores(*(rrf([d, x], self.k) for d, x in zip(dense, lexical)))
