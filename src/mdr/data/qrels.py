"""Readers for corpus-style benchmarks (MIRACL / BEIR layout): topics TSV, TREC qrels, corpus JSONL.

- topics: ``query_id<TAB>text`` per line
- qrels: ``query_id Q0 docid relevance`` (TREC); relevance 0 marks a judged non-relevant document
- corpus: JSON lines with ``docid`` (or ``_id``), ``text`` and optional ``title``

Scoring (nDCG@10, R@100) is ``mdr.eval.qrels``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mdr.data.cache_folder import fingerprint
from mdr.data.corpus_texts import FORMAT_VERSION as CORPUS_FORMAT
from mdr.data.corpus_texts import cached_corpus_texts, corpus_rows, read_corpus_texts
from mdr.data.errors import DataFormatError
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.inputs import read_text


@dataclass
class QrelsSet:
    name: str
    query_ids: list[str]
    query_texts: list[str]
    doc_ids: Sequence[str]  # lists, or memory-mapped columns (corpus_texts.TextColumn)
    doc_texts: Sequence[str]
    qrels: dict[str, dict[str, int]]
    # what was left out when the files were read, and why (recorded in metrics.json, said once on the terminal)
    skipped: dict[str, int] = field(default_factory=dict)


log = logging.getLogger(__name__)

TOPICS_FIX = "topics are 'query_id<TAB>text' lines (UTF-8)"
QRELS_FIX = "qrels are TREC lines 'query_id Q0 docid relevance'"


def read_topics(path: str | Path) -> dict[str, str]:
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(read_text(path, "topics file", TOPICS_FIX).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataFormatError(f"{path}:{lineno}: expected 'query_id<TAB>text' (is this a topics file?)")
        if parts[0] in first_line:
            raise DataFormatError(
                f"{path}:{lineno}: query id {parts[0]!r} repeats line {first_line[parts[0]]}; query ids must be "
                "unique (one of the two would silently win)"
            )
        first_line[parts[0]] = lineno
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
    """Docids and texts as Python lists (small corpora; ``corpus_texts.read_corpus_texts`` maps large ones)."""
    ids, texts = [], []
    first_line: dict[str, int] = {}
    for row in corpus_rows(Path(path)):
        if row["docid"] in first_line:
            raise DataFormatError(
                f"{path}:{row['line']}: docid {row['docid']!r} repeats line {first_line[row['docid']]}; docids "
                "must be unique"
            )
        first_line[row["docid"]] = row["line"]
        ids.append(row["docid"])
        texts.append(row["text"])
    return ids, texts


def load_qrels_set(
    name: str, topics: str | Path, qrels: str | Path, corpus: str | Path, cache_dir: str | Path | None = None
) -> QrelsSet:
    """Topics and qrels as Python objects (thousands of queries); the corpus memory-mapped from ``cache_dir``
    (converted there once), or read into lists without one."""
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
    ids, texts = read_corpus_texts(corpus, cache_dir) if cache_dir else read_corpus_jsonl(corpus)
    judged = {doc for i in qids for doc in q[i]}
    present = {
        doc for doc in ids if doc in judged
    }  # one pass over the docids: the judged set is the small one
    if not present:
        raise DataFormatError(
            f"{name}: none of the {len(judged)} judged documents of {qrels} is in the corpus {corpus} (e.g. "
            f"{next(iter(judged))!r}); the qrels and the corpus must come from the same collection"
        )
    skipped = {
        "topics without judgements": len(t) - len(qids),
        "judged queries without a topic": len([i for i in q if i not in t]),
        "judged documents absent from the corpus": len(judged) - len(present),
    }
    skipped = {why: n for why, n in skipped.items() if n}
    if skipped:
        log.warning(
            "%s: left out on reading: %s", name, ", ".join(f"{n} {why}" for why, n in skipped.items())
        )
    return QrelsSet(name, qids, [t[i] for i in qids], ids, texts, {i: q[i] for i in qids}, skipped)


def load_qrels_spec(spec: dict, cache_dir: str | Path | None = None) -> QrelsSet:
    """A configured corpus-style set: ``{name, topics, qrels, corpus}`` files, or ``{name, hub: miracl, lang}``;
    with ``cache_dir`` the corpus is memory-mapped from there (converted once)."""
    if spec.get("hub") == "miracl":
        return load_miracl_from_hub(spec["lang"], spec.get("split", "dev"), cache_dir)
    missing = [k for k in ("name", "topics", "qrels", "corpus") if not spec.get(k)]
    if missing:
        raise InputError(
            f"qrels set {spec} lacks {missing}: give name, topics, qrels and corpus paths, or hub: miracl"
        )
    return load_qrels_set(spec["name"], spec["topics"], spec["qrels"], spec["corpus"], cache_dir)


def hub_revision(repo_id: str) -> str:  # pragma: no cover - needs the hub
    """The dataset repository's current commit on the hub (the revision key of its cache)."""
    from huggingface_hub import HfApi

    try:
        return HfApi().dataset_info(repo_id).sha
    except Exception as err:  # offline: a cache built online is not found under this key (said, not hidden)
        log.warning(
            "could not read %s's revision from the hub (%s); its cache is keyed 'unknown'", repo_id, err
        )
        return "unknown"


def load_miracl_from_hub(
    lang: str, split: str = "dev", cache_dir: str | Path | None = None
) -> QrelsSet:  # pragma: no cover - needs the hub
    """MIRACL from the hub: topics and qrels files of ``miracl/miracl``, the corpus ``miracl/miracl-corpus``
    (``miracl-corpus-v1.0-<lang>/docs-*.jsonl.gz``: docid, title, text), streamed once into the memory-mapped
    cache when ``cache_dir`` is set (MIRACL-de: 15.9 M passages). Users without the hub pass local files
    instead (``{name, topics, qrels, corpus}``)."""
    from datasets import load_dataset
    from huggingface_hub import hf_hub_download

    base = f"miracl-v1.0-{lang}"
    topics = hf_hub_download("miracl/miracl", f"{base}/topics/topics.{base}-{split}.tsv", repo_type="dataset")
    qrels = hf_hub_download("miracl/miracl", f"{base}/qrels/qrels.{base}-{split}.tsv", repo_type="dataset")
    files = f"hf://datasets/miracl/miracl-corpus/miracl-corpus-v1.0-{lang}/*.jsonl.gz"
    t, q = read_topics(topics), read_qrels(qrels)
    qids = [i for i in t if i in q]

    def rows():
        corpus = load_dataset("json", data_files=files, split="train")
        line = 0
        for batch in corpus.iter(batch_size=10_000):
            for docid, title, text in zip(batch["docid"], batch["title"], batch["text"]):
                line += 1
                yield {"line": line, "docid": str(docid), "text": f"{title} {text}".strip()}

    if cache_dir:
        revision = hub_revision(
            "miracl/miracl-corpus"
        )  # the hub's commit: a re-published corpus, a new cache
        key = fingerprint([], {"reader": "miracl-hub", "lang": lang, "revision": revision}, CORPUS_FORMAT)
        ids, texts = cached_corpus_texts(rows, cache_dir, key, f"miracl-corpus-{lang}", files)
    else:
        docs = list(rows())
        ids, texts = [d["docid"] for d in docs], [d["text"] for d in docs]
    return QrelsSet(f"miracl-{lang}", qids, [t[i] for i in qids], ids, texts, {i: q[i] for i in qids})
