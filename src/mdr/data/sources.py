"""Named data sources -> readers: the evaluation sets (``data.eval_datasets``) and the training corpora
(``data.train``). Everything above the data layer asks for data by name here."""

from __future__ import annotations

from pathlib import Path

from mdr.data.corpus import ParallelCorpus, RetrievalSet
from mdr.data.jsonl import read_parallel_jsonl
from mdr.data.lareqa import DATASET_DIRS, parallel_corpus, read_lareqa, retrieval_set
from mdr.data.tatoeba import TatoebaSet, read_tatoeba
from mdr.runtime.errors import InputError

EVAL_SETS = (*sorted(DATASET_DIRS), "tatoeba")


def load_eval_set(
    name: str, data_dir: str | Path, langs: list[str] | None = None, tatoeba_langs: str | list[str] = "all"
) -> RetrievalSet | TatoebaSet:
    """An evaluation set by name: a LAReQA retrieval set (``xquad_r``, ``mlqa_r``) or Tatoeba bitext
    (``tatoeba``, languages chosen by ``tatoeba_langs``: all | xtreme36 | xtreme36+low_resource | codes)."""
    if name == "tatoeba":
        return read_tatoeba(data_dir, tatoeba_langs)
    if name not in DATASET_DIRS:
        raise InputError(f"unknown evaluation dataset {name!r}; choose from {list(EVAL_SETS)}")
    return retrieval_set(read_lareqa(data_dir, name, langs), name)


def load_training_corpus(source: dict, data_dir: str) -> tuple[ParallelCorpus, RetrievalSet | None]:
    """The training corpus and, for LAReQA sets, the matching sentence-pool retrieval set (for dev mAP)."""
    kind = source.get("kind", "lareqa")
    langs = list(source["langs"]) if source.get("langs") else None
    if kind == "lareqa":
        files = read_lareqa(data_dir, source["name"], langs)
        return parallel_corpus(files, source["name"]), retrieval_set(files, source["name"])
    if kind == "jsonl":
        return read_parallel_jsonl(source["path"], langs, cache_dir=source.get("cache_dir")), None
    if kind == "mmarco":
        from mdr.data.mmarco import read_mmarco

        return read_mmarco(
            langs or ["en"],
            source.get("root") or "hf://datasets/unicamp-dl/mmarco",
            source.get("max_queries"),
            source.get("negatives_per_query", 1),
            source.get("cache_dir"),
        ), None
    raise InputError(f"unknown data.train.kind={kind!r}; choose lareqa, jsonl or mmarco")
