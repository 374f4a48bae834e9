"""Seed blocks in the claims statistics: a synthetic results folder with a planted block effect (every run of
block B2 scores +0.10 accuracy, the recipes are equal) shows that pooling seeds of different block mixes
moves the verdict and the block rule does not."""

import pytest
from synthetic_results import BLOCK_EFFECT
from synthetic_results import tatoeba_folder as _folder

from mdr.report.blocks import POOL, STRATIFY
from mdr.report.claims import Claim, judge

CLAIM = Claim("hybrid > mixed", "sampler=hybrid", "sampler=mixed", "tatoeba", "accuracy", ">", group="all",
              family="primary")  # fmt: skip


def test_an_unbalanced_block_mix_moves_the_pooled_verdict_and_not_the_restricted_one(tmp_path):
    """hybrid: 5 seeds in B1, 5 in B2; mixed: 5 in B1 only (the decisive sweep's hybrid vs mixed)."""
    report = _folder(tmp_path, {
        "hybrid": [(s, "B1") for s in range(5)] + [(s, "B2") for s in range(5, 10)],
        "mixed": [(s, "B1") for s in range(5)],
    })  # fmt: skip
    pooled = judge(report, [CLAIM], permutations=200, replicates=500, blocks=POOL)[0]
    blocked = judge(report, [CLAIM], permutations=200, replicates=500, blocks=STRATIFY)[0]
    assert pooled.diff == pytest.approx(
        BLOCK_EFFECT / 2, abs=0.015
    )  # half of hybrid's seeds carry the effect
    assert pooled.outcome == "holds"  # the block, not the recipe
    assert abs(blocked.diff) < 0.015 and blocked.outcome != "holds"
    assert (
        blocked.block_rule.startswith("restricted to B1") and "a drops seed(s) 5 (B2)" in blocked.block_rule
    )
    assert blocked.seeds_a == [0, 1, 2, 3, 4] and blocked.pooled.diff == pytest.approx(pooled.diff)


def test_two_shared_blocks_in_different_proportions_are_weighted_equally(tmp_path):
    """hybrid 5 + 5, mixed 2 in B1 + 4 in B2: pooled, mixed looks better by a third of the effect."""
    report = _folder(tmp_path, {
        "hybrid": [(s, "B1") for s in range(5)] + [(s, "B2") for s in range(5, 10)],
        "mixed": [(0, "B1"), (1, "B1"), (2, "B2"), (3, "B2"), (4, "B2"), (5, "B2")],
    })  # fmt: skip
    pooled = judge(report, [CLAIM], permutations=200, replicates=500, blocks=POOL)[0]
    blocked = judge(report, [CLAIM], permutations=200, replicates=500)[0]
    assert pooled.diff == pytest.approx(BLOCK_EFFECT * (0.5 - 4 / 6), abs=0.012)
    assert abs(blocked.diff) < 0.012 and blocked.block_rule == "stratified over B1, B2, weighted equally"
    assert blocked.boot.comps.n_a == 10 and blocked.boot.comps.n_b == 6  # nothing dropped


def test_rows_without_a_shared_block_are_not_compared(tmp_path):
    report = _folder(tmp_path, {
        "hybrid": [(s, "B2") for s in range(5, 8)], "mixed": [(s, "B1") for s in range(3)],
    })  # fmt: skip
    verdict = judge(report, [CLAIM], permutations=200, replicates=500)[0]
    assert verdict.outcome.startswith("not comparable: no shared block") and verdict.boot is None


def test_one_block_is_compared_as_it_is(tmp_path):
    report = _folder(tmp_path, {
        "hybrid": [(s, "B2") for s in range(3)], "mixed": [(s, "B2") for s in range(3)],
    })  # fmt: skip
    blocked, pooled = (judge(report, [CLAIM], 200, 500, blocks=b)[0] for b in (STRATIFY, POOL))
    assert (
        blocked.block_rule == "one block"
        and blocked.diff == pooled.diff
        and blocked.boot.ci == pooled.boot.ci
    )


def test_a_block_where_a_row_has_one_seed_is_not_shared(tmp_path):
    """One seed in a block estimates nothing of the seed variance there: that block is dropped and named."""
    report = _folder(tmp_path, {
        "hybrid": [(s, "B1") for s in range(3)] + [(s, "B2") for s in range(3, 6)],
        "mixed": [(0, "B1"), (1, "B1"), (2, "B1"), (3, "B2")],
    })  # fmt: skip
    verdict = judge(report, [CLAIM], permutations=200, replicates=500)[0]
    assert (
        verdict.block_rule.startswith("restricted to B1") and "b drops seed(s) 3 (B2)" in verdict.block_rule
    )
