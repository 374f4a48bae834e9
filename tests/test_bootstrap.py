"""The two-level (seeds x clusters) bootstrap: exact on a tiny case, a plain clustered bootstrap with one seed
per row, and intervals that cover the true recipe difference 93-97% of the time in simulation."""

import itertools

import numpy as np
import pytest
from scipy import stats

from mdr.report.bootstrap import (
    Components,
    bootstrap_diff,
    cluster_sums,
    components,
    equivalence_margin,
    seeds_for_power,
)
from mdr.report.claims import MIN_SEEDS_PAIRED, MIN_SEEDS_UNPAIRED


def exact_distribution(a, b, paired=False):
    """Every equally likely resample (clusters jointly, seeds per row) enumerated: {difference: probability}."""
    n_a, n_b, n_c = a.shape[0], b.shape[0], a.shape[1]
    out: dict[float, float] = {}
    seed_draws_b = [None] if paired else list(itertools.product(range(n_b), repeat=n_b))
    total = n_c**n_c * n_a**n_a * len(seed_draws_b)
    for cs in itertools.product(range(n_c), repeat=n_c):
        for sa in itertools.product(range(n_a), repeat=n_a):
            for sb in seed_draws_b:
                sb = sa if paired else sb
                value = np.mean([a[s, list(cs)].sum() for s in sa]) - np.mean(
                    [b[s, list(cs)].sum() for s in sb]
                )
                key = round(float(value), 10)
                out[key] = out.get(key, 0.0) + 1.0 / total
    return out


@pytest.mark.parametrize("paired", [False, True])
def test_replicates_follow_the_enumerated_distribution(paired):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    exact = exact_distribution(a, b, paired)
    r = bootstrap_diff(a, b, replicates=200_000, seed=1, paired=paired)
    values, probs = np.array(list(exact)), np.array(list(exact.values()))
    mean, var = (values * probs).sum(), (probs * (values - (values * probs).sum()) ** 2).sum()
    assert r.replicates.mean() == pytest.approx(mean, abs=4 * np.sqrt(var / 200_000))
    assert r.replicates.var() == pytest.approx(var, rel=0.02)
    observed = np.round(r.replicates, 10)
    assert set(np.unique(observed)) <= set(values)  # every replicate is one of the enumerated resamples
    for v, p in zip(values, probs):
        assert np.mean(observed == v) == pytest.approx(p, abs=0.006)
    assert r.diff == pytest.approx(a.mean(0).sum() - b.mean(0).sum())


def test_one_seed_per_row_is_a_plain_clustered_bootstrap():
    """n = 1: seeds are not resampled, the replicates' variance is the clustered bootstrap's C * var(d_c)
    (plug-in); the standard error is the unbiased C * var(d_c, ddof=1), with the clusters' degrees of freedom."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1, 40)), rng.normal(size=(1, 40))
    r = bootstrap_diff(a, b, replicates=100_000, seed=2)
    d = (a - b)[0]
    plug_in = len(d) * d.var()  # the exact variance of a resampled sum of 40 cluster differences
    assert r.replicates.var() == pytest.approx(plug_in, rel=0.02)
    comps = components(a, b)
    assert comps.seeds_a == comps.seeds_b == 0.0
    assert comps.clusters == pytest.approx(len(d) * d.var(ddof=1))
    assert comps.df == pytest.approx(len(d) - 1)
    assert r.se**2 == pytest.approx(comps.clusters, rel=1e-12)
    half = stats.t.ppf(0.975, len(d) - 1) * r.se
    assert r.ci == pytest.approx((d.sum() - half, d.sum() + half))


def test_a_row_without_seeds_is_resampled_over_clusters_only():
    """The untrained backbone (one evaluation, no seed) against a row of 5 seeds: only a's seeds vary."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 30)), rng.normal(size=(1, 30))
    comps = components(a, b)
    assert comps.seeds_b == 0.0 and comps.seeds_a == pytest.approx(np.var(a.sum(1), ddof=1) / 5)


def test_cluster_sums_group_units_by_their_cluster():
    keys = np.array(["en:q1", "de:q1", "en:q2", "de:q2", "es:q1"])
    values = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 0.0, 1.0, 1.0]])
    ids, sums = cluster_sums(keys, values, lambda k: k.split(":", 1)[1])
    assert list(ids) == ["q1", "q2"]
    assert sums.tolist() == [[8.0, 7.0], [2.0, 1.0]]


def simulate_coverage(
    n_a, seed_sd, interaction_sd, n_b=None, paired=False, seedless_b=False, datasets=1000, clusters=50, seed=0
):
    """Known truth: cell (row r, seed s, cluster c) = (mu_r + u_rs + v_c + w_rc + e_rsc) / C; the recipes'
    difference is mu_a - mu_b = delta. ``seedless_b``: b is one evaluation without training noise (the
    untrained backbone). Returns the coverage of the interval and of the percentile interval."""
    delta, n_b = 0.3, n_b or n_a
    rng = np.random.default_rng(seed)
    hits = np.zeros(2)
    for i in range(datasets):
        shared = rng.normal(0, 2.0, clusters)  # cluster difficulty, common to both rows
        rows = []
        for mu, n, fixed in ((delta, n_a, False), (0.0, n_b, seedless_b)):
            noise = 0.0 if fixed else rng.normal(0, seed_sd, (n, 1)) + rng.normal(0, 1.0, (n, clusters))
            rows.append((mu + shared + rng.normal(0, interaction_sd, (1, clusters)) + noise) / clusters)
        r = bootstrap_diff(rows[0], rows[1], replicates=200, seed=i, paired=paired)
        hits += [r.ci[0] <= delta <= r.ci[1], r.percentile_ci[0] <= delta <= r.percentile_ci[1]]
    return hits / datasets


