"""Paired significance tests: the randomization test, Holm's correction, per-query units and report.py --baseline."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from scipy import stats

from mdr.eval.outputs.per_query import lareqa_units
from mdr.eval.plan import EvalPlan
from mdr.eval.suite import EvalSettings, run_eval
from mdr.modeling.baselines import HashingEncoder
from mdr.report.collect import COLUMNS
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
        encoder,
        EvalPlan.build(EvalSettings(**SETTINGS, show_progress=False), data_dir),
        run,
        list(seen),
        {"config": config},
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
    Three seeds each, the fewest a primary claim accepts (copies: the per-query pairing and seed averaging are
    what is tested)."""
    root = tmp_path_factory.mktemp("sweep")
    metrics = {
        ("xx", 0): _run(root, "xx0", "XXSampler", 0, 2048, data_dir),
        ("hybrid", 0): _run(root, "hy0", "XXSampler", 0, 96, data_dir),
    }
    for name, src, sampler, seed in [
        ("xx1", "xx0", "XXSampler", 1),
        ("xx2", "xx0", "XXSampler", 2),
        ("mixed0", "xx0", "MixedSampler", 0),
        ("mixed1", "xx0", "MixedSampler", 1),
        ("mixed2", "xx0", "MixedSampler", 2),
        ("hy0b", "hy0", "HybridSampler", 0),
        ("hy1", "hy0", "HybridSampler", 1),
        ("hy2", "hy0", "HybridSampler", 2),
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
        assert hybrid[col].seeds == [0, 1, 2] and hybrid[col].p_holm >= hybrid[col].p
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
        write_report(root, root / "bad_selector", baseline="optimizer=adam")
    assert not (root / "out").exists() and not (root / "bad_selector").exists()  # failed before writing


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


FAMILIES = {"primary": "the first three claims, declared before the runs"}
MARGIN = {"margin": 0.005, "margin_reason": "half a point"}


def claims_file_text(claims, primary=3):
    """The CLAIMS as a claims file whose first ``primary`` claims form the primary family."""
    listed = [dict(c, family="primary", **(MARGIN if c["expect"] in (">=", "<=") else {})) if i < primary else c
              for i, c in enumerate(claims)]  # fmt: skip
    return yaml.safe_dump({"families": FAMILIES, "claims": listed})


def clusters_of(run_dir, claim):
    """Per-cluster sums of one run's per-unit numbers, recomputed here: LAReQA by question id (all language
    versions together), a Tatoeba group by language."""
    from mdr.eval.outputs.per_query import tatoeba_units

    data = np.load(run_dir / "eval" / claim.dataset / "per_query.npz")
    if claim.dataset == "tatoeba":  # groups all and xtreme36: the four languages are XTREME-36 ones
        keys, values = tatoeba_units(data, SETTINGS["tatoeba_langs"], claim.metric)
        cluster = [k.split(":")[0] for k in keys]
    else:
        keys, values = lareqa_units(data, claim.kind, claim.metric, claim.subset, ["de", "en", "es"])
        cluster = [k.split(":", 1)[1] for k in keys]
    sums: dict[str, float] = {}
    for c, v in zip(cluster, values):
        sums[c] = sums.get(c, 0.0) + v
    return np.array([sums[c] for c in sorted(sums)])


@pytest.mark.slow
def test_claims_verdicts_match_an_independent_recomputation(two_systems, tmp_path):
    from mdr.report.claims import load_claims

    root, _ = two_systems
    sweep = tmp_path / "sweep"
    shutil.copytree(root, sweep)
    _untrained_copy(sweep, "hy1", sweep)
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(claims_file_text(CLAIMS))
    r = write_report(sweep, tmp_path / "out", baseline="sampler=xx", claims=claims_file, permutations=2000)
    with (tmp_path / "out" / "claims.csv").open() as fh:
        import csv

        rows = {r["claim"]: r for r in csv.DictReader(fh)}
    outcome = {k: r["outcome"] for k, r in rows.items()}
    assert outcome["hybrid >= X-X mono"].startswith("does not hold (a - b = -")  # with its effect size
    assert outcome["X-X > hybrid Tatoeba"] == "holds"
    assert outcome["hybrid > X-X unseen multi"].startswith("does not hold")
    assert outcome["X-Y exists"] == "not run (no runs for sampler=xy)"
    for name in ("mixed >= X-X", "mixed > X-X", "X-X keeps Tatoeba"):  # exploratory: no adjusted verdict
        assert outcome[name] == f"exploratory: tail beyond 0 = {float(rows[name]['tail_beyond_0']):.3f}"
    assert rows["mixed >= X-X"]["diff"] == "0.0" and float(rows["mixed > X-X"]["tail_beyond_0"]) == 0.5

    runs = {
        "xx": ["xx0", "xx1", "xx2"],
        "hybrid": ["hy0b", "hy1", "hy2"],
        "mixed": ["mixed0", "mixed1", "mixed2"],
        "untrained": ["untrained"],
    }
    for claim in load_claims(claims_file)[:-1]:
        row = rows[claim.claim]
        a_name, b_name = claim.a.split("=")[1], claim.b.split("=")[1]
        a = np.stack([clusters_of(sweep / x, claim) for x in runs[a_name]])
        b = np.stack([clusters_of(sweep / x, claim) for x in runs[b_name]])
        diff = a.mean(0).sum() - b.mean(0).sum()
        assert float(row["diff"]) == pytest.approx(diff, abs=1e-12)
        assert int(row["n_clusters"]) == a.shape[1]
        assert json.loads(row["per_seed_a"]) == pytest.approx(a.sum(1).tolist())
        # the copies have no seed-to-seed spread: a clustered interval, t with C - 1 degrees of freedom
        m = a.mean(0) - b.mean(0)
        if not m.any():  # identical systems: no variance at all
            assert float(row["se"]) == 0.0 and float(row["ci_low"]) == float(row["ci_high"]) == 0.0
            continue
        se = np.sqrt(len(m) * m.var(ddof=1))
        assert float(row["df"]) == pytest.approx(len(m) - 1)
        assert float(row["se"]) == pytest.approx(se, rel=0.06)
        half = stats.t.ppf(0.975, len(m) - 1) * float(row["se"])
        assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((diff - half, diff + half))
        # the secondary view: sign flips of whole clusters on the rows' seed means
        assert float(row["query_p_clustered"]) == pytest.approx(
            paired_randomization_test(a.mean(0), b.mean(0), 2000)
        )
    primary = [c["claim"] for c in CLAIMS[:3]]
    primary_p = [float(rows[c]["p_holds"]) for c in primary]
    assert [float(rows[c]["p_holds_holm"]) for c in primary] == pytest.approx(holm(primary_p))
    assert all(rows[c]["p_holds_holm"] == "" for c in rows if c not in primary)  # exploratory: no Holm
    md = (tmp_path / "out" / "claims.md").read_text()
    assert md.index("## Primary claims") < md.index("## All claims")
    assert "| X-Y exists |" in md and "**primary**: the first three claims" in md
    # the results table still pairs the unseeded row with xx's mean over both seeds
    untrained = r.comparisons[("untrained", "hashing96", "full")]["tatoeba|acc"]
    assert untrained.diff == pytest.approx(-float(rows["X-X keeps Tatoeba"]["diff"]))
    assert (
        rows["X-X keeps Tatoeba"]["seeds_b"] == "[null]"
        and rows["X-X keeps Tatoeba"]["seeds_a"] == "[0, 1, 2]"
    )


def _verdict(expect, diff, se, df, n_seeds=5, margin=None, clusters_var=0.0):
    from mdr.report.bootstrap import BootstrapResult, Components
    from mdr.report.claims import Claim, Verdict, one_sided_tests

    claim = Claim("c", "sampler=a", "sampler=b", "xquad_r", "map", expect, kind="mono", family="primary",
                  margin=margin, margin_reason="r" if margin is not None else "")  # fmt: skip
    comps = Components(
        se**2 / 2 - clusters_var / 2, se**2 / 2 - clusters_var / 2, clusters_var, n_seeds, n_seeds, 50
    )
    half = stats.t.ppf(0.975, df) * se
    boot = BootstrapResult(diff, np.array([diff]), se, df, (diff - half, diff + half), (diff, diff), comps)
    v = Verdict(claim, "", 0.0, 0.0, list(range(n_seeds)), list(range(n_seeds)), boot)
    v.p_holds, v.p_fails = one_sided_tests(boot, claim)
    return v


@pytest.mark.parametrize(
    "expect, diff, margin, outcome",
    [
        (">", 0.02, None, "holds"),
        (">", -0.02, None, "does not hold (a - b = -0.02"),
        (">", 0.006, None, "inconclusive (too few seeds: 5 per row; ~"),
        ("<", -30.0, None, "holds"),  # rank distance: lower is better
        ("<", 30.0, None, "does not hold"),
        (">=", -0.001, 0.02, "holds"),  # worse, but well within the margin
        (">=", -0.04, 0.005, "does not hold"),  # worse than the margin allows
        (">=", 0.0, 0.005, "inconclusive"),  # the interval straddles -margin
        ("<=", 1.0, 30.0, "holds"),
    ],
)
def test_claim_outcomes_follow_the_interval(expect, diff, margin, outcome):
    from mdr.report.claims import _adjust_and_decide

    se = 5.0 if expect in ("<", "<=") else 0.004
    v = _verdict(expect, diff, se, df=8, margin=margin)
    _adjust_and_decide([v])
    assert v.outcome.startswith(outcome), v.outcome
    if v.outcome == "holds":  # the interval agrees: it clears the threshold
        low, high = v.boot.ci
        assert (low > v.claim.threshold) if v.claim.higher_is_better else (high < v.claim.threshold)


def test_an_undecidable_claim_says_so():
    """The test set's own variance alone is wider than the margin allows: more seeds cannot decide it."""
    from mdr.report.claims import _adjust_and_decide

    v = _verdict(">=", 0.0, se=0.01, df=40, margin=0.005, clusters_var=0.01**2 * 0.9)
    _adjust_and_decide([v])
    assert v.outcome.startswith("inconclusive (more seeds cannot decide it") and v.seeds_needed is None


def test_a_claim_past_its_margin_but_not_after_holm_leans_against():
    """The estimate is beyond the margin on the failing side, yet the test that it does not hold misses 0.025:
    the outcome names that lean and sizes the seeds for that test, not for the claim's own (never reachable)."""
    from mdr.report.claims import _adjust_and_decide

    family = [_verdict(">=", -0.016, se=0.004, df=8, margin=0.005) for _ in range(4)]  # raw p about 0.003
    _adjust_and_decide(family)
    v = family[0]
    assert v.p_fails < 0.025 < v.p_fails_adj
    assert v.outcome.startswith("inconclusive after Holm, leaning 'does not hold' (the interval lies past"), (
        v.outcome
    )
    assert v.seeds_needed is not None and v.seeds_needed > 5  # more seeds would show it does not hold
    weak = _verdict(">=", -0.008, se=0.004, df=8, margin=0.005)  # past -0.005, but well inside the noise
    _adjust_and_decide([weak])
    assert weak.outcome.startswith("inconclusive (the estimate is past the threshold -0.005; "), weak.outcome
    on_the_claims_side = _verdict(">=", 0.0, se=0.004, df=8, margin=0.005)
    _adjust_and_decide([on_the_claims_side])
    assert "leaning" not in on_the_claims_side.outcome


def test_claims_file_errors_name_the_claim_and_field(tmp_path):
    from mdr.report.claims import load_claims

    bad = [
        (dict(CLAIMS[0], expect="better"), "expect='better'"),
        (dict(CLAIMS[0], kind=None), "LAReQA claims name a kind"),
        (dict(CLAIMS[1], kind="mono"), "Tatoeba claims name a group"),
        (dict(CLAIMS[0], subset="rare"), "subset='rare'"),
        (dict(CLAIMS[0], colour="red"), r"unknown field\(s\) \['colour'\]"),
        ({k: v for k, v in CLAIMS[0].items() if k != "metric"}, "hybrid >= X-X mono.*metric"),
        (
            dict(CLAIMS[0], margin=-0.01, margin_reason="x"),
            r"claim 'hybrid >= X-X mono': field margin=-0.01 must be",
        ),
        (
            dict(CLAIMS[0], family="secondary"),
            r"claim 'hybrid >= X-X mono': field family='secondary' is not declared",
        ),
        (
            dict(CLAIMS[0], family="primary"),
            r"claim 'hybrid >= X-X mono': field margin: a primary '>=' claim",
        ),
        (dict(CLAIMS[0], paired=True), r"field paired_reason"),
    ]
    for i, (claim, message) in enumerate(bad):
        path = tmp_path / f"{i}.yaml"
        path.write_text(yaml.safe_dump({"families": FAMILIES, "claims": [claim]}))
        with pytest.raises(ValueError, match=message):
            load_claims(path)
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ValueError, match="empty.yaml is empty; write a YAML list of claims"):
        load_claims(tmp_path / "empty.yaml")
    (tmp_path / "mapping.yaml").write_text("claim: one\n")
    with pytest.raises(ValueError, match="unknown top-level field"):
        load_claims(tmp_path / "mapping.yaml")


