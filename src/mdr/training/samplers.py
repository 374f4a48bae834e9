"""Batch samplers: which ids, and which query / passage languages, make up each training batch.

Every sampler maps a global step to a :class:`BatchPlan` with a generator seeded by ``(seed, step)``.
So the stream is deterministic for a seed, a resumed run continues it from a step number alone, and
under DDP every rank computes the same global plan and keeps a disjoint slice of its ids: the global
batch stays one coherent X-X or X-Y batch whatever the per-device batch size.

A batch never holds one id twice: two translations of a question in one batch would be false negatives.

Samplers draw positions in the corpus's id x language index (``mdr.data.language_index``), never lists of
id strings: an X-Y sampler over 14 languages would otherwise hold 182 pools of every id. A pair's pool is
computed when its batch is drawn (a vectorised pass over the ids), in the id order the lists had, so the
batches are the same as when the pools were lists. Language pools are computed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from mdr.data.corpus import ParallelCorpus
from mdr.runtime.errors import InputError

WEIGHTINGS = ("uniform", "proportional")


@dataclass(frozen=True)
class BatchPlan:
    """The global batch of one step: per example an id, a query language and a passage language."""

    step: int
    kind: str  # "xx", "xy" or "mixed"
    ids: tuple[str, ...]
    query_langs: tuple[str, ...]
    passage_langs: tuple[str, ...]
    positions: tuple[int, ...] = ()  # the ids' positions in the sampler's corpus (the collator reads by them)

    def shard(self, rank: int, world_size: int) -> BatchPlan:
        """This rank's disjoint, contiguous slice of the global batch."""
        if len(self.ids) % world_size:
            raise InputError(f"global batch {len(self.ids)} is not divisible by world size {world_size}")
        n = len(self.ids) // world_size
        sl = slice(rank * n, (rank + 1) * n)
        return BatchPlan(
            self.step,
            self.kind,
            self.ids[sl],
            self.query_langs[sl],
            self.passage_langs[sl],
            self.positions[sl],
        )


def _weights(sizes: list[int], weighting: str) -> np.ndarray:
    if weighting not in WEIGHTINGS:
        raise InputError(f"sampler.weighting={weighting!r}; choose one of {WEIGHTINGS}")
    w = np.ones(len(sizes)) if weighting == "uniform" else np.asarray(sizes, dtype=float)
    return w / w.sum()


class PlanSampler:
    """Base: one seeded batch plan per training step (not torch's ``BatchSampler``, which yields indices). Subclasses implement :meth:`draw` with a generator."""

    kind = "base"

    def __init__(self, corpus: ParallelCorpus, batch_size: int, seed: int = 0, weighting: str = "uniform"):
        if batch_size < 1:
            raise InputError(f"data.datamodule.batch_size={batch_size} must be >= 1")
        self.corpus, self.batch_size, self.seed, self.weighting = corpus, batch_size, seed, weighting

    def plan(self, step: int) -> BatchPlan:
        rng = np.random.default_rng([self.seed, step])
        kind, positions, q_langs, p_langs = self.draw(rng)
        positions = [int(p) for p in positions]
        ids = self.corpus.ids.take(positions)
        return BatchPlan(step, kind, tuple(ids), tuple(q_langs), tuple(p_langs), tuple(positions))

    def draw(self, rng: np.random.Generator) -> tuple[str, np.ndarray, list[str], list[str]]:
        """(kind, id positions, query languages, passage languages) of one global batch."""
        raise NotImplementedError

    def _too_small(self, what: str, available: int) -> InputError:
        return InputError(
            f"global batch size {self.batch_size} is larger than the {available} ids available for {what} "
            f"in {self.corpus.name}: lower data.datamodule.batch_size (per device x devices) or drop that language "
            "from the training languages"
        )


class XXSampler(PlanSampler):
    """X-X: one language x per batch; every query and positive is in x (monolingual batch)."""

    kind = "xx"

    def __init__(self, corpus: ParallelCorpus, batch_size: int, seed: int = 0, weighting: str = "uniform"):
        super().__init__(corpus, batch_size, seed, weighting)
        self.langs, self.index = corpus.langs, corpus.index
        sizes = [int(np.count_nonzero(self.index.present(lang))) for lang in self.langs]
        for lang, size in zip(self.langs, sizes):
            if size < batch_size:
                raise self._too_small(f"language {lang}", size)
        self.p = _weights(sizes, weighting)

    def draw(self, rng):
        i = rng.choice(len(self.langs), p=self.p)
        pool = self.index.in_lang(self.langs[i])
        ids = pool[rng.choice(len(pool), size=self.batch_size, replace=False)]
        return "xx", ids, [self.langs[i]] * len(ids), [self.langs[i]] * len(ids)


