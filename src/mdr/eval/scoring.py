"""Who ranks a LAReQA set's pools: a dense model's embeddings, or a model that scores without vectors (BM25).

The evaluation (``mdr.eval.lareqa``) asks a :class:`PoolScorer` for the scores of some queries against one pool
(a language's candidates, or ``all``: every language's, in ``Pools`` order) and ranks them. A dense model's
scores are dot products, the same numbers whichever pool they are sliced for; BM25's depend on the pool it
indexes (document frequencies and lengths), so it builds one index per pool.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

ALL = "all"


class PoolScorer(Protocol):
    def scores(self, rows: np.ndarray, pool: str) -> torch.Tensor:
        """(len(rows), pool size) scores of the queries at ``rows`` (indices into ``rs.query_*``) against
        ``pool``'s candidates, in ``Pools`` order."""
        ...


class DenseScorer:
    """Dot products with the multilingual pool, computed once per query block and sliced per language."""

    def __init__(self, query_emb: torch.Tensor, pools):
        self.q, self.pools = query_emb, pools
        self._last: tuple[np.ndarray, torch.Tensor] | None = None

    def scores(self, rows: np.ndarray, pool: str) -> torch.Tensor:
        if self._last is None or self._last[0] is not rows:
            self._last = (rows, (self.q[rows] @ self.pools.all_emb.T).cpu())
        every = self._last[1]
        return every if pool == ALL else every[:, self.pools.columns(pool)]


class LexicalScorer:
    """A lexical model (``mdr.modeling.lexical.BM25``) with one index per pool, built on first use."""

    def __init__(self, model, rs, pools):
        self.model, self.rs, self.pools = model, rs, pools
        self.analyzers = model.check_languages(sorted(set(rs.langs) | set(rs.query_langs)))
        by_lang: dict[str, list[int]] = {}
        for i, lang in enumerate(rs.query_langs):
            by_lang.setdefault(lang, []).append(i)
        self.query_tokens: list[list[str]] = [[] for _ in rs.query_texts]
        for lang, idx in by_lang.items():
            for i, tokens in zip(idx, model.analyze([rs.query_texts[i] for i in idx], lang)):
                self.query_tokens[i] = tokens
        self.cand_tokens: list[list[str]] = [[] for _ in rs.cand_texts]
        for y in pools.langs:
            idx = pools.idx[y]
            for g, tokens in zip(idx, model.analyze([rs.cand_texts[g] for g in idx], y)):
                self.cand_tokens[int(g)] = tokens
        self._indexes: dict[str, object] = {}

    def _index(self, pool: str):
        if pool not in self._indexes:
            order = self.pools.all_idx if pool == ALL else self.pools.idx[pool]
            self._indexes[pool] = self.model.index([self.cand_tokens[int(g)] for g in order])
        return self._indexes[pool]

    def scores(self, rows: np.ndarray, pool: str) -> torch.Tensor:
        return self.model.score(self._index(pool), [self.query_tokens[int(r)] for r in rows])
