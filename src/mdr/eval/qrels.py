"""Scoring of corpus-style benchmarks (MIRACL / BEIR layout, read by ``mdr.data.qrels``): exact search,
nDCG@10 and R@100 per query, averaged.

nDCG uses linear gains (gain = relevance, as trec_eval) and a log2 discount (``mdr.eval.metrics.ndcg``);
the ideal ranking is the qrels' own gains sorted. Queries without a relevant document are skipped and
counted.
"""

from __future__ import annotations

import numpy as np
import torch

from mdr.data.qrels import QrelsSet
from mdr.eval.metrics import ndcg
from mdr.eval.topk import docid_key, order_rows, top_k
from mdr.runtime.errors import InputError

SEARCHES = ("torch", "faiss")


def exact_top_k(
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    k: int,
    search: str = "torch",
    chunk: int = 256,
    tie_key: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k: torch matmul in query chunks, or a FAISS ``IndexFlatIP`` (large corpora).
    Ties go by ``tie_key`` (``mdr.eval.topk.docid_key``; else the corpus position); FAISS's list is re-sorted
    by the same rule, but which tied document FAISS lets in at the k-th place is its own choice."""
    key = None if tie_key is None else torch.from_numpy(np.asarray(tie_key, dtype=np.int64))
    q = np.ascontiguousarray(query_emb, dtype=np.float32)
    d = np.ascontiguousarray(doc_emb, dtype=np.float32)
    if search == "faiss":
        import faiss

        index = faiss.IndexFlatIP(d.shape[1])
        index.add(d)
        scores, idx = index.search(q, k)
        idx, scores = order_rows(torch.from_numpy(idx), torch.from_numpy(scores), key)
        return idx.numpy(), scores.numpy()
    if search != "torch":
        raise InputError(f"eval.search={search!r}; choose one of {SEARCHES}")
    dt = torch.from_numpy(d)
    idx = np.empty((len(q), k), dtype=np.int64)
    scores = np.empty((len(q), k), dtype=np.float32)
    for a in range(0, len(q), chunk):
        top_idx, top_scores = top_k(torch.from_numpy(q[a : a + chunk]) @ dt.T, k, key)
        idx[a : a + chunk], scores[a : a + chunk] = top_idx.numpy(), top_scores.numpy()
    return idx, scores


def evaluate_qrels(
    qs: QrelsSet, query_emb: np.ndarray, doc_emb: np.ndarray, depth: int = 100, search: str = "torch"
) -> dict:
    """Exact search over the corpus; per-query nDCG@10 and R@100 means, the top-``depth`` run."""
    if query_emb.shape[0] != len(qs.query_ids) or doc_emb.shape[0] != len(qs.doc_ids):
        raise InputError(
            f"{qs.name}: embeddings ({query_emb.shape[0]}, {doc_emb.shape[0]}) do not match "
            f"{len(qs.query_ids)} queries / {len(qs.doc_ids)} documents"
        )
    k = min(max(depth, 100), len(qs.doc_ids))
    top_idx, top_scores = exact_top_k(query_emb, doc_emb, k, search, tie_key=docid_key(qs.doc_ids))
    return score_ranking(qs, top_idx, top_scores, depth)


def score_ranking(qs: QrelsSet, top_idx: np.ndarray, top_scores: np.ndarray, depth: int = 100) -> dict:
    """nDCG@10 and R@100 from each query's ranked documents (indices into ``qs.doc_ids``, best first, at least
    100 deep or the whole corpus), and the top-``depth`` run: shared by in-memory and sharded search."""
    run: dict[str, dict[str, float]] = {}
    ndcgs, recall, skipped = [], [], 0
    for a in range(0, len(qs.query_ids), 256):
        for r, qid in enumerate(qs.query_ids[a : a + 256], start=a):
            found = top_idx[r] >= 0  # FAISS pads a short IVF result with -1: no document, not the last one
            docs = [qs.doc_ids[j] for j in top_idx[r][found].tolist()]
            run[qid] = dict(zip(docs[:depth], top_scores[r][found][:depth].tolist()))
            judged = qs.qrels.get(qid, {})
            relevant = {doc for doc, rel in judged.items() if rel > 0}
            if not relevant:
                skipped += 1
                continue
            ndcgs.append(ndcg([judged.get(doc, 0) for doc in docs], list(judged.values()), k=10))
            recall.append(len(relevant & set(docs[:100])) / len(relevant))
    return {
        "dataset": qs.name,
        "n_queries": len(ndcgs),
        "n_skipped": skipped,
        "skipped_on_load": dict(qs.skipped),
        "n_docs": len(qs.doc_ids),
        "ndcg@10": float(np.mean(ndcgs)) if ndcgs else None,
        "r@100": float(np.mean(recall)) if recall else None,
        "run": run,
    }
