"""A family declared with its seeds is judged on those seeds once they are all in: an interim look at a sweep
that spans sessions is withheld, extra seeds are never judged, and the claims files say what they declared."""

import dataclasses
import re
from pathlib import Path

import pytest
from synthetic_results import tatoeba_folder

from mdr.report.claims import Claim, family_coverage, judge, load_claims_file
from mdr.report.seed_plan import Family
from mdr.runtime.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
CLAIM = Claim("hybrid >= mixed", "sampler=hybrid", "sampler=mixed", "tatoeba", "accuracy", ">=", group="all",
              family="f", margin=0.01, margin_reason="test")  # fmt: skip
FIVE = Family("test family", {"sampler=hybrid": (0, 1, 2, 3, 4), "sampler=mixed": (0, 1, 2, 3, 4)})


def _folder(tmp_path, hybrid_seeds, mixed_seeds=range(5), effect=0.05):
    design = {"hybrid": [(s, "B1") for s in hybrid_seeds], "mixed": [(s, "B1") for s in mixed_seeds]}
    return tatoeba_folder(tmp_path, design, {"hybrid": effect})


def test_a_verdict_waits_for_the_declared_seeds(tmp_path):
    report = _folder(tmp_path, hybrid_seeds=[0, 1, 2])
    unplanned = judge(report, [CLAIM], permutations=200, replicates=300)[0]
    assert unplanned.outcome == "holds"  # the planted effect shows at 3 seeds: exactly the look to withhold
    v = judge(report, [CLAIM], permutations=200, replicates=300, families={"f": FIVE})[0]
    assert v.outcome.startswith("withheld (interim)")
    assert "sampler=hybrid: 3 of 5 (missing 3, 4)" in v.outcome and "sampler=mixed" not in v.outcome
    assert v.diff == pytest.approx(unplanned.diff)  # the interim interval is still shown beside


def test_once_every_declared_seed_is_in_the_verdict_is_the_unplanned_one(tmp_path):
    report = _folder(tmp_path, hybrid_seeds=range(5))
    unplanned = judge(report, [CLAIM], permutations=200, replicates=300)[0]
    planned = judge(report, [CLAIM], permutations=200, replicates=300, families={"f": FIVE})[0]
    assert planned.outcome == unplanned.outcome == "holds"
    assert planned.p_holds_adj == pytest.approx(unplanned.p_holds_adj)


def test_seeds_outside_the_declaration_are_not_judged(tmp_path):
    report = _folder(tmp_path, hybrid_seeds=range(7))
    planned = judge(report, [CLAIM], permutations=200, replicates=300, families={"f": FIVE})[0]
    excluded = dataclasses.replace(CLAIM, exclude_seeds=[5, 6], exclude_reason="test")
    by_hand = judge(report, [excluded], permutations=200, replicates=300)[0]
    assert planned.seeds_a == [0, 1, 2, 3, 4]
    assert planned.diff == pytest.approx(by_hand.diff) and planned.per_seed_a == by_hand.per_seed_a


def test_a_withheld_claim_keeps_its_place_in_holm(tmp_path):
    """A family of two, one claim complete and one whose row has no cell yet: the complete claim's Holm p is
    that of a family of two (the missing one counts with p = 1), not of a family of one."""
    report = _folder(tmp_path, hybrid_seeds=range(5))
    waiting = dataclasses.replace(CLAIM, claim="hybrid >= xx", b="sampler=xx")
    family = Family("test", {"sampler=xx": (0, 1, 2)})
    complete, withheld = judge(report, [CLAIM, waiting], 200, 300, families={"f": family})
    alone = judge(report, [CLAIM], permutations=200, replicates=300)[0]
    assert (
        withheld.outcome
        == "withheld (interim): declared seeds not all in; sampler=xx: 0 of 3 (missing 0, 1, 2)"
    )
    assert complete.p_holds_adj == pytest.approx(min(1.0, 2 * alone.p_holds))


def test_the_coverage_line_names_the_missing_cells(tmp_path):
    report = _folder(tmp_path, hybrid_seeds=[0, 1, 2, 7])
    text = family_coverage(report, {"f": FIVE, "g": Family("no plan")})
    assert text == (
        "- **f**: 8 of 10 declared cells in; missing: sampler=hybrid seeds 3, 4; present but not declared "
        "(never judged): sampler=hybrid seeds 7"
    )


def _claims_file(tmp_path, family_yaml: str) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(
        f"families:\n  f: {family_yaml}\nclaims:\n- {{claim: c, family: f, a: 'sampler=hybrid,finetune=lora', "
        "b: sampler=xx, dataset: tatoeba, group: all, metric: accuracy, expect: '>=', margin: 0.01, "
        "margin_reason: t, exclude_seeds: [0], exclude_reason: t}\n"
    )
    return path


def test_a_family_declares_its_seeds_in_the_claims_file(tmp_path):
    path = _claims_file(
        tmp_path, "{about: declared today, seeds: {'finetune=lora,sampler=hybrid': [3, 2, 1]}}"
    )
    family = load_claims_file(path).families["f"]
    assert family.about == "declared today"
    assert family.seeds == {"finetune=lora,sampler=hybrid": (1, 2, 3)}
    assert (
        family.declared("sampler=hybrid,finetune=lora") == (1, 2, 3) and family.declared("sampler=xx") is None
    )
    assert load_claims_file(_claims_file(tmp_path, "declared as text")).families["f"] == Family(
        "declared as text"
    )


@pytest.mark.parametrize(
    ("family_yaml", "message"),
    [
        ("{about: t, seeds: {sampler=xx: [0, 0]}}", "a list of distinct integer seeds"),
        ("{about: t, seeds: {sampler=xx: 5}}", "a list of distinct integer seeds"),
        ("{seeds: {sampler=xx: [0]}}", "write a description, or {about:"),
        (
            "{about: t, seeds: {sampler=xy: [0]}}",
            "seeds name the row 'sampler=xy', which none of its claims compares",
        ),
        (
            "{about: t, seeds: {'sampler=hybrid,finetune=lora': [0, 1]}}",
            "seeds [0] of 'sampler=hybrid,finetune=lora' are declared and also excluded by claim 'c'",
        ),
    ],
)
def test_a_bad_seed_plan_is_refused_naming_the_file_and_the_fix(tmp_path, family_yaml, message):
    with pytest.raises(InputError, match=re.escape(message)) as err:
        load_claims_file(_claims_file(tmp_path, family_yaml))
    assert str(tmp_path / "claims.yaml") in str(err.value)


@pytest.mark.parametrize(
    ("name", "family", "rows"),
    [
        ("attack_45", "attack_45", {"sampler=hybrid": range(5), "sampler=xx": range(5)}),
        (
            "peft_43",
            "peft_43",
            {"sampler=hybrid,finetune=lora": range(2, 10), "sampler=xy,finetune=lora": range(5)},
        ),
        (
            "domain_reverse_44",
            "domain_reverse_44",
            {f"sampler={s}": range(8) for s in ("hybrid", "xx", "xy")},
        ),
        (
            "domain_adaptive_44",
            "domain_adaptive_44",
            {f"sampler=hybrid,pretrain={p}": range(5, 10) for p in ("mlm", "contrastive")},
        ),
    ],
)
def test_the_families_under_way_declare_the_seeds_their_headers_state(name, family, rows):
    declared = load_claims_file(ROOT / "conf" / "claims" / f"{name}.yaml").families[family].seeds
    assert declared == {row: tuple(seeds) for row, seeds in rows.items()}