@pytest.mark.slow
def test_primary_claims_need_their_rows_seeds_and_per_query_files(two_systems, tmp_path):
    """A primary claim fails the report (naming the claim and the field) where an exploratory one would be
    listed as not run: missing rows, a cell without its per-query file. Nothing is written. Fewer seeds than a
    valid interval needs: the report is written and the claim is refused, with the reason."""
    from mdr.runtime.errors import InputError

    root, _ = two_systems

    def report(claim, sweep=root):
        path = tmp_path / "claims.yaml"
        path.write_text(
            yaml.safe_dump({"families": FAMILIES, "claims": [dict(claim, family="primary", **MARGIN)]})
        )
        out = tmp_path / "out"
        with pytest.raises(InputError) as err:
            write_report(sweep, out, claims=path, permutations=200)
        assert not out.exists() or not any(out.iterdir())
        return str(err.value)

    assert "claim 'X-Y exists' (primary): field a: no runs for 'sampler=xy'" in report(CLAIMS[-1])
    two_seeds = tmp_path / "two_seeds"
    shutil.copytree(root, two_seeds)
    shutil.rmtree(two_seeds / "xx1")
    path = tmp_path / "claims.yaml"
    path.write_text(
        yaml.safe_dump({"families": FAMILIES, "claims": [dict(CLAIMS[0], family="primary", **MARGIN)]})
    )
    verdict = write_report(two_seeds, tmp_path / "refused", claims=path, permutations=200)
    text = (tmp_path / "refused" / "claims_primary.md").read_text()
    assert "**refused: 2 unpaired seed(s) per row; a primary claim needs >= 3" in text and verdict.runs
    no_file = tmp_path / "no_file"
    shutil.copytree(root, no_file)
    (no_file / "xx1" / "eval" / "xquad_r" / "per_query.npz").unlink()
    assert "per_query.npz is missing" in report(CLAIMS[0], no_file)


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


