"""Corpus-style benchmarks (MIRACL / BEIR layout): topics TSV, TREC qrels, corpus JSONL; nDCG@10, R@100.

- topics: ``query_id<TAB>text`` per line
- qrels: ``query_id Q0 docid relevance`` (TREC); relevance 0 marks a judged non-relevant document
- corpus: JSON lines with ``docid`` (or ``_id``), ``text`` and optional ``title``

nDCG uses linear gains (gain = relevance, as trec_eval) and a log2 discount; the ideal ranking is the
qrels' own gains sorted. Queries without a relevant document are skipped and counted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{path}:{lineno}: not valid JSON ({e})") from e
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


def load_miracl_from_hub(lang: str, split: str = "dev") -> QrelsSet:  # pragma: no cover - needs the hub
    """MIRACL topics + qrels (``miracl/miracl``) and corpus (``miracl/miracl-corpus``) from the hub."""
    from datasets import load_dataset

    topics = load_dataset("miracl/miracl", lang, split=split, trust_remote_code=True)
    corpus = load_dataset("miracl/miracl-corpus", lang, split="train", trust_remote_code=True)
    qrels: dict[str, dict[str, int]] = {}
    for row in topics:
        for p in row["positive_passages"]:
            qrels.setdefault(row["query_id"], {})[p["docid"]] = 1
        for p in row["negative_passages"]:
            qrels.setdefault(row["query_id"], {}).setdefault(p["docid"], 0)
    return QrelsSet(f"miracl-{lang}", list(topics["query_id"]), list(topics["query"]), list(corpus["docid"]),
                    [f"{t} {x}".strip() for t, x in zip(corpus["title"], corpus["text"])], qrels)


def evaluate_qrels(qs: QrelsSet, query_emb: np.ndarray, doc_emb: np.ndarray, depth: int = 100,
                   chunk: int = 256) -> dict:
    """Exact search over the corpus; per-query nDCG@10 and R@100 means, the top-``depth`` run."""
    if query_emb.shape[0] != len(qs.query_ids) or doc_emb.shape[0] != len(qs.doc_ids):
        raise ValueError(f"{qs.name}: embeddings ({query_emb.shape[0]}, {doc_emb.shape[0]}) do not match "
                         f"{len(qs.query_ids)} queries / {len(qs.doc_ids)} documents")
    d = torch.from_numpy(np.ascontiguousarray(doc_emb, dtype=np.float32))
    k = min(depth, len(qs.doc_ids))
    run: dict[str, dict[str, float]] = {}
    ndcg, recall, skipped = [], [], 0
    for a in range(0, len(qs.query_ids), chunk):
        q = torch.from_numpy(np.ascontiguousarray(query_emb[a : a + chunk], dtype=np.float32))
        top = (q @ d.T).topk(k, dim=1)
        for r, qid in enumerate(qs.query_ids[a : a + chunk]):
            docs = [qs.doc_ids[j] for j in top.indices[r].tolist()]
            run[qid] = dict(zip(docs, top.values[r].tolist()))
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
    return {"dataset": qs.name, "n_queries": len(ndcg), "n_skipped": skipped, "n_docs": len(qs.doc_ids),
            "ndcg@10": float(np.mean(ndcg)) if ndcg else None, "r@100": float(np.mean(recall)) if recall else None,
            "run": run}
