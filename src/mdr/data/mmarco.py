"""mMARCO (``unicamp-dl/mmarco``): MS MARCO translated into 13+ languages, ids shared across languages.

Read with HF ``datasets`` from the hub repository's TSV files, or from a local directory with the same
layout (``root`` may be ``hf://datasets/unicamp-dl/mmarco`` or a path):

- ``data/google/queries/train/{language}_queries.train.tsv``: ``qid<TAB>text``
- ``data/google/collections/{language}_collection.tsv``: ``pid<TAB>text``
- ``data/triples.train.ids.small.tsv``: ``qid<TAB>positive pid<TAB>negative pid``

A training example is (query id, language): the query, its positive passage and the triple's
negatives, all in that language; the query id is the parallel id.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from mdr.data.arrow_store import build_in_memory, cached_corpus, fingerprint
from mdr.data.corpus import ParallelCorpus
from mdr.runtime.errors import InputError

log = logging.getLogger(__name__)

HUB_ROOT = "hf://datasets/unicamp-dl/mmarco"
# ISO code -> mMARCO file-name language
LANGUAGE_NAMES = {
    "ar": "arabic",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fr": "french",
    "hi": "hindi",
    "id": "indonesian",
    "it": "italian",
    "ja": "japanese",
    "nl": "dutch",
    "pt": "portuguese",
    "ru": "russian",
    "vi": "vietnamese",
    "zh": "chinese",
}


def _read_tsv(path: str, columns: list[str]):
    """A TSV through ``datasets``. A local file is re-read, never taken from ``datasets``' own cache, which is
    keyed on path and modification time (a same-size rewrite with the old mtime would be served stale); this
    runs only when our content-keyed cache misses."""
    from datasets import Features, Value, load_dataset

    local = not path.startswith("hf://")
    return load_dataset(
        "csv",
        data_files=path,
        sep="\t",
        column_names=columns,
        split="train",
        quoting=3,
        features=Features({c: Value("string") for c in columns}),
        keep_default_na=False,
        download_mode="force_redownload" if local else None,
    )


def read_mmarco(
    langs: list[str],
    root: str = HUB_ROOT,
    max_queries: int | None = 10000,
    negatives_per_query: int = 1,
    cache_dir: str | Path | None = None,
) -> ParallelCorpus:
    """The training examples of ``langs``. With ``cache_dir`` the joined examples are written once as
    memory-mapped Arrow (``arrow_store``) and later starts map them; without, they are built in memory."""
    unknown = [lang for lang in langs if lang not in LANGUAGE_NAMES]
    if unknown:
        raise InputError(f"mMARCO has no language(s) {unknown}; available: {sorted(LANGUAGE_NAMES)}")
    source = f"mMARCO {root}"
    if cache_dir is None:
        return build_in_memory(_rows(langs, root, max_queries, negatives_per_query), source, "mmarco")
    local = [] if root.startswith("hf://") else [Path(p) for p in source_files(root, langs)]
    settings = {"reader": "mmarco", "root": root, "langs": sorted(langs), "max_queries": max_queries}
    settings["negatives_per_query"] = negatives_per_query
    key = fingerprint(local, settings)
    return cached_corpus(
        lambda: _rows(langs, root, max_queries, negatives_per_query), cache_dir, key, source, "mmarco"
    )


def source_files(root: str, langs: list[str]) -> list[str]:
    """Every file the rows are read from: the triples, and each language's queries and collection (all part
    of the cache key: an edited collection gets a new cache)."""
    files = [f"{root}/data/triples.train.ids.small.tsv"]
    for lang in sorted(langs):
        name = LANGUAGE_NAMES[lang]
        files += [
            f"{root}/data/google/queries/train/{name}_queries.train.tsv",
            f"{root}/data/google/collections/{name}_collection.tsv",
        ]
    return files


def _rows(langs: list[str], root: str, max_queries: int | None, negatives_per_query: int) -> Iterator[dict]:
    """(query, positive, negatives) rows per language, joined from the triples and the language's files."""
    triples = _read_tsv(f"{root}/data/triples.train.ids.small.tsv", ["qid", "pos", "neg"])
    positives: dict[str, str] = {}
    negatives: dict[str, list[str]] = defaultdict(list)
    for row in triples:
        if row["qid"] not in positives:
            if max_queries is not None and len(positives) >= max_queries:
                continue
            positives[row["qid"]] = row["pos"]
        if len(negatives[row["qid"]]) < negatives_per_query:
            negatives[row["qid"]].append(row["neg"])
    wanted_pids = set(positives.values()) | {p for ns in negatives.values() for p in ns}
    for lang in langs:
        queries_file, collection_file = source_files(root, [lang])[1:]
        queries = _read_tsv(queries_file, ["qid", "text"])
        collection = _read_tsv(collection_file, ["pid", "text"])
        collection = collection.filter(lambda r: r["pid"] in wanted_pids)
        passages = dict(zip(collection["pid"], collection["text"]))
        skipped = 0
        for line, (qid, text) in enumerate(zip(queries["qid"], queries["text"]), 1):
            if qid not in positives:
                continue
            if positives[qid] not in passages:
                skipped += 1
                continue
            yield {
                "line": line,
                "id": qid,
                "lang": lang,
                "query": text,
                "positive": passages[positives[qid]],
                "negatives": [passages[p] for p in negatives[qid] if p in passages],
                "group": qid,
            }
        if skipped:
            log.warning("mMARCO %s: skipped %d queries whose positive passage is missing", lang, skipped)
