"""Paired significance tests: the randomization test, Holm's correction, per-query units and report.py --baseline."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from scipy import stats

from mdr.eval.per_query import lareqa_units
from mdr.eval.suite import EvalSettings, run_eval
from mdr.modeling.baselines import HashingEncoder
from mdr.report.collect import COLUMNS, collect
from mdr.report.significance import baseline_rows, holm, paired_randomization_test
from mdr.report.write import write_report


def test_tiny_case_matches_a_hand_enumeration():
    # differences 1, 2, -0.5: of the 8 sign patterns, |sum| >= 2.5 for (+,+,-), (+,+,+), (-,-,-), (-,-,+)
    a, b = np.array([1.0, 2.0, 0.0]), np.array([0.0, 0.0, 0.5])
    assert paired_randomization_test(a, b, permutations=1000) == 0.5

    exact = stats.permutation_test(
        (a, b), lambda x, y: np.sum(x - y), permutation_type="samples", n_resamples=np.inf
    )
    assert exact.pvalue == 0.5


def test_identical_systems_give_p_one_and_a_shift_is_found():
    rng = np.random.default_rng(1)
    a = rng.random(2000)
    assert paired_randomization_test(a, a.copy()) == 1.0
    shifted = a + 0.02 + rng.normal(0, 0.1, len(a))
    p = paired_randomization_test(shifted, a, permutations=2000)
    assert p == pytest.approx(1 / 2001)  # no flip reaches the observed sum
    assert p == paired_randomization_test(shifted, a, permutations=2000)  # seeded: same p every time


def test_random_flips_agree_with_scipy_and_ranx():
    from ranx.statistical_tests import fisher_randomization_test

    rng = np.random.default_rng(2)
    a = rng.random(40)
    b = a + rng.normal(0.03, 0.1, 40)  # a weak shift: p well inside (0, 1)
    ours = paired_randomization_test(a, b, permutations=20_000)
    ref = stats.permutation_test(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=20_000,
        random_state=0,
    ).pvalue
    ranx_p, _ = fisher_randomization_test(a, b, 20_000, 0.05, 0)
    assert 0.01 < ours < 0.5
    assert ours == pytest.approx(ref, abs=0.015) and ours == pytest.approx(ranx_p, abs=0.015)


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02 .03 .06 .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]


# ---- real per-query files: hashed n-grams of two sizes on XQuAD-R and Tatoeba ----
SETTINGS = dict(datasets=["xquad_r", "tatoeba"], tatoeba_langs=["afr", "deu", "jav", "nld"], run_files="none")


def _run(root, name, sampler, seed, dim, data_dir, seen=("de", "en", "es")):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    config = {
        "sampler": {"_target_": f"mdr.training.samplers.{sampler}"},
        "model": {"name": f"hashing{dim}"},
        "finetune": {"mode": "full"},
        "seed": seed,
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    encoder = HashingEncoder(dim=dim)
    return run_eval(
        encoder, EvalSettings(**SETTINGS, show_progress=False), data_dir, run, list(seen), {"config": config}
    )


def _copy(root, src, name, sampler, seed):
    """Another run folder with the same per-query results (the hashing model has no seed to vary)."""
    shutil.copytree(root / src, root / name)
    for path in (root / name / ".hydra" / "config.yaml", root / name / "metrics.json"):
        text = path.read_text().replace("seed: 0", f"seed: {seed}").replace('"seed": 0', f'"seed": {seed}')
        path.write_text(text.replace(".XXSampler", f".{sampler}"))


@pytest.fixture(scope="module")
def two_systems(tmp_path_factory, data_dir):
    """xx and mixed: the same 2048-d model (identical per-query scores); hybrid: 96-d, hash collisions hurt.
    Two seeds each (copies: the per-query pairing and seed averaging are what is tested)."""
    root = tmp_path_factory.mktemp("sweep")
    metrics = {
        ("xx", 0): _run(root, "xx0", "XXSampler", 0, 2048, data_dir),
        ("hybrid", 0): _run(root, "hy0", "XXSampler", 0, 96, data_dir),
    }
    for name, src, sampler, seed in [
        ("xx1", "xx0", "XXSampler", 1),
        ("mixed0", "xx0", "MixedSampler", 0),
        ("mixed1", "xx0", "MixedSampler", 1),
        ("hy0b", "hy0", "HybridSampler", 0),
        ("hy1", "hy0", "HybridSampler", 1),
    ]:
        _copy(root, src, name, sampler, seed)
    shutil.rmtree(root / "hy0")
    return root, metrics


@pytest.mark.slow
def test_per_query_units_sum_to_the_headline_cells(two_systems):
    root, metrics = two_systems
    m = metrics[("xx", 0)]
    data = np.load(root / "xx0" / "eval" / "xquad_r" / "per_query.npz")
    summary = m["datasets"]["xquad_r"]["summary"]
    for _, (kind, metric), _ in COLUMNS:
        keys, contrib = lareqa_units(data, kind, metric)
        assert contrib.sum() == pytest.approx(summary[kind][metric], abs=1e-9)
        assert len(keys) == 11 * 1190  # every XQuAD-R query is one unit
        for subset in ("seen", "unseen"):
            _, part = lareqa_units(data, kind, metric, subset, ["de", "en", "es"])
            assert part.sum() == pytest.approx(summary[subset][kind][metric], abs=1e-9)


@pytest.mark.slow
def test_report_marks_a_real_difference_and_not_an_identical_system(two_systems, tmp_path):
    root, _ = two_systems
    r = write_report(root, tmp_path, baseline="sampler=xx", permutations=2000)
    assert set(r.baseline.values()) == {("xx", "hashing2048", "full")}
    mixed = r.comparisons[("mixed", "hashing2048", "full")]
    hybrid = r.comparisons[("hybrid", "hashing96", "full")]
    assert set(mixed) == set(hybrid) == {f"{ds}|{label}" for ds, label, _ in r.columns}
    assert all(c.p == 1.0 and c.diff == 0.0 for c in mixed.values())
    for col in ("xquad_r|mono mAP", "tatoeba|acc", "tatoeba|acc XTREME-36"):
        assert hybrid[col].p_holm < 0.05 and hybrid[col].diff < 0, col
        cells = (
            r.rows[("hybrid", "hashing96", "full")][col].mean
            - r.rows[("xx", "hashing2048", "full")][col].mean
        )
        assert hybrid[col].diff == pytest.approx(cells)  # the tested difference is the table's difference
        assert hybrid[col].seeds == [0, 1] and hybrid[col].p_holm >= hybrid[col].p
    md = (tmp_path / "results.md").read_text()
    assert "†" in md and "Holm-corrected" in md and "tatoeba acc low-res" in md
    hybrid_line = next(line for line in md.splitlines() if line.startswith("| hybrid"))
    mixed_line = next(line for line in md.splitlines() if line.startswith("| mixed"))
    assert "†" in hybrid_line and "†" not in mixed_line
    csv_rows = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_rows[0].endswith("diff_vs_baseline,p_value,p_holm,paired_units")
    assert any(row.startswith("mixed,") and ",1.0,1.0," in row for row in csv_rows)


@pytest.mark.slow
def test_baseline_selector_must_name_one_row(two_systems):
    root, _ = two_systems
    with pytest.raises(ValueError, match="matches 0 rows"):
        write_report(root, root / "out", baseline="sampler=xy")
    with pytest.raises(ValueError, match="key=value with keys from"):
        write_report(root, root / "out", baseline="optimizer=adam")
    assert collect(root).baseline is None


@pytest.mark.slow
def test_runs_without_per_query_files_say_how_to_get_them(two_systems, tmp_path):
    root, _ = two_systems
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "hy1" / "eval" / "tatoeba" / "per_query.npz").unlink()
    with pytest.raises(FileNotFoundError, match="re-evaluate it with eval.py"):
        write_report(copy, tmp_path / "out", baseline="sampler=xx", permutations=100)
    json.loads((copy / "hy1" / "metrics.json").read_text())  # the run itself is intact


# ---- claims (report.py --claims): verdicts recomputed from the per-query files ----
def _untrained_copy(root, src, dst):
    """An eval.py-style run of a backbone: no sampler, no seed (collect names its row 'untrained')."""
    shutil.copytree(root / src, dst / "untrained")
    path = dst / "untrained" / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    del config["sampler"], config["seed"]
    path.write_text(yaml.safe_dump(config))
    metrics = json.loads((dst / "untrained" / "metrics.json").read_text())
    metrics["config"] = config
    (dst / "untrained" / "metrics.json").write_text(json.dumps(metrics))


CLAIMS = [
    # xx (2048-d) beats hybrid (96-d): "hybrid >= xx" fails, "xx > hybrid" holds, "hybrid > xx" is reversed
    dict(claim="hybrid >= X-X mono", a="sampler=hybrid", b="sampler=xx", dataset="xquad_r", kind="mono",
         metric="map", expect=">="),
    dict(claim="X-X > hybrid Tatoeba", a="sampler=xx", b="sampler=hybrid", dataset="tatoeba", group="all",
         metric="accuracy", expect=">"),
    dict(claim="hybrid > X-X unseen multi", a="sampler=hybrid", b="sampler=xx", dataset="xquad_r",
         kind="multi", metric="p@1", subset="unseen", expect=">"),
    # mixed is xx's copy: no difference at all
    dict(claim="mixed >= X-X", a="sampler=mixed", b="sampler=xx", dataset="xquad_r", kind="cross",
         metric="mrr@5", expect=">="),
    dict(claim="mixed > X-X", a="sampler=mixed", b="sampler=xx", dataset="tatoeba", group="xtreme36",
         metric="mrr@5", expect=">"),
    # the untrained row (hybrid's 96-d model, no seed) against both seeds of xx
    dict(claim="X-X keeps Tatoeba", a="sampler=xx", b="sampler=untrained", dataset="tatoeba", group="all",
         metric="accuracy", expect=">="),
    dict(claim="X-Y exists", a="sampler=xy", b="sampler=xx", dataset="xquad_r", kind="mono", metric="map",
         expect=">="),
]  # fmt: skip


@pytest.mark.slow
def test_claims_verdicts_match_an_independent_recomputation(two_systems, tmp_path):
    from mdr.eval.per_query import tatoeba_units
    from mdr.report.claims import load_claims

    root, _ = two_systems
    sweep = tmp_path / "sweep"
    shutil.copytree(root, sweep)
    _untrained_copy(sweep, "hy1", sweep)
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(yaml.safe_dump(CLAIMS))
    r = write_report(sweep, tmp_path / "out", baseline="sampler=xx", claims=claims_file, permutations=2000)
    with (tmp_path / "out" / "claims.csv").open() as fh:
        import csv

        rows = {r["claim"]: r for r in csv.DictReader(fh)}
    outcome = {k: r["outcome"] for k, r in rows.items()}
    assert outcome == {
        "hybrid >= X-X mono": "does not hold (significantly worse)",
        "X-X > hybrid Tatoeba": "holds",
        "hybrid > X-X unseen multi": "reversed (significant the other way)",
        "mixed >= X-X": "holds (no significant difference)",
        "mixed > X-X": "not shown (difference not significant)",
        "X-X keeps Tatoeba": "holds (significantly better)",
        "X-Y exists": "not run (no runs for sampler=xy)",
    }

    def units(run, claim):
        data = np.load(sweep / run / "eval" / claim.dataset / "per_query.npz")
        if claim.dataset == "tatoeba":  # groups all and xtreme36: the four languages are XTREME-36 ones
            langs = SETTINGS["tatoeba_langs"]
            return tatoeba_units(data, langs, claim.metric)[1]
        return lareqa_units(data, claim.kind, claim.metric, claim.subset, ["de", "en", "es"])[1]

    runs = {
        "xx": ["xx0", "xx1"],
        "hybrid": ["hy0b", "hy1"],
        "mixed": ["mixed0", "mixed1"],
        "untrained": ["untrained"],
    }
    tested, seed_p = [], []
    for claim in load_claims(claims_file)[:-1]:
        a_name, b_name = claim.a.split("=")[1], claim.b.split("=")[1]
        a = np.mean([units(r, claim) for r in runs[a_name]], axis=0)
        b = np.mean([units(r, claim) for r in runs[b_name]], axis=0)
        row = rows[claim.claim]
        assert float(row["diff"]) == pytest.approx(a.sum() - b.sum(), abs=1e-12)
        assert float(row["a_value"]) == pytest.approx(a.sum()) and float(row["b_value"]) == pytest.approx(
            b.sum()
        )
        assert float(row["ci_low"]) <= float(row["diff"]) <= float(row["ci_high"])
        assert float(row["p"]) == pytest.approx(paired_randomization_test(a, b, 2000))
        tested.append(float(row["p"]))
        # seed level: a t-test over the per-seed differences (the unseeded row against each seed of the other)
        b_runs = runs[b_name] * len(runs[a_name]) if b_name == "untrained" else runs[b_name]
        per_seed = [units(ra, claim).sum() - units(rb, claim).sum() for ra, rb in zip(runs[a_name], b_runs)]
        assert json.loads(row["diff_per_seed"]) == pytest.approx(per_seed, abs=1e-12)
        spread = np.std(per_seed, ddof=1)
        half = stats.t.ppf(0.975, len(per_seed) - 1) * spread / np.sqrt(len(per_seed))
        assert float(row["seed_ci_low"]) == pytest.approx(np.mean(per_seed) - half, abs=1e-9)
        assert float(row["seed_ci_high"]) == pytest.approx(np.mean(per_seed) + half, abs=1e-9)
        if spread > 1e-12:
            seed_p.append(stats.ttest_1samp(per_seed, 0.0).pvalue)
        else:  # no seed-to-seed spread: p = 0 for a non-zero difference, 1 for none (scipy gives nan)
            seed_p.append(0.0 if abs(np.mean(per_seed)) > 1e-12 else 1.0)
        assert float(row["seed_p"]) == pytest.approx(seed_p[-1], abs=1e-9)
    assert [float(rows[c["claim"]]["p_holm"]) for c in CLAIMS[:-1]] == pytest.approx(holm(tested))
    assert [float(rows[c["claim"]]["seed_p_holm"]) for c in CLAIMS[:-1]] == pytest.approx(holm(seed_p))
    # the hashing encoder is deterministic, so each seed gives the same difference: the seed-level test is
    # as sure as the query test, and agrees with it (test_seed_level_test_matches_scipy covers the spread)
    assert {k: r["seed_outcome"] for k, r in rows.items()} == dict(outcome, **{"X-Y exists": ""})
    assert rows["mixed >= X-X"]["p"] == "1.0" and rows["mixed >= X-X"]["ci_low"] == "0.0"
    # the results table pairs the unseeded row with xx's mean over both seeds, as the claims do
    untrained = r.comparisons[("untrained", "hashing96", "full")]["tatoeba|acc"]
    assert untrained.diff == pytest.approx(-float(rows["X-X keeps Tatoeba"]["diff"])) and untrained.seeds == [
        None
    ]
    assert (
        rows["X-X keeps Tatoeba"]["seeds_b"] == "[None]" and rows["X-X keeps Tatoeba"]["seeds_a"] == "[0, 1]"
    )
    md = (tmp_path / "out" / "claims.md").read_text()
    assert "| X-Y exists |" in md and "**not run (no runs for sampler=xy)**" in md and "seed-to-seed" in md


@pytest.mark.parametrize(
    "expect, diff, significant, outcome",
    [
        (">", 0.1, True, "holds"),
        (">", -0.1, True, "reversed (significant the other way)"),
        (">", 0.1, False, "not shown (difference not significant)"),
        ("<", -3.0, True, "holds"),  # rank distance: lower is better
        ("<", 3.0, True, "reversed (significant the other way)"),
        (">=", 0.1, True, "holds (significantly better)"),
        (">=", -0.1, True, "does not hold (significantly worse)"),
        (">=", -0.1, False, "holds (no significant difference)"),
        ("<=", -3.0, True, "holds (significantly better)"),
        ("<=", 3.0, True, "does not hold (significantly worse)"),
        ("<=", 3.0, False, "holds (no significant difference)"),
    ],
)
def test_claim_outcomes_follow_the_expected_direction(expect, diff, significant, outcome):
    from mdr.report.claims import _outcome

    assert _outcome(expect, diff, significant) == outcome


def test_seed_level_test_matches_scipy():
    from mdr.report.claims import seed_level_test

    # the per-seed differences of hybrid - X-X cross-lingual mAP in results/decisive (3 seeds): mixed signs
    diffs = [0.0133, -0.0048, 0.0007]
    interval, p = seed_level_test(diffs)
    ref = stats.ttest_1samp(diffs, 0.0)
    assert p == pytest.approx(ref.pvalue) and p > 0.05
    low, high = ref.confidence_interval(0.95)
    assert interval == pytest.approx((low, high))
    # a hand case: 1, 2, 3 -> mean 2, sd 1, t = 2 * sqrt(3) with 2 degrees of freedom
    _, p = seed_level_test([1.0, 2.0, 3.0])
    assert p == pytest.approx(2 * stats.t.sf(2 * np.sqrt(3), 2))
    assert seed_level_test([0.5]) == (None, None)  # one seed: no seed-level test
    assert seed_level_test([0.0, 0.0])[1] == 1.0 and seed_level_test([0.2, 0.2])[1] == 0.0


def test_claims_file_errors_name_the_claim(tmp_path):
    from mdr.report.claims import load_claims

    bad = [
        (dict(CLAIMS[0], expect="better"), "expect='better'"),
        (dict(CLAIMS[0], kind=None), "LAReQA claims name a kind"),
        (dict(CLAIMS[1], kind="mono"), "Tatoeba claims name a group"),
        (dict(CLAIMS[0], subset="rare"), "subset='rare'"),
        (dict(CLAIMS[0], colour="red"), r"unknown field\(s\) \['colour'\]"),
        ({k: v for k, v in CLAIMS[0].items() if k != "metric"}, "hybrid >= X-X mono.*metric"),
    ]
    for i, (claim, message) in enumerate(bad):
        path = tmp_path / f"{i}.yaml"
        path.write_text(yaml.safe_dump([claim]))
        with pytest.raises(ValueError, match=message):
            load_claims(path)
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ValueError, match="empty.yaml is empty; write a YAML list of claims"):
        load_claims(tmp_path / "empty.yaml")
    (tmp_path / "mapping.yaml").write_text("claim: one\n")
    with pytest.raises(ValueError, match="non-empty YAML list of claims, got a dict"):
        load_claims(tmp_path / "mapping.yaml")


def test_a_baseline_matching_several_rows_is_taken_within_each_group():
    names = ["sampler", "model", "finetune"]
    rows = [
        ("hybrid", "me5", "full"),
        ("hybrid", "me5", "lora"),
        ("hybrid", "me5", "frozen"),
        ("untrained", "me5", "full"),
        ("xx", "me5", "full"),
        ("xx", "me5", "lora"),
    ]
    grouped = baseline_rows(rows, names, "sampler=xx")
    assert grouped == {
        ("hybrid", "me5", "full"): ("xx", "me5", "full"),
        ("hybrid", "me5", "lora"): ("xx", "me5", "lora"),
        ("untrained", "me5", "full"): ("xx", "me5", "full"),
    }  # no X-X frozen row: hybrid frozen is not tested; baseline rows are not tested against each other
    single = baseline_rows(rows, names, "sampler=xx,finetune=full")
    assert set(single) == set(rows) - {("xx", "me5", "full")}
    assert set(single.values()) == {("xx", "me5", "full")}
    with pytest.raises(ValueError, match="matches 0 rows"):
        baseline_rows(rows, names, "sampler=xy")
