"""LAReQA scoring: monolingual X->X, cross-lingual X->Y and multilingual X->all from cached embeddings.

The relevant set of a query in a pool is the answer candidate of its id in every language of that pool.
A query with no relevant candidate in a pool is skipped for that setting and counted.
Headline numbers are macro averages: mono = mean over the X->X settings, cross = mean over the X->Y
settings, multi = mean over query languages of X->all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from mdr.data.corpus import RetrievalSet
from mdr.eval.answer_em import EM_KS, AnswerMatcher
from mdr.eval.metrics import PAD, metrics_from_ranks, rank_distance, relevant_ranks
from mdr.eval.scoring import ALL, DenseScorer, PoolScorer
from mdr.runtime.errors import InputError

METRICS = ("map", "p@1", "mrr@5", "r@10", "map@20", "ndcg@10")
EM_METRICS = tuple(f"em@{k}" for k in EM_KS)  # answer text in the top k (sets with answer texts only)

# called per setting with (setting, query uids, pool candidate uids, top indices (Q, k), top scores (Q, k), relevant (Q, R) pool indices)
RunWriter = Callable[[str, list[str], list[str], np.ndarray, np.ndarray, np.ndarray], None]


@dataclass
class LareqaResult:
    dataset: str
    langs: list[str]
    n_queries: int
    n_candidates: int
    pairs: dict[str, dict] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    seen_langs: list[str] | None = None
    # per setting: the scored queries' rows in rs.query_* and their relevant ranks (Q, R), 0 = padding
    query_rows: dict[str, np.ndarray] = field(default_factory=dict)
    ranks: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "languages": self.langs,
            "seen_languages": self.seen_langs,
            "n_queries": self.n_queries,
            "n_candidates": self.n_candidates,
            "n_settings": {
                k: sum(1 for p in self.pairs.values() if p["type"] == k) for k in ("mono", "cross", "multi")
            },
            "summary": self.summary,
            "pairs": self.pairs,
            "skipped": self.skipped,
        }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _summarise(pairs: dict[str, dict], keep: Callable[[dict], bool]) -> dict:
    out = {}
    for kind in ("mono", "cross", "multi"):
        rows = [p for p in pairs.values() if p["type"] == kind and keep(p) and p["n_queries"] > 0]
        out[kind] = {m: _mean([p[m] for p in rows]) for m in METRICS}
        out[kind].update({m: _mean([p[m] for p in rows]) for m in EM_METRICS if rows and m in rows[0]})
        out[kind]["n_settings"] = len(rows)
        if kind == "multi":
            out[kind]["rank_distance"] = _mean([p["rank_distance"] for p in rows])
    return out


class Pools:
    """The candidate pools of a retrieval set: one per language, and the multilingual pool (every
    language's candidates, grouped by language), with maps from global candidate index to pool position."""

    def __init__(self, rs: RetrievalSet, cand_emb: torch.Tensor | None = None):
        self.langs = rs.langs
        cand_langs = np.asarray(rs.cand_langs)
        self.idx = {y: np.flatnonzero(cand_langs == y) for y in self.langs}
        self.all_idx = np.concatenate([self.idx[y] for y in self.langs])
        self.local = {y: {int(g): i for i, g in enumerate(self.idx[y])} for y in self.langs}
        self.all_local = {int(g): i for i, g in enumerate(self.all_idx)}
        self.lang_of_all = cand_langs[self.all_idx]
        self.all_emb = (  # multilingual order, once (dense models; a lexical scorer has no embeddings)
            cand_emb[torch.from_numpy(self.all_idx).to(cand_emb.device)] if cand_emb is not None else None
        )
        sizes = [len(self.idx[y]) for y in self.langs[:-1]]
        self.offsets = dict(zip(self.langs, np.cumsum([0] + sizes).tolist()))
        # answer EM@k needs the gold answer texts (LAReQA files have them; sets built from a corpus do not)
        self.matcher = AnswerMatcher(rs.cand_texts, rs.cand_langs, rs.answer_text) if rs.answer_text else None

    def columns(self, y: str) -> slice:
        """Language ``y``'s columns in scores against the multilingual pool."""
        return slice(self.offsets[y], self.offsets[y] + len(self.idx[y]))

    def relevant_in(self, rs: RetrievalSet, y: str, ids: list[str]) -> np.ndarray:
        """(Q,) position of each id's answer in ``y``'s pool, PAD where it has none."""
        return np.array([self.local[y].get(rs.answer_of.get((y, i), -1), PAD) for i in ids], dtype=np.int64)

    def relevant_in_all(self, rs: RetrievalSet, ids: list[str]) -> np.ndarray:
        """(Q, languages) positions of each id's answers in the multilingual pool, PAD where missing."""
        rel = np.full((len(ids), len(self.langs)), PAD, dtype=np.int64)
        for r, i in enumerate(ids):
            for c, y in enumerate(self.langs):
                g = rs.answer_of.get((y, i))
                if g is not None:
                    rel[r, c] = self.all_local[g]
        return rel


def evaluate_lareqa(
    rs: RetrievalSet,
    query_emb: np.ndarray | None,
    cand_emb: np.ndarray | None,
    seen_langs: list[str] | None = None,
    run_writer: RunWriter | None = None,
    run_kinds: tuple[str, ...] = ("mono", "cross", "multi"),
    run_depth: int = 100,
    device: str = "cpu",
    ranker=None,
    encode=None,
) -> LareqaResult:
    """Score every setting of ``rs`` from embeddings aligned with ``rs.query_*`` and ``rs.cand_*``, or, with
    ``ranker`` (a model that scores without vectors: ``mdr.eval.scoring.Ranker``), from its pool scores."""
    if ranker is not None:
        pools = Pools(rs)
        scorer = ranker.pool_scorer(rs, pools, encode)
    else:
        _check_shapes(rs, query_emb, cand_emb)
        q_emb = torch.from_numpy(np.ascontiguousarray(query_emb, dtype=np.float32)).to(device)
        c_emb = torch.from_numpy(np.ascontiguousarray(cand_emb, dtype=np.float32)).to(device)
        pools = Pools(rs, c_emb)
        scorer = DenseScorer(q_emb, pools)
    q_langs = np.asarray(rs.query_langs)
    result = LareqaResult(
        rs.name, list(rs.langs), len(rs.query_ids), len(rs.cand_uids), seen_langs=seen_langs
    )
    skipped: dict[str, int] = {}
    writer = (run_writer, run_kinds, run_depth)
    for x in rs.langs:
        qi = np.flatnonzero(q_langs == x)
        if len(qi):
            _score_query_language(rs, pools, x, qi, scorer, result, skipped, writer)
    result.skipped = {
        "total": int(sum(skipped.values())),
        "by_setting": {k: v for k, v in skipped.items() if v},
    }
    result.summary = _summarise(result.pairs, lambda p: True)
    if seen_langs is not None:
        seen = set(seen_langs)
        result.summary["seen"] = _summarise(
            result.pairs, lambda p: p["query_lang"] in seen and p["pool"] in seen | {"all"}
        )
        result.summary["unseen"] = _summarise(
            result.pairs,
            lambda p: p["query_lang"] not in seen or (p["pool"] != "all" and p["pool"] not in seen),
        )
    return result


def _check_shapes(rs: RetrievalSet, query_emb: np.ndarray, cand_emb: np.ndarray) -> None:
    if query_emb.shape[0] != len(rs.query_ids) or cand_emb.shape[0] != len(rs.cand_uids):
        raise InputError(
            f"embeddings do not match {rs.name}: {query_emb.shape[0]} query rows for {len(rs.query_ids)} queries, "
            f"{cand_emb.shape[0]} candidate rows for {len(rs.cand_uids)} candidates; re-encode this dataset"
        )
    if query_emb.ndim != 2 or cand_emb.ndim != 2 or query_emb.shape[1] != cand_emb.shape[1]:
        raise InputError(f"embedding shapes {query_emb.shape} and {cand_emb.shape} must be (n, d) with one d")


def _score_query_language(
    rs, pools: Pools, x: str, qi: np.ndarray, scorer: PoolScorer, result, skipped, writer
) -> None:
    """Every setting with query language ``x``: x->y for each pool language y, then x->all."""
    run_writer, run_kinds, run_depth = writer
    ids = [rs.query_ids[i] for i in qi]
    uids = [f"{x}:{i}" for i in ids]  # rs.query_uids of these queries
    for y in pools.langs:
        kind = "mono" if y == x else "cross"
        name = f"{x}->{y}"
        rel = pools.relevant_in(rs, y, ids)
        keep = np.flatnonzero(rel >= 0)
        skipped[name] = int(len(ids) - len(keep))
        s = scorer.scores(qi, y)[keep]
        result.pairs[name], ranks = _score(
            kind, x, y, s, torch.from_numpy(rel[keep]).view(-1, 1), skipped[name]
        )
        _keep_ranks(result, name, qi[keep], ranks)
        if pools.matcher is not None:
            top = s.topk(min(max(EM_KS), s.shape[1]), dim=1).indices.numpy()
            result.pairs[name].update(pools.matcher.row([ids[k] for k in keep], pools.idx[y][top]))
        if run_writer is not None and kind in run_kinds and len(keep):
            q_uids = [uids[k] for k in keep]
            c_uids = [rs.cand_uids[g] for g in pools.idx[y]]
            _write_run(run_writer, name, q_uids, c_uids, s, rel[keep].reshape(-1, 1), run_depth)
    # multilingual pool: every language at once; relevant = the id's answer in each language
    rel = pools.relevant_in_all(rs, ids)
    keep = np.flatnonzero((rel >= 0).any(1))
    name = f"{x}->all"
    skipped[name] = int(len(ids) - len(keep))
    s = scorer.scores(qi, ALL)[keep]
    row, ranks = _score("multi", x, "all", s, torch.from_numpy(rel[keep]), skipped[name])
    row["rank_distance"] = float(rank_distance(ranks).mean()) if len(keep) else None
    _keep_ranks(result, name, qi[keep], ranks)
    top = s.topk(min(10, s.shape[1]), dim=1).indices.numpy()
    if pools.matcher is not None:
        row.update(pools.matcher.row([ids[k] for k in keep], pools.all_idx[top]))
    row["top10_lang_share"] = (
        {y: float(np.mean(pools.lang_of_all[top] == y)) for y in pools.langs} if len(keep) else {}
    )
    result.pairs[name] = row
    if run_writer is not None and "multi" in run_kinds and len(keep):
        q_uids = [uids[k] for k in keep]
        c_uids = [rs.cand_uids[g] for g in pools.all_idx]
        _write_run(run_writer, name, q_uids, c_uids, s, rel[keep], run_depth)


def _keep_ranks(result: LareqaResult, name: str, rows: np.ndarray, ranks: torch.Tensor | None) -> None:
    """Per-query ranks for paired significance tests (``per_query.npz``); integers, 0 for padding."""
    if ranks is None:
        return
    result.query_rows[name] = rows.astype(np.int32)
    result.ranks[name] = torch.nan_to_num(ranks, posinf=0.0).to(torch.int32).numpy()


def _score(
    kind: str, x: str, y: str, scores: torch.Tensor, rel: torch.Tensor, n_skipped: int
) -> tuple[dict, torch.Tensor | None]:
    """Mean metrics of one setting, and the per-query relevant ranks they came from."""
    row: dict = {
        "type": kind,
        "query_lang": x,
        "pool": y,
        "n_queries": int(scores.shape[0]),
        "n_skipped": n_skipped,
        "pool_size": int(scores.shape[1]),
    }
    if scores.shape[0] == 0:
        row.update({m: None for m in METRICS})
        return row, None
    ranks = relevant_ranks(scores, rel)
    per_query = metrics_from_ranks(ranks)
    row.update({m: float(per_query[m].mean()) for m in METRICS})
    return row, ranks


def _write_run(
    writer: RunWriter,
    name: str,
    q_uids: list[str],
    c_uids: list[str],
    scores: torch.Tensor,
    rel: np.ndarray,
    depth: int,
) -> None:
    k = min(depth, scores.shape[1]) if depth > 0 else scores.shape[1]
    top = scores.topk(k, dim=1)
    writer(name, q_uids, c_uids, top.indices.numpy(), top.values.numpy(), rel)