class XYSampler(PlanSampler):
    """X-Y: queries in x, positives in y != x. One (x, y) pair per batch by default; with
    ``per_example=True`` each example draws its own pair among the languages its id exists in."""

    kind = "xy"

    def __init__(
        self,
        corpus: ParallelCorpus,
        batch_size: int,
        seed: int = 0,
        weighting: str = "uniform",
        per_example: bool = False,
    ):
        super().__init__(corpus, batch_size, seed, weighting)
        if len(corpus.langs) < 2:
            raise InputError(
                f"X-Y batches need at least two training languages; {corpus.name} has {corpus.langs}"
            )
        self.per_example, self.index = per_example, corpus.index
        if per_example:
            self.ids = np.flatnonzero(self.index.lang_counts() >= 2)
            if len(self.ids) < batch_size:
                raise self._too_small("ids in two or more languages", len(self.ids))
            return
        self.pairs = list(permutations(corpus.langs, 2))
        present = {lang: self.index.present(lang) for lang in corpus.langs}
        sizes = [int(np.count_nonzero(present[x] & present[y])) for x, y in self.pairs]
        for (x, y), size in zip(self.pairs, sizes):
            if size < batch_size:
                raise self._too_small(f"language pair {x}->{y}", size)
        self.p = _weights(sizes, weighting)

    def draw(self, rng):
        if self.per_example:
            ids = self.ids[rng.choice(len(self.ids), size=self.batch_size, replace=False)]
            q_langs, p_langs = [], []
            for i in ids:
                langs = self.index.langs_at(i)
                x, y = rng.choice(len(langs), size=2, replace=False)
                q_langs.append(langs[x])
                p_langs.append(langs[y])
            return "xy", ids, q_langs, p_langs
        k = rng.choice(len(self.pairs), p=self.p)
        x, y = self.pairs[k]
        pool = self.index.in_pair(x, y)
        ids = pool[rng.choice(len(pool), size=self.batch_size, replace=False)]
        return "xy", ids, [x] * len(ids), [y] * len(ids)


class HybridSampler(PlanSampler):
    """Hybrid (the paper): each batch is X-X with probability ``alpha``, X-Y otherwise."""

    kind = "hybrid"

    def __init__(
        self,
        corpus: ParallelCorpus,
        batch_size: int,
        seed: int = 0,
        weighting: str = "uniform",
        alpha: float = 0.5,
        per_example: bool = False,
    ):
        super().__init__(corpus, batch_size, seed, weighting)
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"sampler.alpha={alpha} must be in [0, 1] (the probability of an X-X batch)")
        self.alpha = alpha
        self.xx = XXSampler(corpus, batch_size, seed, weighting) if alpha > 0 else None
        self.xy = XYSampler(corpus, batch_size, seed, weighting, per_example) if alpha < 1 else None

    def draw(self, rng):
        use_xx = rng.random() < self.alpha
        return (self.xx if use_xx else self.xy).draw(rng)


class MixedSampler(PlanSampler):
    """Mixed (the usual multilingual baseline): distinct ids, and each example's query and passage
    languages drawn independently among the languages its id exists in, so one batch mixes languages."""

    kind = "mixed"

    def __init__(self, corpus: ParallelCorpus, batch_size: int, seed: int = 0, weighting: str = "uniform"):
        super().__init__(corpus, batch_size, seed, weighting)
        self.index = corpus.index
        n_ids = self.index.n_ids
        if n_ids < batch_size:
            raise self._too_small("the whole corpus", n_ids)
        self.p = _weights(self.index.lang_counts(), weighting)

    def draw(self, rng):
        ids = rng.choice(len(self.p), size=self.batch_size, replace=False, p=self.p)
        langs = [self.index.langs_at(i) for i in ids]
        q_langs = [ls[rng.integers(len(ls))] for ls in langs]
        p_langs = [ls[rng.integers(len(ls))] for ls in langs]
        return "mixed", ids, q_langs, p_langs
