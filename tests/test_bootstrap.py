"""The two-level (seeds x clusters) bootstrap: exact on a tiny case, a plain clustered bootstrap with one seed
per row, and intervals that cover the true recipe difference 93-97% of the time in simulation."""

import itertools

import numpy as np
import pytest
from scipy import stats

from mdr.report.bootstrap import Components, bootstrap_diff, cluster_sums, components, seeds_for_power


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
    """n = 1: seeds are not resampled, the variance is the clustered bootstrap's C * var(d_c) (plug-in), the
    correction adds back var/C, and the degrees of freedom are the clusters'."""
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
    assert r.se**2 == pytest.approx(r.replicates.var(ddof=1) + comps.clusters / len(d), rel=1e-9)
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


def simulate_coverage(n_seeds, seed_sd, interaction_sd, datasets=1000, clusters=50, delta=0.3, seed=0):
    """Known truth: cell (row r, seed s, cluster c) = (mu_r + u_rs + v_c + w_rc + e_rsc) / C; the recipes'
    difference is mu_a - mu_b = delta. Returns the coverage of the corrected and the percentile interval."""
    rng = np.random.default_rng(seed)
    hits = np.zeros(2)
    for i in range(datasets):
        shared = rng.normal(0, 2.0, clusters)  # cluster difficulty, common to both rows
        rows = [
            (mu + rng.normal(0, seed_sd, (n_seeds, 1)) + shared + rng.normal(0, interaction_sd, (1, clusters))
             + rng.normal(0, 1.0, (n_seeds, clusters))) / clusters
            for mu in (delta, 0.0)
        ]  # fmt: skip
        r = bootstrap_diff(rows[0], rows[1], replicates=1000, seed=i)
        hits += [r.ci[0] <= delta <= r.ci[1], r.percentile_ci[0] <= delta <= r.percentile_ci[1]]
    return hits / datasets


@pytest.mark.parametrize(
    "n_seeds, seed_sd, interaction_sd",
    [(5, 1.0, 1.0), (5, 2.0, 0.5), (10, 1.0, 1.0), (10, 0.3, 3.0)],
    ids=["5 seeds, balanced", "5 seeds, seed variance dominates", "10 seeds", "10 seeds, clusters dominate"],
)
def test_interval_covers_the_true_difference(n_seeds, seed_sd, interaction_sd):
    corrected, percentile = simulate_coverage(n_seeds, seed_sd, interaction_sd)
    assert 0.93 <= corrected <= 0.97, corrected
    if n_seeds == 5 and seed_sd >= 1.0:  # why the correction exists: percentile intervals are too narrow
        assert percentile < 0.92, percentile


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
