"""Corpus-style benchmarks (MIRACL / BEIR layout): topics TSV, TREC qrels, corpus JSONL; nDCG@10, R@100.

- topics: ``query_id<TAB>text`` per line
- qrels: ``query_id Q0 docid relevance`` (TREC); relevance 0 marks a judged non-relevant document
- corpus: JSON lines with ``docid`` (or ``_id``), ``text`` and optional ``title``

nDCG uses linear gains (gain = relevance, as trec_eval) and a log2 discount; the ideal ranking is the
qrels' own gains sorted. Queries without a relevant document are skipped and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mdr.data.jsonl import iter_jsonl
from mdr.data.lareqa import DataFormatError


@dataclass
class QrelsSet:
    name: str
    query_ids: list[str]
    query_texts: list[str]
    doc_ids: list[str]
    doc_texts: list[str]
    qrels: dict[str, dict[str, int]]


def read_topics(path: str | Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataFormatError(f"{path}:{lineno}: expected 'query_id<TAB>text'")
        out[parts[0]] = parts[1]
    return out


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise DataFormatError(f"{path}:{lineno}: expected 'query_id Q0 docid relevance' (TREC qrels)")
        try:
            out.setdefault(parts[0], {})[parts[2]] = int(parts[3])
        except ValueError as e:
            raise DataFormatError(f"{path}:{lineno}: relevance {parts[3]!r} is not an integer") from e
    return out


def read_corpus_jsonl(path: str | Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for lineno, row in iter_jsonl(path):
        docid = row.get("docid", row.get("_id"))
        if docid is None or "text" not in row:
            raise DataFormatError(f"{path}:{lineno}: a corpus line needs 'docid' (or '_id') and 'text'")
        ids.append(str(docid))
        title = row.get("title") or ""
        texts.append(f"{title} {row['text']}".strip() if title else row["text"])
    return ids, texts


def load_qrels_set(name: str, topics: str | Path, qrels: str | Path, corpus: str | Path) -> QrelsSet:
    for p in (topics, qrels, corpus):
        if not Path(p).is_file():
            raise FileNotFoundError(f"{name}: {p} does not exist; check the topics / qrels / corpus paths")
    t = read_topics(topics)
    q = read_qrels(qrels)
    ids, texts = read_corpus_jsonl(corpus)
    qids = [i for i in t if i in q]
    return QrelsSet(name, qids, [t[i] for i in qids], ids, texts, {i: q[i] for i in qids})


def load_qrels_spec(spec: dict) -> QrelsSet:
    """A configured corpus-style set: ``{name, topics, qrels, corpus}`` files, or ``{name, hub: miracl, lang}``."""
    if spec.get("hub") == "miracl":
        return load_miracl_from_hub(spec["lang"], spec.get("split", "dev"))
    missing = [k for k in ("name", "topics", "qrels", "corpus") if not spec.get(k)]
    if missing:
        raise ValueError(
            f"qrels set {spec} lacks {missing}: give name, topics, qrels and corpus paths, or hub: miracl"
        )
    return load_qrels_set(spec["name"], spec["topics"], spec["qrels"], spec["corpus"])


def load_miracl_from_hub(lang: str, split: str = "dev") -> QrelsSet:  # pragma: no cover - needs the hub
    """MIRACL from the hub: topics and qrels files of ``miracl/miracl``, the corpus ``miracl/miracl-corpus``
    (``miracl-corpus-v1.0-<lang>/docs-*.jsonl.gz``: docid, title, text). Users without the hub pass local
    files instead (``{name, topics, qrels, corpus}``)."""
    from datasets import load_dataset
    from huggingface_hub import hf_hub_download

    base = f"miracl-v1.0-{lang}"
    topics = hf_hub_download("miracl/miracl", f"{base}/topics/topics.{base}-{split}.tsv", repo_type="dataset")
    qrels = hf_hub_download("miracl/miracl", f"{base}/qrels/qrels.{base}-{split}.tsv", repo_type="dataset")
    corpus = load_dataset(
        "json",
        data_files=f"hf://datasets/miracl/miracl-corpus/miracl-corpus-v1.0-{lang}/*.jsonl.gz",
        split="train",
    )
    t, q = read_topics(topics), read_qrels(qrels)
    qids = [i for i in t if i in q]
    return QrelsSet(
        f"miracl-{lang}",
        qids,
        [t[i] for i in qids],
        list(corpus["docid"]),
        [f"{ti} {x}".strip() for ti, x in zip(corpus["title"], corpus["text"])],
        {i: q[i] for i in qids},
    )


SEARCHES = ("torch", "faiss")


def exact_top_k(
    query_emb: np.ndarray, doc_emb: np.ndarray, k: int, search: str = "torch", chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k: torch matmul in query chunks, or a FAISS ``IndexFlatIP`` (large corpora)."""
    q = np.ascontiguousarray(query_emb, dtype=np.float32)
    d = np.ascontiguousarray(doc_emb, dtype=np.float32)
    if search == "faiss":
        import faiss

        index = faiss.IndexFlatIP(d.shape[1])
        index.add(d)
        scores, idx = index.search(q, k)
        return idx, scores
    if search != "torch":
        raise ValueError(f"eval.search={search!r}; choose one of {SEARCHES}")
    dt = torch.from_numpy(d)
    idx = np.empty((len(q), k), dtype=np.int64)
    scores = np.empty((len(q), k), dtype=np.float32)
    for a in range(0, len(q), chunk):
        top = (torch.from_numpy(q[a : a + chunk]) @ dt.T).topk(k, dim=1)
        idx[a : a + chunk], scores[a : a + chunk] = top.indices.numpy(), top.values.numpy()
    return idx, scores


def evaluate_qrels(
    qs: QrelsSet, query_emb: np.ndarray, doc_emb: np.ndarray, depth: int = 100, search: str = "torch"
) -> dict:
    """Exact search over the corpus; per-query nDCG@10 and R@100 means, the top-``depth`` run."""
    if query_emb.shape[0] != len(qs.query_ids) or doc_emb.shape[0] != len(qs.doc_ids):
        raise ValueError(
            f"{qs.name}: embeddings ({query_emb.shape[0]}, {doc_emb.shape[0]}) do not match "
            f"{len(qs.query_ids)} queries / {len(qs.doc_ids)} documents"
        )
    k = min(max(depth, 100), len(qs.doc_ids))
    top_idx, top_scores = exact_top_k(query_emb, doc_emb, k, search)
    run: dict[str, dict[str, float]] = {}
    ndcg, recall, skipped = [], [], 0
    for a in range(0, len(qs.query_ids), 256):
        for r, qid in enumerate(qs.query_ids[a : a + 256], start=a):
            docs = [qs.doc_ids[j] for j in top_idx[r].tolist()]
            run[qid] = dict(zip(docs[:depth], top_scores[r][:depth].tolist()))
            judged = qs.qrels.get(qid, {})
            relevant = {doc for doc, rel in judged.items() if rel > 0}
            if not relevant:
                skipped += 1
                continue
            gains = [judged.get(doc, 0) for doc in docs[:10]]
            dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)
            ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
            ndcg.append(dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal)))
            recall.append(len(relevant & set(docs[:100])) / len(relevant))
    return {
        "dataset": qs.name,
        "n_queries": len(ndcg),
        "n_skipped": skipped,
        "n_docs": len(qs.doc_ids),
        "ndcg@10": float(np.mean(ndcg)) if ndcg else None,
        "r@100": float(np.mean(recall)) if recall else None,
        "run": run,
    }
