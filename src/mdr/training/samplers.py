"""Batch samplers: which ids, and which query / passage languages, make up each training batch.

Every sampler maps a global step to a :class:`BatchPlan` with a generator seeded by ``(seed, step)``.
So the stream is deterministic for a seed, a resumed run continues it from a step number alone, and
under DDP every rank computes the same global plan and keeps a disjoint slice of its ids: the global
batch stays one coherent X-X or X-Y batch whatever the per-device batch size.

A batch never holds one id twice: two translations of a question in one batch would be false negatives.
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

    def shard(self, rank: int, world_size: int) -> BatchPlan:
        """This rank's disjoint, contiguous slice of the global batch."""
        if len(self.ids) % world_size:
            raise InputError(f"global batch {len(self.ids)} is not divisible by world size {world_size}")
        n = len(self.ids) // world_size
        sl = slice(rank * n, (rank + 1) * n)
        return BatchPlan(self.step, self.kind, self.ids[sl], self.query_langs[sl], self.passage_langs[sl])


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
        kind, ids, q_langs, p_langs = self.draw(rng)
        return BatchPlan(step, kind, tuple(ids), tuple(q_langs), tuple(p_langs))

    def draw(self, rng: np.random.Generator) -> tuple[str, list[str], list[str], list[str]]:
        raise NotImplementedError

    def _too_small(self, what: str, available: int) -> ValueError:
        return ValueError(
            f"global batch size {self.batch_size} is larger than the {available} ids available for {what} "
            f"in {self.corpus.name}: lower data.datamodule.batch_size (per device x devices) or drop that language "
            "from the training languages"
        )


class XXSampler(PlanSampler):
    """X-X: one language x per batch; every query and positive is in x (monolingual batch)."""

    kind = "xx"

    def __init__(self, corpus: ParallelCorpus, batch_size: int, seed: int = 0, weighting: str = "uniform"):
        super().__init__(corpus, batch_size, seed, weighting)
        self.langs = corpus.langs
        self.pools = [corpus.ids_in(lang) for lang in self.langs]
        for lang, pool in zip(self.langs, self.pools):
            if len(pool) < batch_size:
                raise self._too_small(f"language {lang}", len(pool))
        self.p = _weights([len(p) for p in self.pools], weighting)

    def draw(self, rng):
        i = rng.choice(len(self.langs), p=self.p)
        pool = self.pools[i]
        ids = [pool[j] for j in rng.choice(len(pool), size=self.batch_size, replace=False)]
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
        self.per_example = per_example
        if per_example:
            self.ids = [i for i in corpus.ids if len(corpus.langs_of(i)) >= 2]
            self.langs_of = {i: corpus.langs_of(i) for i in self.ids}
            if len(self.ids) < batch_size:
                raise self._too_small("ids in two or more languages", len(self.ids))
            return
        self.pairs = list(permutations(corpus.langs, 2))
        self.pools = [corpus.ids_in_pair(x, y) for x, y in self.pairs]
        for (x, y), pool in zip(self.pairs, self.pools):
            if len(pool) < batch_size:
                raise self._too_small(f"language pair {x}->{y}", len(pool))
        self.p = _weights([len(p) for p in self.pools], weighting)

    def draw(self, rng):
        if self.per_example:
            ids = [self.ids[j] for j in rng.choice(len(self.ids), size=self.batch_size, replace=False)]
            q_langs, p_langs = [], []
            for i in ids:
                x, y = rng.choice(len(self.langs_of[i]), size=2, replace=False)
                q_langs.append(self.langs_of[i][x])
                p_langs.append(self.langs_of[i][y])
            return "xy", ids, q_langs, p_langs
        k = rng.choice(len(self.pairs), p=self.p)
        pool = self.pools[k]
        ids = [pool[j] for j in rng.choice(len(pool), size=self.batch_size, replace=False)]
        x, y = self.pairs[k]
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
        self.ids = corpus.ids
        self.langs_of = {i: corpus.langs_of(i) for i in self.ids}
        if len(self.ids) < batch_size:
            raise self._too_small("the whole corpus", len(self.ids))
        self.p = _weights([len(self.langs_of[i]) for i in self.ids], weighting)

    def draw(self, rng):
        ids = [self.ids[j] for j in rng.choice(len(self.ids), size=self.batch_size, replace=False, p=self.p)]
        q_langs = [self.langs_of[i][rng.integers(len(self.langs_of[i]))] for i in ids]
        p_langs = [self.langs_of[i][rng.integers(len(self.langs_of[i]))] for i in ids]
        return "mixed", ids, q_langs, p_langs
