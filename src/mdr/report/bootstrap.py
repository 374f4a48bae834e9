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

Standard error: from the two-way random-effects decomposition (``components``), which counts the seed x
cluster noise once: in the seed component, where it shrinks with more seeds, and not again in the cluster
component (re-drawing seeds inside re-drawn clusters, as the bootstrap does, counts it at both levels; the
bootstrap's own variance is therefore not used for the interval). The interval is ``diff +- t(df) * se`` with
Welch-Satterthwaite degrees of freedom over the mean squares behind the estimate; the percentile interval of
the replicates is kept beside it. ``tests/test_bootstrap.py`` measures the coverage on balanced, unbalanced,
paired and seedless designs.

Seed blocks (``blocks_a`` / ``blocks_b`` with ``weights``): where seeds come from different machines or library
versions, a row's estimate is the weighted mean of its per-block means and seeds are resampled within their
block, so two rows with different mixes of blocks are compared like with like (``mdr.report.claims`` chooses
the rule and names it).
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
    """Variance components of the estimated difference, each source counted once, and the mean squares behind
    them (for the Welch-Satterthwaite degrees of freedom).

    ``seeds_a`` / ``seeds_b``: each row's seed-to-seed variance of its total over the test set, over its seeds
    (it holds the seed x cluster noise, which shrinks with more seeds); ``clusters``: what the test set's own
    sample adds (the row x cluster interaction), with the seed x cluster noise taken out, so that it is not
    counted a second time; it stays as seeds are added."""

    seeds_a: float
    seeds_b: float
    clusters: float
    n_a: int
    n_b: int
    n_clusters: int
    paired: bool = False
    terms: tuple[tuple[float, float], ...] = ()  # (coefficient x mean square, its df): the estimate's pieces

    @property
    def total(self) -> float:
        return self.seeds_a + self.seeds_b + self.clusters

    @property
    def df(self) -> float:
        """Welch-Satterthwaite degrees of freedom of ``total``."""
        parts = list(self.terms)
        if not parts:
            parts = [(self.clusters, self.n_clusters - 1), (self.seeds_a, self.n_a - 1)]
            if not self.paired:
                parts.append((self.seeds_b, self.n_b - 1))
        denominator = sum(v * v / d for v, d in parts if d > 0 and v != 0)
        return float(self.total**2 / denominator) if denominator > 0 else float("inf")


def _strata(n: int, blocks: list | None, weights: dict | None) -> list[tuple[np.ndarray, float]]:
    """(seed positions, weight) per block of a row: the row's estimate is sum_k weight_k x the mean over the
    block's seeds. Without blocks, one stratum of weight 1."""
    if blocks is None or weights is None:
        return [(np.arange(n), 1.0)]
    labels = np.asarray(blocks, dtype=object)
    return [(np.flatnonzero(labels == k), w) for k, w in weights.items() if np.any(labels == k)]


def _seed_weights(n: int, strata: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Each seed's weight in the row's estimate (sum 1)."""
    w = np.zeros(n)
    for idx, weight in strata:
        w[idx] = weight / len(idx)
    return w


def _residual_ms(x: np.ndarray) -> float:
    """The seed x cluster residual mean square of a (seeds, clusters) block (two-way additive fit)."""
    n, c = x.shape
    r = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    return float((r * r).sum() / ((n - 1) * (c - 1)))


def components(
    a: np.ndarray,
    b: np.ndarray,
    paired: bool = False,
    blocks_a: list | None = None,
    blocks_b: list | None = None,
    weights: dict | None = None,
) -> Components:
    """Variance of the difference of the rows' estimates (``sum_c`` of each row's weighted seed mean) from the
    two-way random-effects decomposition: per (row, block) the seed component ``w^2 var(S)/n`` (S: a seed's
    total) and residual mean square; the cluster component ``C var(m_c) - C sum w^2 MS_res / n`` (m_c: the
    per-cluster difference of the estimates), floored at 0. ``weights``: block -> weight (stratified rows)."""
    if paired:
        return _paired_components(a, b, blocks_a, weights)
    c = a.shape[1]
    seed_parts, terms, subtract = [0.0, 0.0], [], 0.0
    for side, (x, blocks) in enumerate(((a, blocks_a), (b, blocks_b))):
        for idx, w in _strata(x.shape[0], blocks, weights if x.shape[0] > 1 else None):
            n = len(idx)
            if n < 2:
                continue
            seeds = w * w * float(np.var(x[idx].sum(1), ddof=1)) / n
            seed_parts[side] += seeds
            terms.append((seeds, n - 1))
            if c > 1:
                res = c * w * w * _residual_ms(x[idx]) / n
                subtract += res
                terms.append((-res, (n - 1) * (c - 1)))
    m = row_estimate(a, blocks_a, weights) - row_estimate(b, blocks_b, weights)
    raw = float(c * np.var(m, ddof=1)) if c > 1 else 0.0
    clusters = max(0.0, raw - subtract)
    terms = [t for t in terms if t[0] > 0] if clusters == 0.0 else terms
    if clusters > 0.0:
        terms.append((raw, c - 1))
    return Components(seed_parts[0], seed_parts[1], clusters, a.shape[0], b.shape[0], c, False, tuple(terms))


def _paired_components(a: np.ndarray, b: np.ndarray, blocks: list | None, weights: dict | None) -> Components:
    """Paired seeds: the per-seed difference is one row, resampled as such."""
    d = a - b
    one = components(d, np.zeros((1, d.shape[1])), False, blocks, None, weights)
    return Components(one.seeds_a, 0.0, one.clusters, a.shape[0], b.shape[0], d.shape[1], True, one.terms)


def row_estimate(x: np.ndarray, blocks: list | None = None, weights: dict | None = None) -> np.ndarray:
    """A row's per-cluster estimate: its (block-weighted) seed mean, a (clusters,) vector."""
    strata = _strata(x.shape[0], blocks, weights if x.shape[0] > 1 else None)
    return _seed_weights(x.shape[0], strata) @ x


@dataclass
class BootstrapResult:
    diff: float  # a - b, each row's number averaged over its seeds (blocks weighted as the rule says)
    replicates: np.ndarray  # the two-level bootstrap distribution of the difference
    se: float  # from the variance components (each source once; see Components)
    df: float
    ci: tuple[float, float]  # diff +- t(df, 0.975) * se
    percentile_ci: tuple[float, float]
    comps: Components

    def tail_beyond_zero(self, higher_is_better: bool = True) -> float:
        """One minus the one-sided p-value of "a is no better than b" (t with ``df`` around ``diff``): the
        interval's mass on a's better side of 0. A confidence tail, not the probability that a is better."""
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


def _replicate_seed_weights(
    n: int, blocks: list | None, weights: dict | None, replicates: int, rng: np.random.Generator
) -> np.ndarray:
    """(replicates, n): each replicate's seed weights, seeds resampled within their block."""
    strata = _strata(n, blocks, weights if n > 1 else None)
    if len(strata) == 1 and len(strata[0][0]) == n:
        return replicate_weights(n, replicates, rng)
    out = np.zeros((replicates, n))
    for idx, w in strata:
        out[:, idx] = w * replicate_weights(len(idx), replicates, rng)
    return out


def bootstrap_diff(
    a: np.ndarray,
    b: np.ndarray,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = DEFAULT_SEED,
    paired: bool = False,
    blocks_a: list | None = None,
    blocks_b: list | None = None,
    weights: dict | None = None,
) -> BootstrapResult:
    """Two-level bootstrap of ``a - b`` from per-(seed, cluster) sums (``a``: (n_a, C), ``b``: (n_b, C), the
    same clusters in the same order). ``paired``: both rows have the same seeds, resampled together.
    ``blocks_a`` / ``blocks_b`` with ``weights`` (block -> weight, summing to 1): each row's estimate is the
    weighted mean of its per-block seed means, and seeds are resampled within their block (a stratified
    comparison; a row with one run is used as it is)."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"rows have {a.shape[1]} and {b.shape[1]} clusters; they must score the same units")
    if paired and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired seeds need the same seeds in both rows ({a.shape[0]} vs {b.shape[0]})")
    rng = np.random.default_rng(seed)
    n_a, n_b, n_c = a.shape[0], b.shape[0], a.shape[1]
    clusters = rng.multinomial(n_c, np.full(n_c, 1.0 / n_c), size=replicates)  # counts, sum C
    seeds_a = _replicate_seed_weights(n_a, blocks_a, weights, replicates, rng)
    seeds_b = seeds_a if paired else _replicate_seed_weights(n_b, blocks_b, weights, replicates, rng)
    # replicate r: sum_c count[r, c] * (sum_s w_a[r, s] a[s, c] - sum_s w_b[r, s] b[s, c])
    reps = np.einsum("rc,rc->r", clusters, seeds_a @ a - seeds_b @ b)
    diff = float(row_estimate(a, blocks_a, weights).sum() - row_estimate(b, blocks_b, weights).sum())
    comps = components(a, b, paired, blocks_a, blocks_b, weights)
    se = float(np.sqrt(comps.total))
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
    ``power`` when the true difference is ``effect`` (a pre-stated alternative: for non-inferiority a true
    difference of 0 or of +margin; an observed difference serves for planning only). The cluster component
    stays (the test set is fixed); the seed components, which hold the seed x cluster noise, shrink as 1/n.
    None: not reached within ``max_seeds`` (the cluster component alone is too large for that distance)."""
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


def cluster_floor_se(comps: Components) -> float:
    """The standard error no number of seeds removes: the test set's own (cluster) component."""
    return float(np.sqrt(comps.clusters))


def equivalence_margin(comps: Components, n: int | None, alpha: float = 0.025, power: float = 0.8) -> float:
    """The smallest margin m at which two one-sided tests (each at ``alpha``) show ``|a - b| < m`` with
    probability ``power`` when the true difference is 0, with ``n`` seeds per row (None: infinitely many).
    Normal approximation: m = se(n) x (t_(1-alpha)(df) + z_((1+power)/2))."""
    if n is None:
        se, df = np.sqrt(comps.clusters), comps.n_clusters - 1
    else:
        c = Components(
            comps.seeds_a * comps.n_a / n,
            0.0 if comps.paired else comps.seeds_b * comps.n_b / n,
            comps.clusters,
            n,
            n,
            comps.n_clusters,
            comps.paired,
        )
        se, df = np.sqrt(c.total), c.df
    return float(se * (_t_quantile(1 - alpha, df) + stats.norm.ppf((1 + power) / 2)))
