"""Declaring a family before its cells train: seeds excluded from a verdict, conditions declared undecidable at
their margin, attack datasets as claim numbers, and the sizing that chooses seeds from proxy rows."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from synthetic_results import tatoeba_folder

from mdr.report.claims import ALPHA, Claim, judge, load_claims_file, load_claims_files
from mdr.report.collect import collect
from mdr.report.sizing import size_family
from mdr.runtime.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
ADVERSARIAL = ROOT / "results" / "adversarial"

CLAIM = Claim("hybrid >= mixed", "sampler=hybrid", "sampler=mixed", "tatoeba", "accuracy", ">=", group="all",
              family="f", margin=0.01, margin_reason="test")  # fmt: skip


def _one_block(seeds: int = 5) -> dict:
    return {"hybrid": [(s, "B1") for s in range(seeds)], "mixed": [(s, "B1") for s in range(seeds)]}


def test_excluded_seeds_are_left_out_of_the_verdict(tmp_path):
    report = tatoeba_folder(tmp_path, _one_block(), {"hybrid": 0.02})
    every = judge(report, [CLAIM], permutations=200, replicates=300)[0]
    later = dataclasses.replace(CLAIM, exclude_seeds=[0, 1], exclude_reason="they motivated the claim")
    judged = judge(report, [later], permutations=200, replicates=300)[0]
    assert judged.seeds_a == [2, 3, 4] and judged.seeds_b == [2, 3, 4]
    assert judged.per_seed_a == every.per_seed_a[2:] and judged.per_seed_b == every.per_seed_b[2:]
    assert judged.diff == pytest.approx(np.mean(every.per_seed_a[2:]) - np.mean(every.per_seed_b[2:]))


def test_a_claim_declared_undecidable_is_reported_but_not_in_holm(tmp_path):
    report = tatoeba_folder(tmp_path, _one_block(), {"hybrid": 0.05})
    tested = dataclasses.replace(CLAIM, claim="tested")
    undecidable = dataclasses.replace(CLAIM, claim="undecidable", undecidable="floor 0.02 > margin 0.01")
    alone = judge(report, [tested], permutations=200, replicates=300)[0]
    both = judge(report, [tested, undecidable], permutations=200, replicates=300)
    assert both[0].p_holds_adj == pytest.approx(alone.p_holds_adj)  # a family of one: Holm does not move it
    assert both[0].outcome == "holds"
    assert both[1].outcome.startswith("declared undecidable at this margin (floor 0.02 > margin 0.01)")
    assert both[1].p_holds_adj is None and both[1].boot is not None  # its interval is still there


def test_claim_fields_are_checked_when_the_file_loads(tmp_path):
    bad = tmp_path / "claims.yaml"
    bad.write_text(
        "families: {f: test}\nclaims:\n- {claim: c, family: f, a: x, b: y, dataset: 'xquad_r~attack', kind: cross, "
        "metric: p@1, expect: '>'}\n"
    )
    with pytest.raises(InputError, match="field budget: an attack claim names the edits per query"):
        load_claims_file(bad)
    bad.write_text(
        "claims:\n- {claim: c, a: x, b: y, dataset: tatoeba, group: all, metric: accuracy, expect: '>', "
        "exclude_seeds: [0]}\n"
    )
    with pytest.raises(InputError, match="field exclude_seeds: a list of seeds with an exclude_reason"):
        load_claims_file(bad)


def test_an_attack_claim_reads_the_attacked_p_at_1_of_each_query():
    """The archived attack files of results/adversarial: the claim's row values are the mean attacked P@1 of
    the cross-lingual targets at the budget, computed here straight from per_query.npz."""
    report = collect(ADVERSARIAL)
    claim = Claim("hybrid vs X-X under attack", "sampler=hybrid", "sampler=xx", "xquad_r~attack", "p@1", ">=",
                  kind="cross", budget=1)  # fmt: skip
    clean = dataclasses.replace(claim, budget=0)
    v, v0 = judge(report, [claim, clean], permutations=200, replicates=300)
    for sampler, value, value0 in (("hybrid", v.a_value, v0.a_value), ("xx", v.b_value, v0.b_value)):
        (path,) = ADVERSARIAL.glob(f"ckpt.experiment=decisive,ckpt.sampler={sampler},ckpt.seed=1,*")
        data = np.load(path / "eval" / "xquad_r~attack" / "per_query.npz")
        cross = data["settings"] == "cross"
        assert value == pytest.approx(data["greedy/k1/p@1"][cross].mean())
        assert value0 == pytest.approx(data["clean/k0/p@1"][cross].mean())
        assert value < value0  # one edit per query lowers P@1
    questions = {u.split(":", 1)[1] for u in data["uids"][cross]}
    assert v.n_clusters == len(questions)  # a question with all its language versions is one cluster


def test_sizing_finds_the_floor_and_the_seeds_a_margin_needs(tmp_path):
    """Equal recipes: a margin far above the floor distance needs few seeds, one below it is never shown; the
    cluster scale shrinks the floor's standard error by its square root."""
    tatoeba_folder(tmp_path, _one_block(4))
    wide = dataclasses.replace(CLAIM, claim="wide", margin=0.2, sized_with={})
    narrow = dataclasses.replace(CLAIM, claim="narrow", margin=0.0005, sized_with={})
    scaled = dataclasses.replace(CLAIM, claim="scaled", margin=0.2, sized_with={"clusters_scale": 0.25})
    rows = {s.claim.claim: s for s in size_family([wide, narrow, scaled], str(tmp_path))}
    assert rows["narrow"].floor_distance > 0.0005 and rows["narrow"].seeds_at_zero is None
    assert rows["wide"].floor_distance < 0.2 and rows["wide"].seeds_at_zero is not None
    assert rows["wide"].seeds_at_zero <= 3
    assert rows["scaled"].floor_se == pytest.approx(rows["wide"].floor_se / 2)
    # the family's level: three tested claims share ALPHA
    assert rows["wide"].floor_distance > rows["wide"].floor_se * 2.0  # t(1 - 0.025 / 3) + z(0.8) > 2
    assert ALPHA == 0.025