def test_a_claim_selector_means_the_default_of_the_keys_it_leaves_out():
    """Merged rows (merge=wise0.5) beside the trained ones: sampler=hybrid,finetune=full names the trained row;
    naming the merged row needs merge=...; two candidates that are both non-default stay ambiguous."""
    from types import SimpleNamespace

    from mdr.report.claims import runs_of

    names = ["sampler", "model", "finetune", "merge"]
    keys = [
        ("hybrid", "me5", "full", "default"),
        ("hybrid", "me5", "full", "wise0.5"),
        ("xx", "me5", "full", "default"),
    ]
    report = SimpleNamespace(key_names=names, runs=[SimpleNamespace(key=k) for k in keys])
    assert [r.key for r in runs_of(report, "sampler=hybrid,finetune=full")] == [keys[0]]
    assert [r.key for r in runs_of(report, "sampler=hybrid,merge=wise0.5")] == [keys[1]]
    report.runs.append(SimpleNamespace(key=("hybrid", "me5", "full", "wise0.75")))
    report.runs = [r for r in report.runs if r.key[3] != "default" or r.key[0] != "hybrid"]
    with pytest.raises(ValueError, match="matches 2 rows"):
        runs_of(report, "sampler=hybrid")


@pytest.mark.slow
def test_same_seeds_keeps_only_the_seeds_both_rows_have(two_systems, tmp_path):
    """``same_seeds: true`` judges "X-X at hybrid's seeds": X-X seed 3 (here a different, weaker model) drops
    out, so the verdict equals the one on a folder without it; without the flag seed 3 pulls X-X's mean down."""
    root, _ = two_systems
    sweep = tmp_path / "sweep"
    shutil.copytree(root, sweep)
    shutil.copytree(sweep / "hy1", sweep / "xx3")  # the 96-d model, labelled X-X seed 3
    for path in (sweep / "xx3" / ".hydra" / "config.yaml", sweep / "xx3" / "metrics.json"):
        text = path.read_text().replace("seed: 1", "seed: 3").replace('"seed": 1', '"seed": 3')
        path.write_text(text.replace(".HybridSampler", ".XXSampler").replace("hashing96", "hashing2048"))

    def rows(folder, **flags):
        claims = [dict(CLAIMS[0], claim=f"c{i}", **f) for i, f in enumerate([{}, flags])]
        path = tmp_path / "claims.yaml"
        path.write_text(yaml.safe_dump({"families": FAMILIES, "claims": claims}))
        write_report(folder, tmp_path / f"out_{folder.name}", claims=path, permutations=200)
        with (tmp_path / f"out_{folder.name}" / "claims.csv").open() as fh:
            import csv

            return list(csv.DictReader(fh))

    all_seeds, same = rows(sweep, same_seeds=True)
    assert json.loads(all_seeds["seeds_b"]) == [0, 1, 2, 3] and json.loads(same["seeds_b"]) == [0, 1, 2]
    assert float(all_seeds["diff"]) > float(same["diff"])  # seed 3's weaker X-X narrows hybrid's gap
    without = tmp_path / "without"
    shutil.copytree(sweep, without)
    shutil.rmtree(without / "xx3")
    reference = rows(without)[0]
    for column in ("diff", "ci_low", "ci_high", "seeds_a", "seeds_b"):
        assert same[column] == reference[column]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"claims": [dict(CLAIMS[0], b="sampler=untrained", same_seeds=True)]}))
    _untrained_copy(root, "xx0", tmp_path / "with_untrained")
    shutil.copytree(root / "hy1", tmp_path / "with_untrained" / "hy1")
    with pytest.raises(ValueError, match="claim 'hybrid >= X-X mono': field same_seeds: the rows share no"):
        write_report(tmp_path / "with_untrained", tmp_path / "out_bad", claims=bad, permutations=200)
