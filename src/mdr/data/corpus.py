"""Parallel training examples keyed by question id, and retrieval sets for evaluation.

A question id is shared by every translation of a question; everything downstream (samplers, loss
masking, relevance) is keyed by it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

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


class ParallelCorpus:
    """Examples indexed by language and id; an id exists only in the languages that have it."""

    def __init__(self, examples: Sequence[ParallelExample], name: str = "corpus"):
        if not examples:
            raise InputError(f"{name}: no examples; check the data path and the language list")
        self.name = name
        self.examples: list[ParallelExample] = list(examples)
        self.by_lang: dict[str, dict[str, int]] = defaultdict(dict)
        for i, ex in enumerate(self.examples):
            if ex.id in self.by_lang[ex.lang]:
                raise InputError(
                    f"{name}: id {ex.id!r} appears twice in language {ex.lang!r}; ids must be unique per language"
                )
            self.by_lang[ex.lang][ex.id] = i
        self.by_lang = dict(sorted(self.by_lang.items()))
        self.langs: list[str] = list(self.by_lang)
        self.ids: list[str] = sorted({ex.id for ex in self.examples})

    def __len__(self) -> int:
        return len(self.examples)

    def get(self, id_: str, lang: str) -> ParallelExample:
        return self.examples[self.by_lang[lang][id_]]

    def ids_in(self, lang: str) -> list[str]:
        return sorted(self.by_lang[lang])

    def ids_in_pair(self, query_lang: str, passage_lang: str) -> list[str]:
        a, b = self.by_lang[query_lang], self.by_lang[passage_lang]
        return sorted(a.keys() & b.keys())

    def langs_of(self, id_: str) -> list[str]:
        return [lang for lang in self.langs if id_ in self.by_lang[lang]]

    def subset(
        self, ids: Iterable[str] | None = None, langs: Iterable[str] | None = None, name: str | None = None
    ) -> ParallelCorpus:
        keep_ids = set(ids) if ids is not None else None
        keep_langs = set(langs) if langs is not None else None
        kept = [
            ex
            for ex in self.examples
            if (keep_ids is None or ex.id in keep_ids) and (keep_langs is None or ex.lang in keep_langs)
        ]
        return ParallelCorpus(kept, name or self.name)


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
