"""Readers for corpus-style benchmarks (MIRACL / BEIR layout): topics TSV, TREC qrels, corpus JSONL.

- topics: ``query_id<TAB>text`` per line
- qrels: ``query_id Q0 docid relevance`` (TREC); relevance 0 marks a judged non-relevant document
- corpus: JSON lines with ``docid`` (or ``_id``), ``text`` and optional ``title``

Scoring (nDCG@10, R@100) is ``mdr.eval.qrels``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mdr.data.errors import DataFormatError
from mdr.data.jsonl import iter_jsonl
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.inputs import read_text


@dataclass
class QrelsSet:
    name: str
    query_ids: list[str]
    query_texts: list[str]
    doc_ids: list[str]
    doc_texts: list[str]
    qrels: dict[str, dict[str, int]]


TOPICS_FIX = "topics are 'query_id<TAB>text' lines (UTF-8)"
QRELS_FIX = "qrels are TREC lines 'query_id Q0 docid relevance'"


def read_topics(path: str | Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for lineno, line in enumerate(read_text(path, "topics file", TOPICS_FIX).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataFormatError(f"{path}:{lineno}: expected 'query_id<TAB>text' (is this a topics file?)")
        out[parts[0]] = parts[1]
    return out


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for lineno, line in enumerate(read_text(path, "qrels file", QRELS_FIX).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise DataFormatError(
                f"{path}:{lineno}: expected 'query_id Q0 docid relevance' (TREC qrels; is this a qrels file?)"
            )
        try:
            out.setdefault(parts[0], {})[parts[2]] = int(parts[3])
        except ValueError as e:
            raise DataFormatError(
                f"{path}:{lineno}: relevance {parts[3]!r} is not an integer; expected 'query_id Q0 docid "
                "relevance' (TREC qrels; is this a qrels file?)"
            ) from e
    return out


def read_corpus_jsonl(path: str | Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    first_line: dict[str, int] = {}
    for lineno, row in iter_jsonl(path, "corpus file"):
        docid = row.get("docid", row.get("_id"))
        if docid is None or "text" not in row:
            raise DataFormatError(f"{path}:{lineno}: a corpus line needs 'docid' (or '_id') and 'text'")
        if str(docid) in first_line:
            raise DataFormatError(
                f"{path}:{lineno}: docid {docid!r} repeats line {first_line[str(docid)]}; docids must be unique"
            )
        first_line[str(docid)] = lineno
        ids.append(str(docid))
        title = row.get("title") or ""
        texts.append(f"{title} {row['text']}".strip() if title else row["text"])
    return ids, texts


def load_qrels_set(name: str, topics: str | Path, qrels: str | Path, corpus: str | Path) -> QrelsSet:
    for p in (topics, qrels, corpus):
        if not Path(p).is_file():
            raise MissingInputError(f"{name}: {p} does not exist; check the topics / qrels / corpus paths")
    t = read_topics(topics)
    q = read_qrels(qrels)
    qids = [i for i in t if i in q]
    if not qids:
        raise DataFormatError(
            f"{name}: topics {topics} and qrels {qrels} share no query id (e.g. {next(iter(t))!r} vs "
            f"{next(iter(q))!r}); they must be the same split of the same collection"
        )
    ids, texts = read_corpus_jsonl(corpus)
    return QrelsSet(name, qids, [t[i] for i in qids], ids, texts, {i: q[i] for i in qids})


def load_qrels_spec(spec: dict) -> QrelsSet:
    """A configured corpus-style set: ``{name, topics, qrels, corpus}`` files, or ``{name, hub: miracl, lang}``."""
    if spec.get("hub") == "miracl":
        return load_miracl_from_hub(spec["lang"], spec.get("split", "dev"))
    missing = [k for k in ("name", "topics", "qrels", "corpus") if not spec.get(k)]
    if missing:
        raise InputError(
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
