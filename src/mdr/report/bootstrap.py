"""Recipe-level evidence: a two-level (seeds x test clusters) bootstrap of the difference between two rows.

A claim such as "hybrid >= X-X on multilingual mAP" is about the *recipes*: retrain with another seed, test on
other questions, and the difference should stay. So both sources of variation are resampled, as in the
Multi-Bootstrap of Sellam et al. (ICLR 2022, MultiBERTs):

- the training seeds, within each row (unpaired by default: the seed drives each sampler's own batch stream;
  a claim may declare them paired, e.g. two fine-tuning modes that see the same batches at one seed);
- the clusters of the test set, jointly for both rows: a question with all its language versions (XQuAD-R /
  MLQA-R, which share relevant sentences across languages), a language (a Tatoeba group claim), a sentence
  pair (a one-language Tatoeba claim). A row without seeds (the untrained backbone) is resampled over
  clusters only; with one seed per row the procedure is a plain clustered bootstrap.

Everything works on per-(seed, cluster) sums of the per-unit contributions (``mdr.eval.outputs.per_query``), whose total
over clusters is the table's number: a replicate is one small matrix product, so thousands of replicates (and
the coverage simulations in the tests) take well under a second.

Interval: a percentile bootstrap over 5-10 seeds is too narrow (the plug-in seed variance is biased by
(n-1)/n and normal quantiles ignore the few degrees of freedom; the coverage test in
``tests/test_bootstrap.py`` measures it). The reported interval therefore keeps the bootstrap's standard
error, adds back each component's small-sample bias (seeds of a, seeds of b, clusters) and uses a t quantile
with Welch-Satterthwaite degrees of freedom: ``diff +- t(df) * se``. The percentile interval is kept beside it,
and P(direction) is the same corrected distribution's mass on the claimed side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

DEFAULT_REPLICATES = 4000
DEFAULT_SEED = 20261201


def cluster_sums(keys: np.ndarray, values: np.ndarray, cluster_of) -> tuple[np.ndarray, np.ndarray]:
    """(cluster ids, a (seeds, clusters) matrix): each seed's per-unit ``values`` summed within clusters.
    ``cluster_of`` maps a unit key (``lang:qid``, ``lang:line``) to its cluster id."""
    clusters = np.asarray([cluster_of(str(k)) for k in keys])
    ids, index = np.unique(clusters, return_inverse=True)
    values = np.atleast_2d(values)
    sums = np.zeros((values.shape[0], len(ids)))
    for s in range(values.shape[0]):
        np.add.at(sums[s], index, values[s])
    return ids, sums


@dataclass
class Components:
    """Unbiased variance components of the estimated difference, and the degrees of freedom behind each."""

    seeds_a: float
    seeds_b: float
    clusters: float
    n_a: int
    n_b: int
    n_clusters: int
    paired: bool = False

    @property
    def total(self) -> float:
        return self.seeds_a + self.seeds_b + self.clusters

    @property
    def df(self) -> float:
        """Welch-Satterthwaite degrees of freedom of ``total``."""
        parts = [(self.clusters, self.n_clusters - 1)]
        if self.paired:
            parts.append((self.seeds_a, self.n_a - 1))  # one component: the per-seed differences
        else:
            parts += [(self.seeds_a, self.n_a - 1), (self.seeds_b, self.n_b - 1)]
        denominator = sum(v * v / d for v, d in parts if d > 0 and v > 0)
        return float(self.total**2 / denominator) if denominator > 0 else float("inf")


def components(a: np.ndarray, b: np.ndarray, paired: bool = False) -> Components:
    """Variance of ``mean_s sum_c a - mean_s sum_c b`` split into seed and cluster parts (unbiased)."""
    n_a, n_b, n_c = a.shape[0], b.shape[0], a.shape[1]
    if paired:
        d = a.sum(1) - b.sum(1)
        seeds_a = float(np.var(d, ddof=1) / n_a) if n_a > 1 else 0.0
        seeds_b = 0.0
    else:
        seeds_a = float(np.var(a.sum(1), ddof=1) / n_a) if n_a > 1 else 0.0
        seeds_b = float(np.var(b.sum(1), ddof=1) / n_b) if n_b > 1 else 0.0
    m = a.mean(0) - b.mean(0)  # per-cluster difference of the seed means
    clusters = float(n_c * np.var(m, ddof=1)) if n_c > 1 else 0.0
    return Components(seeds_a, seeds_b, clusters, n_a, n_b, n_c, paired)


@dataclass
class BootstrapResult:
    diff: float  # a - b, each row's number averaged over its seeds
    replicates: np.ndarray  # the two-level bootstrap distribution of the difference
    se: float  # corrected standard error (see the module docstring)
    df: float
    ci: tuple[float, float]  # diff +- t(df, 0.975) * se
    percentile_ci: tuple[float, float]
    comps: Components

    def p_direction(self, higher_is_better: bool = True) -> float:
        """P(a better): the corrected bootstrap distribution's mass on ``a``'s better side of 0 (t with ``df``
        around ``diff``). The raw replicates' share is overconfident with 2-3 seeds, which have only a handful
        of distinct resamples."""
        better = (
            1.0 - self.p_above(0.0) if self.se > 0 else float(self.diff > 0) + 0.5 * float(self.diff == 0)
        )
        return better if higher_is_better else 1.0 - better

    def p_above(self, threshold: float) -> float:
        """One-sided p of H0: true difference <= threshold (t with ``df``)."""
        return (
            _t_sf((self.diff - threshold) / self.se, self.df)
            if self.se > 0
            else float(self.diff <= threshold)
        )

    def p_below(self, threshold: float) -> float:
        """One-sided p of H0: true difference >= threshold."""
        return (
            _t_sf((threshold - self.diff) / self.se, self.df)
            if self.se > 0
            else float(self.diff >= threshold)
        )


def _t_sf(t: float, df: float) -> float:
    return float(stats.norm.sf(t) if not np.isfinite(df) else stats.t.sf(t, df))


def _t_quantile(q: float, df: float) -> float:
    return float(stats.norm.ppf(q) if not np.isfinite(df) else stats.t.ppf(q, df))


def replicate_weights(n: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, n) multinomial counts / n: one row per resample of ``n`` items with replacement."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates) / n


def bootstrap_diff(
    a: np.ndarray,
    b: np.ndarray,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = DEFAULT_SEED,
    paired: bool = False,
) -> BootstrapResult:
    """Two-level bootstrap of ``a - b`` from per-(seed, cluster) sums (``a``: (n_a, C), ``b``: (n_b, C), the
    same clusters in the same order). ``paired``: both rows have the same seeds, resampled together."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"rows have {a.shape[1]} and {b.shape[1]} clusters; they must score the same units")
    if paired and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired seeds need the same seeds in both rows ({a.shape[0]} vs {b.shape[0]})")
    rng = np.random.default_rng(seed)
    n_a, n_b, n_c = a.shape[0], b.shape[0], a.shape[1]
    clusters = rng.multinomial(n_c, np.full(n_c, 1.0 / n_c), size=replicates)  # counts, sum C
    seeds_a = replicate_weights(n_a, replicates, rng)
    seeds_b = seeds_a if paired else replicate_weights(n_b, replicates, rng)
    # replicate r: sum_c count[r, c] * (sum_s w_a[r, s] a[s, c] - sum_s w_b[r, s] b[s, c])
    reps = np.einsum("rc,rc->r", clusters, seeds_a @ a - seeds_b @ b)
    diff = float(a.mean(0).sum() - b.mean(0).sum())
    comps = components(a, b, paired)
    se_boot2 = float(np.var(reps, ddof=1))
    # the bootstrap's plug-in variance holds each component times (m-1)/m: add the missing 1/m back
    bias = comps.clusters / n_c
    if paired:
        bias += comps.seeds_a / n_a if n_a > 1 else 0.0
    else:
        bias += (comps.seeds_a / n_a if n_a > 1 else 0.0) + (comps.seeds_b / n_b if n_b > 1 else 0.0)
    se = float(np.sqrt(se_boot2 + bias))
    df = comps.df
    half = _t_quantile(0.975, df) * se
    low, high = np.quantile(reps, [0.025, 0.975])
    return BootstrapResult(diff, reps, se, df, (diff - half, diff + half), (float(low), float(high)), comps)


def seeds_for_power(
    comps: Components,
    effect: float,
    margin: float = 0.0,
    alpha: float = 0.025,
    power: float = 0.8,
    max_seeds: int = 100,
) -> int | None:
    """Seeds per row at which a one-sided level-``alpha`` test of ``diff > -margin`` rejects with probability
    ``power`` when the true difference is ``effect`` (superiority: margin 0, effect = the observed one;
    non-inferiority: effect 0). The cluster component stays (the test set is fixed); the seed components
    shrink as 1/n. None: not reached within ``max_seeds`` (the test set's own variance is too large)."""
    distance = effect + margin
    if distance <= 0:
        return None
    per_seed_a = comps.seeds_a * comps.n_a
    per_seed_b = comps.seeds_b * comps.n_b
    for n in range(2, max_seeds + 1):
        c = Components(per_seed_a / n, per_seed_b / n, comps.clusters, n, n, comps.n_clusters, comps.paired)
        se = np.sqrt(c.total)
        if se == 0:
            return n
        z = _t_quantile(1 - alpha, c.df)
        if stats.norm.sf(z - distance / se) >= power:
            return n
    return None
