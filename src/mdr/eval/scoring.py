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


class Ranker(Protocol):
    """A model the evaluation asks for scores, never for vectors (BM25, a fusion of BM25 and a dense model):
    ``pool_scorer`` for LAReQA pools, ``bitext_ranks`` for a Tatoeba file pair. ``encode`` is the evaluation's
    own encoder call (batch size, precision, progress), for rankers that hold a dense model."""

    name: str

    def check_languages(self, langs: list[str]) -> dict: ...

    def record(self, langs: list[str]) -> dict: ...

    def pool_scorer(self, rs, pools, encode) -> PoolScorer: ...

    def bitext_ranks(self, ts, lang: str, encode) -> dict[str, np.ndarray]: ...


def as_ranker(model) -> Ranker | None:
    """The :class:`Ranker` the evaluation asks for scores: the model itself (a fusion), a lexical model
    wrapped (BM25), or None for a dense model (its vectors are scored here)."""
    if callable(getattr(model, "pool_scorer", None)):
        return model
    if getattr(model, "scores_without_vectors", False):
        return LexicalRanker(model)
    return None


def is_ranker(model) -> bool:
    return as_ranker(model) is not None


class LexicalRanker:
    """A lexical model (``mdr.modeling.lexical.BM25``: analyze, index, score) as a :class:`Ranker`: one
    index per LAReQA pool, and each side of a Tatoeba pair indexed on its own."""

    def __init__(self, model):
        self.model, self.name, self.path = model, model.name, getattr(model, "path", None)

    def check_languages(self, langs: list[str]) -> dict:
        return self.model.check_languages(langs)

    def record(self, langs: list[str]) -> dict:
        return self.model.record(langs)

    def pool_scorer(self, rs, pools, encode=None) -> LexicalScorer:
        return LexicalScorer(self.model, rs, pools)

    def bitext_scores(self, ts, lang: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(sentences x English lines, English lines x sentences) scores, each against the other side's index."""
        pair, m = ts.languages[lang], self.model
        src, eng = m.analyze(list(pair.texts), lang), m.analyze(list(pair.english), "eng")
        return m.score(m.index(eng), src), m.score(m.index(src), eng)

    def bitext_ranks(self, ts, lang: str, encode=None) -> dict[str, np.ndarray]:
        from mdr.eval.tatoeba import ranks_from_scores

        return ranks_from_scores(*self.bitext_scores(ts, lang))


def dense_scorer(rs, pools, encode) -> DenseScorer:
    """A dense model's scorer from the evaluation's encoder call (queries and candidates as ``EvalRun`` encodes
    them); ``pools`` gains the candidate embeddings."""
    q = encode(rs.query_texts, "query", f"{rs.name}: queries")
    c = encode(rs.cand_texts, "passage", f"{rs.name}: candidates", contexts=rs.cand_contexts)
    c = torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))
    pools.all_emb = c[torch.from_numpy(pools.all_idx)]
    return DenseScorer(torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32)), pools)


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
