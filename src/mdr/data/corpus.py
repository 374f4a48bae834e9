"""Parallel training examples keyed by question id, and retrieval sets for evaluation.

A question id is shared by every translation of a question; everything downstream (samplers, loss
masking, relevance) is keyed by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdr.data.language_index import IdSequence, LanguageIndex, arrow_positions
from mdr.runtime.errors import InputError


@dataclass(frozen=True)
class ParallelExample:
    """One (id, language): a query, its positive passage and optional hard negatives.

    ``group`` ties examples that must stay on one side of a split (the article, across languages).
    ``positive_context`` is the paragraph around the positive, used when candidates are encoded
    as sentence + context (LAReQA's ``sentence_context`` mode). ``positive_ids`` / ``negative_ids``
    list the question ids each passage answers (one sentence can answer several questions), so the
    loss never pushes a query away from a passage that answers it.
    """

    id: str
    lang: str
    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    group: str = ""
    positive_context: str = ""
    positive_ids: tuple[str, ...] = ()
    negative_ids: tuple[tuple[str, ...], ...] = ()


class ExampleStore(Protocol):
    """Where the examples live: a Python list (small sets) or a memory-mapped Arrow file (``arrow_store``)."""

    def example(self, row: int) -> ParallelExample: ...

    def group_values(self, rows: np.ndarray) -> pa.Array: ...


class ListStore:
    """Examples held as Python objects (the LAReQA sets: a few thousand)."""

    def __init__(self, examples: Sequence[ParallelExample]):
        self.examples = list(examples)

    def example(self, row: int) -> ParallelExample:
        return self.examples[row]

    def group_values(self, rows: np.ndarray) -> pa.Array:
        return pa.array([self.examples[r].group or self.examples[r].id for r in rows], type=pa.string())


class ExampleView(Sequence):
    """The corpus's examples in storage order, materialised one at a time."""

    def __init__(self, store: ExampleStore, rows: np.ndarray):
        self.store, self.rows = store, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._many(self.rows[i])
        return self.store.example(int(self.rows[i]))

    def __iter__(self):
        for start in range(0, len(self.rows), 8192):
            yield from self._many(self.rows[start : start + 8192])

    def _many(self, rows: np.ndarray) -> list[ParallelExample]:
        bulk = getattr(self.store, "examples", None)  # the Arrow store converts many rows at once
        return bulk(rows) if callable(bulk) else [self.store.example(int(r)) for r in rows]


class ParallelCorpus:
    """Examples indexed by language and id; an id exists only in the languages that have it.

    The samplers and the collator see ids through ``index`` (arrays: positions in sorted id order), so a
    memory-mapped corpus of millions of examples costs a few bytes per example in each rank.
    """

    def __init__(
        self,
        examples: Sequence[ParallelExample] | ExampleStore,
        name: str = "corpus",
        index: LanguageIndex | None = None,
        cache_folder: Path | None = None,
    ):
        self.name = name
        # the corpus cache folder this corpus maps (``arrow_store``); a split is cached beside it (``splits``)
        self.cache_folder = cache_folder
        if index is None:
            examples = list(examples)
            if not examples:
                raise InputError(f"{name}: no examples; check the data path and the language list")
            index = LanguageIndex.build(
                pa.array([ex.id for ex in examples], type=pa.string()),
                pa.array([ex.lang for ex in examples], type=pa.string()),
                name,
            )
            examples = ListStore(examples)
        elif index.n_ids == 0:
            raise InputError(f"{name}: no examples; check the data path and the language list")
        self.store, self.index = examples, index
        self.langs: list[str] = index.langs
        self.ids: IdSequence = index.ids
        self._size: int | None = None
        if isinstance(examples, ListStore):
            self.check_groups()

    def __len__(self) -> int:
        if self._size is None:
            self._size = int(self.index.lang_counts().sum())
        return self._size

    @property
    def examples(self) -> ExampleView:
        rows = np.asarray(self.index.rows)
        return ExampleView(self.store, np.sort(rows[rows >= 0]))

    def example(self, position: int, lang: str) -> ParallelExample:
        """The example of the id at ``position`` (in ``ids``) in ``lang``."""
        return self.store.example(self.index.row(position, lang))

    def get(self, id_: str, lang: str) -> ParallelExample:
        position = int(self.ids.position_or_none([id_])[0])
        if position < 0:
            raise KeyError(f"{self.name}: no id {id_!r}")
        return self.example(position, lang)

    def ids_in(self, lang: str) -> list[str]:
        return self.ids.take(self.index.in_lang(lang))

    def ids_in_pair(self, query_lang: str, passage_lang: str) -> list[str]:
        return self.ids.take(self.index.in_pair(query_lang, passage_lang))

    def langs_of(self, id_: str) -> list[str]:
        position = int(self.ids.position_or_none([id_])[0])
        return self.index.langs_at(position) if position >= 0 else []

    def group_of_ids(self) -> pa.Array:
        """Each id's group (the article that keeps it on one side of a split), in id order."""
        rows = np.asarray(self.index.rows)
        return self.store.group_values(rows.max(axis=1))  # any present row; every id has one

    def group_ranks(self) -> np.ndarray:
        """Per id, the rank of its group among the corpus's sorted group names (what a split needs): read from
        the corpus cache when there is one, else computed once here."""
        if self.index.group_ranks is None:
            groups = self.group_of_ids()
            ranks = pc.index_in(groups, value_set=pc.unique(groups).sort()).to_numpy()
            self.index.group_ranks = ranks.astype(np.int32 if len(ranks) < 2**31 else np.int64)
        return self.index.group_ranks

    def check_groups(self) -> None:
        """An id whose languages disagree on its group is an error (run once, when the corpus is built)."""
        rows = np.asarray(self.index.rows)
        groups = self.group_of_ids()
        for k in range(len(self.langs)):
            present = np.flatnonzero(rows[:, k] >= 0)
            other = self.store.group_values(rows[present, k])
            differs = pc.not_equal(other, groups.take(arrow_positions(present))).to_numpy(
                zero_copy_only=False
            )
            if differs.any():
                bad = self.ids[int(present[np.flatnonzero(differs)[0]])]
                raise InputError(
                    f"id {bad!r} has different groups in different languages; groups must be per id"
                )

    def subset_positions(
        self, positions: np.ndarray | None = None, langs: Iterable[str] | None = None, name: str | None = None
    ) -> ParallelCorpus:
        """The corpus restricted to the ids at ``positions`` and to ``langs``, sharing this one's storage."""
        index = self.index.subset(positions, list(langs) if langs is not None else None)
        # a language subset is still a function of the cached corpus (a split's cache key names the languages)
        folder = self.cache_folder if positions is None else None
        return ParallelCorpus(self.store, name or self.name, index=index, cache_folder=folder)

    def subset(
        self, ids: Iterable[str] | None = None, langs: Iterable[str] | None = None, name: str | None = None
    ) -> ParallelCorpus:
        positions = None
        if ids is not None:
            positions = self.ids.position_or_none(list(ids))
            positions = np.unique(positions[positions >= 0])
        return self.subset_positions(positions, langs, name)


@dataclass
class RetrievalSet:
    """Queries and candidates of one evaluation set with id-based relevance.

    ``answer_of[(lang, id)]`` is the candidate index answering question ``id`` in ``lang``; the
    relevant set of a query in a pool is the answer of its id in every language of that pool.
    """

    name: str
    query_ids: list[str]
    query_langs: list[str]
    query_texts: list[str]
    cand_uids: list[str]
    cand_langs: list[str]
    cand_texts: list[str]
    cand_contexts: list[str]
    answer_of: dict[tuple[str, str], int]
    langs: list[str] = field(default_factory=list)
    answer_text: dict[tuple[str, str], str] = field(default_factory=dict)  # (lang, id) -> gold answer span

    def __post_init__(self) -> None:
        if not self.langs:
            self.langs = sorted(set(self.query_langs) | set(self.cand_langs))

    @property
    def query_uids(self) -> list[str]:
        return [f"{lang}:{qid}" for lang, qid in zip(self.query_langs, self.query_ids)]

    def subset(self, ids: Iterable[str], name: str | None = None) -> RetrievalSet:
        """Keep the given question ids, and the candidates of the paragraphs they come from."""
        keep = set(ids)
        q_idx = [i for i, qid in enumerate(self.query_ids) if qid in keep]
        paragraphs = {
            self.cand_uids[c].rsplit(":", 1)[0] for (lang, qid), c in self.answer_of.items() if qid in keep
        }
        c_idx = [i for i, uid in enumerate(self.cand_uids) if uid.rsplit(":", 1)[0] in paragraphs]
        remap = {old: new for new, old in enumerate(c_idx)}
        return RetrievalSet(
            name=name or self.name,
            query_ids=[self.query_ids[i] for i in q_idx],
            query_langs=[self.query_langs[i] for i in q_idx],
            query_texts=[self.query_texts[i] for i in q_idx],
            cand_uids=[self.cand_uids[i] for i in c_idx],
            cand_langs=[self.cand_langs[i] for i in c_idx],
            cand_texts=[self.cand_texts[i] for i in c_idx],
            cand_contexts=[self.cand_contexts[i] for i in c_idx],
            answer_of={k: remap[v] for k, v in self.answer_of.items() if k[1] in keep},
            answer_text={k: v for k, v in self.answer_text.items() if k[1] in keep},
        )


def retrieval_set_from_corpus(corpus: ParallelCorpus, name: str | None = None) -> RetrievalSet:
    """Evaluation view of a parallel corpus: positives are the candidates, deduplicated by (lang, text)."""
    cand_index: dict[tuple[str, str], int] = {}
    uids, langs, texts, contexts = [], [], [], []
    answer_of: dict[tuple[str, str], int] = {}
    q_ids, q_langs, q_texts = [], [], []
    for ex in corpus.examples:
        key = (ex.lang, ex.positive)
        if key not in cand_index:
            cand_index[key] = len(uids)
            uids.append(f"{ex.lang}:{ex.group or ex.id}:{len(uids)}")
            langs.append(ex.lang)
            texts.append(ex.positive)
            contexts.append(ex.positive_context)
        answer_of[(ex.lang, ex.id)] = cand_index[key]
        q_ids.append(ex.id)
        q_langs.append(ex.lang)
        q_texts.append(ex.query)
    return RetrievalSet(name or corpus.name, q_ids, q_langs, q_texts, uids, langs, texts, contexts, answer_of)
