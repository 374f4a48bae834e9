"""Batch composition, determinism, DDP sharding and resumption of the samplers."""

import math
from collections import Counter

import numpy as np
import pytest

from mdr.training.samplers import HybridSampler, MixedSampler, XXSampler, XYSampler

N_BATCHES = 400


def plans(sampler, n=N_BATCHES, start=0):
    return [sampler.plan(s) for s in range(start, start + n)]


def assert_valid_ids(plan, corpus):
    assert len(set(plan.ids)) == len(plan.ids), "an id appears twice in one batch"
    for i, ql, pl in zip(plan.ids, plan.query_langs, plan.passage_langs):
        assert {ql, pl} <= set(corpus.langs_of(i)), f"id {i} drawn for a language it lacks"


def test_xx_batches_are_monolingual(mlqa_corpus):
    for p in plans(XXSampler(mlqa_corpus, 32, seed=1)):
        assert p.kind == "xx"
        assert len(set(p.query_langs) | set(p.passage_langs)) == 1
        assert_valid_ids(p, mlqa_corpus)


def test_xy_batches_are_cross_lingual_with_one_pair(mlqa_corpus):
    for p in plans(XYSampler(mlqa_corpus, 32, seed=1)):
        assert p.kind == "xy"
        assert len(set(p.query_langs)) == 1 and len(set(p.passage_langs)) == 1
        assert p.query_langs[0] != p.passage_langs[0]
        assert_valid_ids(p, mlqa_corpus)


def test_xy_per_example_pairs(mlqa_corpus):
    seen_pairs = set()
    for p in plans(XYSampler(mlqa_corpus, 32, seed=2, per_example=True), n=50):
        assert all(q != d for q, d in zip(p.query_langs, p.passage_langs))
        seen_pairs |= set(zip(p.query_langs, p.passage_langs))
        assert_valid_ids(p, mlqa_corpus)
    assert len(seen_pairs) > 20  # pairs vary within and across batches


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_hybrid_xx_share_within_binomial_bound(mlqa_corpus, alpha):
    ps = plans(HybridSampler(mlqa_corpus, 32, seed=3, alpha=alpha), n=1000)
    n_xx = sum(p.kind == "xx" for p in ps)
    for p in ps:
        assert_valid_ids(p, mlqa_corpus)
        if p.kind == "xx":
            assert len(set(p.query_langs) | set(p.passage_langs)) == 1
        else:
            assert p.query_langs[0] != p.passage_langs[0]
    # 99.9% two-sided normal bound on a binomial(1000, alpha) count
    half_width = 3.29 * math.sqrt(1000 * alpha * (1 - alpha))
    assert abs(n_xx - 1000 * alpha) <= half_width + 1e-9


def test_mixed_batches_mix_languages(mlqa_corpus):
    ps = plans(MixedSampler(mlqa_corpus, 32, seed=4), n=100)
    for p in ps:
        assert p.kind == "mixed"
        assert_valid_ids(p, mlqa_corpus)
    assert all(len(set(p.query_langs)) > 1 for p in ps)
    same = np.mean([q == d for p in ps for q, d in zip(p.query_langs, p.passage_langs)])
    assert 0.15 < same < 0.6  # independent draws: some pairs monolingual, most not


def test_uniform_vs_proportional_language_choice(mlqa_corpus):
    uni = Counter(p.query_langs[0] for p in plans(XXSampler(mlqa_corpus, 8, seed=5), n=3500))
    prop = Counter(
        p.query_langs[0] for p in plans(XXSampler(mlqa_corpus, 8, seed=5, weighting="proportional"), n=3500)
    )
    sizes = {lang: len(mlqa_corpus.ids_in(lang)) for lang in mlqa_corpus.langs}
    total = sum(sizes.values())
    for lang in mlqa_corpus.langs:
        p_uni, p_prop = 1 / len(sizes), sizes[lang] / total
        for counts, p in ((uni, p_uni), (prop, p_prop)):
            assert abs(counts[lang] - 3500 * p) <= 3.29 * math.sqrt(3500 * p * (1 - p))
    assert prop["en"] > 1.5 * uni["en"]  # English holds every MLQA-R id


def test_same_seed_same_stream_and_resume(mlqa_corpus):
    a = plans(HybridSampler(mlqa_corpus, 16, seed=7), n=60)
    b = plans(HybridSampler(mlqa_corpus, 16, seed=7), n=60)
    c = plans(HybridSampler(mlqa_corpus, 16, seed=8), n=60)
    assert a == b
    assert a != c
    resumed = plans(HybridSampler(mlqa_corpus, 16, seed=7), n=30, start=30)  # a fresh sampler from step 30
    assert resumed == a[30:]


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ddp_ranks_agree_and_take_disjoint_ids(mlqa_corpus, world):
    sampler = HybridSampler(mlqa_corpus, 12 * world, seed=9)
    for step in range(100):
        # each rank builds its own sampler from the same seed, as separate processes would
        shards = [
            HybridSampler(mlqa_corpus, 12 * world, seed=9).plan(step).shard(r, world) for r in range(world)
        ]
        assert len({s.kind for s in shards}) == 1
        assert len({(s.query_langs[0], s.passage_langs[0]) for s in shards}) == 1
        ids = [i for s in shards for i in s.ids]
        assert len(ids) == len(set(ids)) == 12 * world
        assert tuple(ids) == sampler.plan(step).ids  # the union is the one global batch


def test_step_sampler_resumes_mid_epoch():
    from mdr.training.datamodule import StepSampler

    state = {"next": 0}
    s = StepSampler(10, lambda: state["next"])
    assert list(s) == list(range(10))
    state["next"] = 13
    assert list(s) == list(range(13, 20))
    state["next"] = 20
    assert list(s) == list(range(20, 30))


def test_bad_sampler_configs(mlqa_corpus):
    with pytest.raises(ValueError, match=r"sampler.alpha=1.5 must be in \[0, 1\]"):
        HybridSampler(mlqa_corpus, 8, alpha=1.5)
    with pytest.raises(
        ValueError,
        match="larger than the .* ids available for language pair .* lower data.datamodule.batch_size",
    ):
        XYSampler(mlqa_corpus, 400)
    with pytest.raises(
        ValueError, match="larger than the .* ids available for language .* lower data.datamodule.batch_size"
    ):
        XXSampler(mlqa_corpus, 600)
    with pytest.raises(ValueError, match="at least two training languages"):
        XYSampler(mlqa_corpus.subset(langs=["en"]), 8)
    with pytest.raises(ValueError, match="weighting"):
        XXSampler(mlqa_corpus, 8, weighting="zipf")