DESIGNS = {  # id: (n_a, seed_sd, interaction_sd, extra)
    "5 seeds, balanced": (5, 1.0, 1.0, {}),
    "5 seeds, seed variance dominates": (5, 2.0, 0.5, {}),
    "10 seeds": (10, 1.0, 1.0, {}),
    "10 seeds, clusters dominate": (10, 0.3, 3.0, {}),
    "10 vs 5 seeds": (10, 1.0, 1.0, {"n_b": 5}),
    "10 vs 5 seeds, seed variance dominates": (10, 2.0, 0.5, {"n_b": 5}),
    f"{MIN_SEEDS_UNPAIRED} seeds, the primary minimum": (MIN_SEEDS_UNPAIRED, 2.0, 0.5, {}),
    f"{MIN_SEEDS_PAIRED} paired seeds, the primary minimum": (MIN_SEEDS_PAIRED, 1.0, 1.0, {"paired": True}),
    "5 seeds vs a row without seeds": (5, 1.0, 1.0, {"n_b": 1, "seedless_b": True}),
    "10 seeds vs a row without seeds, clusters dominate": (10, 0.3, 3.0, {"n_b": 1, "seedless_b": True}),
}


@pytest.mark.parametrize("design", list(DESIGNS), ids=list(DESIGNS))
def test_interval_covers_the_true_difference(design):
    n_a, seed_sd, interaction_sd, extra = DESIGNS[design]
    corrected, percentile = simulate_coverage(n_a, seed_sd, interaction_sd, **extra)
    assert 0.93 <= corrected <= 0.97, corrected
    if n_a == 5 and seed_sd >= 1.0:  # why the percentile interval is not the one reported: too narrow
        assert percentile < 0.92, percentile


def test_designs_below_the_primary_minimum_miss_the_coverage_band():
    """Why primary claims need MIN_SEEDS_PAIRED paired / MIN_SEEDS_UNPAIRED unpaired seeds per row: 2, 3 and 4
    paired seeds cover too little (88%, 92.7%, 92-93%), 2 unpaired seeds too much (the report refuses such
    primary claims)."""
    assert MIN_SEEDS_PAIRED == 5 and MIN_SEEDS_UNPAIRED == 3
    assert simulate_coverage(2, 1.0, 1.0, paired=True, datasets=1500)[0] < 0.91
    assert simulate_coverage(3, 1.0, 1.0, paired=True, datasets=3000, seed=7)[0] < 0.93
    assert simulate_coverage(4, 1.0, 1.0, paired=True, datasets=3000, seed=7)[0] < 0.935
    assert simulate_coverage(2, 2.0, 0.5, datasets=1500)[0] > 0.97


def test_seed_by_cluster_noise_is_counted_once():
    """Pure seed x cluster noise (no seed, no cluster effect): the components' total matches the true variance
    of the difference. Re-drawing seeds inside re-drawn clusters counts that noise twice (the bootstrap's own
    variance is about 2x here), which is why the standard error comes from the components."""
    rng = np.random.default_rng(5)
    n, c = 5, 40
    diffs, totals, boot = [], [], []
    for i in range(400):
        a, b = rng.normal(size=(n, c)), rng.normal(size=(n, c))
        r = bootstrap_diff(a, b, replicates=300, seed=i)
        diffs.append(r.diff)
        totals.append(r.comps.total)
        boot.append(r.replicates.var())
    truth = 2 * c / n  # var(sum_c mean_s a - mean_s b) with unit noise
    assert np.var(diffs) == pytest.approx(truth, rel=0.15)
    assert np.mean(totals) == pytest.approx(
        truth, rel=0.1
    )  # a little above: the cluster part is floored at 0
    assert np.mean(boot) > 1.6 * truth


def test_equivalence_margin_shrinks_with_seeds_to_the_test_sets_floor():
    comps = Components(0.0004 / 5, 0.0004 / 5, 0.00001, 5, 5, 40, paired=False)
    at5, at10, floor = (equivalence_margin(comps, n) for n in (5, 10, None))
    assert at5 > at10 > floor
    t = stats.t.ppf(0.975, 39)
    assert floor == pytest.approx(np.sqrt(0.00001) * (t + stats.norm.ppf(0.9)))
    # at 5 seeds (the seeds it was measured at) the standard error is the components' own
    assert at5 >= np.sqrt(comps.total) * (stats.norm.ppf(0.975) + stats.norm.ppf(0.9))


def test_seeds_for_power_matches_the_normal_approximation():
    """Seed variance only: n per row for a two-sample test at one-sided 0.025 with 80% power is about
    2 * sigma^2 * (z_0.975 + z_0.8)^2 / delta^2 (a little more with t quantiles)."""
    sigma, delta = 1.0, 0.5
    comps = Components(sigma**2 / 5, sigma**2 / 5, 0.0, 5, 5, 1000)
    n = seeds_for_power(comps, effect=delta)
    approx = 2 * sigma**2 * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2 / delta**2
    assert approx <= n <= approx + 3
    assert seeds_for_power(comps, effect=2 * delta) < n  # a larger effect needs fewer seeds
    # non-inferiority at a true difference of 0 with margin delta needs the same as superiority at delta
    assert seeds_for_power(comps, effect=0.0, margin=delta) == n
    # a test set whose own variance exceeds what the margin allows: no number of seeds decides it
    assert seeds_for_power(Components(0.01, 0.01, 1.0, 5, 5, 50), effect=0.0, margin=0.5) is None
    assert seeds_for_power(comps, effect=-0.1) is None  # the observed effect points the other way
