"""``report.py --recommend`` on a synthetic results folder whose answer is known: a recipe planted far ahead on
bitext accuracy is named; two tied recipes are equivalent within a wide margin and undecided within a narrow
one; a pair no declared claim compares, and exploratory claims, never decide."""

import dataclasses

from synthetic_results import tatoeba_folder

from mdr.report.claims import Claim, judge
from mdr.report.recommend import PRIORITIES, recommend, recommend_markdown, recommend_one

BITEXT = next(p for p in PRIORITIES if p[3] == "all")


def claim(a: str, b: str, margin: float, family: str = "f") -> Claim:
    return Claim(f"{a} >= {b}", f"sampler={a}", f"sampler={b}", "tatoeba", "accuracy", ">=", group="all",
                 family=family, margin=margin, margin_reason="test")  # fmt: skip


def folder(tmp_path):
    design = {s: [(seed, "B1") for seed in range(5)] for s in ("hybrid", "mixed", "xx")}
    return tatoeba_folder(tmp_path, design, {"hybrid": 0.15})


def test_the_recipe_far_ahead_is_named_and_ties_are_never_ranked(tmp_path):
    report = folder(tmp_path)
    pairs = [("hybrid", "mixed"), ("hybrid", "xx"), ("mixed", "xx"), ("xx", "mixed")]
    wide = judge(report, [claim(a, b, 0.1) for a, b in pairs], permutations=200, replicates=300)
    assert all(v.outcome == "holds" for v in wide)
    assert (
        recommend_one(wide, BITEXT).answer
        == "sampler=hybrid (its declared claims against sampler=mixed, sampler=xx hold)"
    )

    ties = judge(
        report, [claim("mixed", "xx", 0.1), claim("xx", "mixed", 0.1)], permutations=200, replicates=300
    )
    assert recommend_one(ties, BITEXT).answer == "equivalent within the margin: sampler=mixed and sampler=xx"

    narrow = judge(
        report, [claim("mixed", "xx", 1e-4), claim("xx", "mixed", 1e-4)], permutations=200, replicates=300
    )
    assert not any(v.outcome == "holds" for v in narrow)
    assert recommend_one(narrow, BITEXT).answer == "undecided between sampler=mixed, sampler=xx"
    # a recipe of the folder that no declared claim covers keeps the answer open
    extra = recommend_one(wide, BITEXT, recipes=["sampler=hybrid", "sampler=xy"]).answer
    assert (
        extra
        == "undecided between sampler=hybrid, sampler=xy (no declared claim compares sampler=hybrid vs sampler=xy)"
    )


def test_uncompared_pairs_and_exploratory_claims_never_decide(tmp_path):
    report = folder(tmp_path)
    verdicts = judge(report, [claim("hybrid", "mixed", 0.1), claim("hybrid", "xx", 0.1, family="exploratory")],
                     permutations=200, replicates=300)  # fmt: skip
    rec = recommend_one(verdicts, BITEXT)
    # xx comes in through an exploratory claim, which cannot decide: the answer stays open
    assert (
        rec.answer
        == "undecided between sampler=hybrid, sampler=xx (no declared claim compares sampler=hybrid vs sampler=xx)"
    )
    assert len(rec.exploratory) == 1 and "exploratory, not used" in recommend_markdown([rec])
    mixed_vs_xx = judge(report, [claim("hybrid", "mixed", 0.1), claim("xx", "mixed", 1e-4)],
                        permutations=200, replicates=300)  # fmt: skip
    answer = recommend_one(mixed_vs_xx, BITEXT).answer
    assert (
        answer
        == "undecided between sampler=hybrid, sampler=xx (no declared claim compares sampler=hybrid vs sampler=xx)"
    )
    assert all(
        r.answer.startswith("no declared claim") for r in recommend(verdicts) if r.priority != BITEXT[0]
    )


def test_a_margin_wide_enough_for_anything_is_still_a_declared_claim(tmp_path):
    report = folder(tmp_path)
    reversed_claim = dataclasses.replace(claim("mixed", "hybrid", 0.01), claim="mixed >= hybrid")
    verdicts = judge(
        report, [claim("hybrid", "mixed", 0.01), reversed_claim], permutations=200, replicates=300
    )
    assert verdicts[1].outcome.startswith("does not hold")
    assert recommend_one(verdicts, BITEXT).answer.startswith("sampler=hybrid")