def test_sizing_proxy_rows_must_exist(tmp_path):
    tatoeba_folder(tmp_path, _one_block(3))
    ghost = dataclasses.replace(CLAIM, sized_with={"a": "sampler=ghost"})
    with pytest.raises(InputError, match="no runs for sampler=ghost"):
        size_family([ghost], str(tmp_path))


def test_the_declared_claims_files_load():
    """Every committed claims file parses, and each new family names how it was sized."""
    for name in ("peft_43", "domain_reverse_44", "domain_adaptive_44", "attack_45"):
        cf = load_claims_file(ROOT / "conf" / "claims" / f"{name}.yaml")
        members = [c for c in cf.claims if c.family == name]
        assert members and all(c.sized_with is not None for c in members)
        assert name in cf.families


def _one_family_file(path: Path, family: str, a: str) -> Path:
    path.write_text(
        f"families: {{{family}: test}}\nclaims:\n- {{claim: '{a} >= mixed', family: {family}, a: sampler={a}, "
        "b: sampler=mixed, dataset: tatoeba, group: all, metric: accuracy, expect: '>=', margin: 0.01, "
        "margin_reason: test}\n"
    )
    return path


def test_several_claims_files_are_judged_together_with_holm_within_each_family(tmp_path):
    """Every family declared on a folder read at once (report.py --claims a.yaml,b.yaml): each family keeps its
    own correction, so each verdict is the one its file alone gives."""
    report = tatoeba_folder(tmp_path / "runs", {s: [(k, "B1") for k in range(4)] for s in ("hybrid", "xx", "mixed")},
                            {"hybrid": 0.03, "xx": 0.01})  # fmt: skip
    first = _one_family_file(tmp_path / "first.yaml", "f1", "hybrid")
    second = _one_family_file(tmp_path / "second.yaml", "f2", "xx")
    both = load_claims_files(f"{first},{second}")
    assert [c.family for c in both.claims] == ["f1", "f2"] and set(both.families) == {"f1", "f2"}
    together = judge(report, both.claims, 200, 300, families=both.families)
    alone = [judge(report, load_claims_file(f).claims, 200, 300)[0] for f in (first, second)]
    assert [v.p_holds_adj for v in together] == pytest.approx([v.p_holds_adj for v in alone])
    assert [v.outcome for v in together] == [v.outcome for v in alone]


def test_a_family_declared_in_two_claims_files_is_refused(tmp_path):
    first = _one_family_file(tmp_path / "first.yaml", "f", "hybrid")
    second = _one_family_file(tmp_path / "second.yaml", "f", "xx")
    with pytest.raises(
        InputError, match=r"second.yaml: family \['f'\] is also declared in another --claims file"
    ):
        load_claims_files([first, second])
