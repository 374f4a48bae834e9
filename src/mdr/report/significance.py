"""Paired significance of every row against a baseline row, over the same queries (``report.py --baseline``).

What is paired: for a table cell (dataset, column) each run's ``per_query.npz`` gives one number per unit
(a LAReQA query = its language and id; a Tatoeba pair = language and line) whose sum over units is
exactly the cell's macro average (``mdr.eval.outputs.per_query``). For the seeds both rows have, the units'
numbers are averaged over seeds, per row (a row without a training seed, such as the untrained backbone,
is paired with the other row's mean over all its seeds); the test is Fisher's paired randomization test on the
per-unit differences (random sign flips of whole units; all 2^n flips when that is fewer than the
permutations asked), two-sided, p = (1 + #{|flipped sum| >= |observed sum|}) / (1 + permutations).
The p-values of all (row, column) comparisons in one table are corrected together by Holm-Bonferroni.

The test is written out here (a matrix of signs times the differences) because the library versions
are too slow at Tatoeba's 90k-180k units (ranx's ``fisher_randomization_test``: ~8 s per 10,000
permutations of 13k units; scipy's ``permutation_test``: ~22 s per 1,000 of 90k, against ~1 s here);
tests check it against both and against a hand enumeration. Random signs come from random bytes
(8 flips each) and the flipped sums from one BLAS product per block: ~4x faster than int8 signs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from mdr.data.tatoeba import language_groups
from mdr.eval.outputs.per_query import attack_units, lareqa_units, load_per_query, tatoeba_units
from mdr.runtime.errors import InputError

SIGNIFICANCE_LEVEL = 0.05


@dataclass
class Comparison:
    diff: float  # row minus baseline, over the shared seeds (the cells' own means may include more seeds)
    p: float
    p_holm: float
    n_units: int
    seeds: list


def paired_randomization_test(
    a: np.ndarray, b: np.ndarray, permutations: int = 10_000, seed: int = 0
) -> float:
    """Two-sided p-value of sum(a - b) under random sign flips of the paired differences."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    observed = abs(d.sum())
    tol = 1e-9 * max(np.abs(d).sum(), 1e-300)  # float noise must not decide a tie with the observed sum
    n = len(d)
    if n == 0:
        raise InputError("a paired test needs at least one unit scored by both systems")
    if 2**n <= permutations:  # exact: every sign pattern once
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        return float(np.mean(np.abs(signs @ d) >= observed - tol))
    rng = np.random.default_rng(seed)
    # A flipped sum is 2 * (d over the kept units) - sum(d): random bits (8 per drawn byte) times d, one
    # float64 matrix product per block of permutations small enough to stay in cache (~4M entries).
    rows = max(1, int(4e6 // n))
    n_bytes = (n + 7) // 8
    total = d.sum()
    hits = 0
    for start in range(0, permutations, rows):
        m = min(rows, permutations - start)
        drawn = np.frombuffer(rng.bytes(m * n_bytes), dtype=np.uint8).reshape(m, n_bytes)
        kept = np.unpackbits(drawn, axis=1, count=n).astype(np.float64)
        hits += int(np.sum(np.abs(2.0 * (kept @ d) - total) >= observed - tol))
    return (1 + hits) / (1 + permutations)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    m = len(pvalues)
    order = np.argsort(pvalues, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()


def parse_selector(selector: str, key_names: list[str]) -> dict[str, str]:
    """``sampler=xx`` or ``sampler=xx,finetune=full`` -> {key: value}, keys checked against the table's."""
    out = {}
    for part in selector.split(","):
        key, sep, value = part.partition("=")
        if not sep or key not in key_names:
            raise InputError(f"--baseline {selector!r}: use key=value with keys from {key_names}")
        out[key] = value
    return out


def baseline_rows(rows: list[tuple], key_names: list[str], selector: str) -> dict[tuple, tuple]:
    """Row -> the baseline row it is tested against.

    One row matches the selector: every other row is tested against it. Several match (``sampler=xx``
    once X-X ran with full, LoRA and adapter fine-tuning): each row is tested against the match that agrees
    with it on every column the selector does not name (hybrid + LoRA against X-X + LoRA), as a paper
    compares samplers within one fine-tuning mode; a row without such a match is not tested (the table note
    lists it). Baseline rows are not tested against each other."""
    wanted = parse_selector(selector, key_names)
    matches = [k for k in rows if all(k[key_names.index(n)] == v for n, v in wanted.items())]
    if not matches:
        raise InputError(
            f"--baseline {selector!r} matches 0 rows; name a row of {[dict(zip(key_names, k)) for k in rows]}"
        )
    if len(matches) == 1:
        return {k: matches[0] for k in rows if k != matches[0]}
    free = [i for i, name in enumerate(key_names) if name not in wanted]
    out = {}
    for key in rows:
        if key in matches:
            continue
        same = [m for m in matches if all(m[i] == key[i] for i in free)]
        if same:  # the matches differ only in free columns, so at most one agrees with the row
            out[key] = same[0]
    return out


class UnitScores:
    """Per-unit numbers of the runs' table cells, read once per (run, dataset)."""

    def __init__(self, subset: str | None):
        self.subset, self._files, self._metrics = subset, {}, {}

    def __call__(
        self, run, ds: str, path: tuple[str, str], subset: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``subset`` (seen / unseen) overrides the table's own for one call (report.py --claims)."""
        subset = subset or self.subset
        if (run.path, ds) not in self._files:
            self._files[(run.path, ds)] = load_per_query(run.path, ds)
        data = self._files[(run.path, ds)]
        entry = run.datasets[ds]
        if entry.get("kind") == "bitext":
            group, metric = path
            groups = language_groups(entry["languages"], _low_resource(entry), entry.get("seen_languages"))
            if subset:
                langs = [x for x in groups.get(group, []) if x in groups.get(subset, [])]
            else:
                langs = groups.get(group, [])
            return tatoeba_units(data, langs, metric)
        kind, metric = path
        if entry.get("kind") == "attack":
            return attack_units(data, kind, metric, subset, entry.get("seen_languages"))
        return lareqa_units(data, kind, metric, subset, entry.get("seen_languages"))


def _low_resource(entry: dict) -> set[str]:
    return {x for x, row in entry.get("per_language", {}).items() if row.get("low_resource")}


def seed_values(
    runs: list, seeds: list, ds: str, path, units: UnitScores, subset: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unit keys and a (seeds, units) matrix of one row's per-unit numbers."""
    by_seed = {r.seed: r for r in runs}
    pairs = [units(by_seed[s], ds, path, subset) for s in seeds]
    keys = pairs[0][0]
    if any(not np.array_equal(k, keys) for k, _ in pairs):
        raise InputError(f"{ds}: runs of one row scored different queries across seeds; re-evaluate them")
    return keys, np.stack([v for _, v in pairs])


def seed_mean(runs: list, seeds: list, ds: str, path, units: UnitScores) -> tuple[np.ndarray, np.ndarray]:
    keys, values = seed_values(runs, seeds, ds, path, units)
    return keys, values.mean(0)


def paired_seeds(runs_a: list, runs_b: list) -> tuple[list, list]:
    """Which seeds each row averages before pairing: the seeds both rows have; but a row without a training
    seed (the untrained backbone, evaluated once by eval.py) does not vary with it, so it is paired with
    the mean over every seed of the other row."""
    a, b = {r.seed for r in runs_a}, {r.seed for r in runs_b}
    if None in a or None in b:
        return sorted(a, key=str), sorted(b, key=str)
    shared = sorted(a & b)
    return shared, shared


def compare_to_baseline(
    report, baselines: dict[tuple, tuple], permutations: int = 10_000
) -> dict[tuple, dict[str, Comparison]]:
    """Row key -> column (``dataset|label``) -> comparison with its baseline row (``baseline_rows``),
    Holm-corrected together."""
    from mdr.report.collect import column_path

    runs_of: dict[tuple, list] = {}
    for rv in report.runs:
        runs_of.setdefault(rv.key, []).append(rv)
    units = UnitScores(report.subset)
    raw: list[tuple[tuple, str, float, float, int, list]] = []
    for key, base in baselines.items():
        if key not in report.rows or base not in report.rows:  # no complete run to score
            continue
        seeds, base_seeds = paired_seeds(runs_of[key], runs_of[base])
        if not seeds:
            continue
        for ds, label, _ in report.columns:
            col = f"{ds}|{label}"
            if col not in report.rows[key] or col not in report.rows[base]:
                continue
            path = column_path(runs_of[key][0].datasets[ds], label)
            k_row, row = seed_mean(runs_of[key], seeds, ds, path, units)
            k_base, baseline = seed_mean(runs_of[base], base_seeds, ds, path, units)
            if not np.array_equal(k_row, k_base):
                raise InputError(f"{ds} {label}: {key} and the baseline scored different queries")
            p = paired_randomization_test(row, baseline, permutations)
            raw.append((key, col, float(row.sum() - baseline.sum()), p, len(row), seeds))
    adjusted = holm([r[3] for r in raw])
    out: dict[tuple, dict[str, Comparison]] = {}
    for (key, col, diff, p, n, seeds), p_adj in zip(raw, adjusted):
        out.setdefault(key, {})[col] = Comparison(diff, p, p_adj, n, seeds)
    return out
