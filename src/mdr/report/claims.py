"""Claim-by-claim verdicts: a paper's hypotheses as paired tests between two rows of a results folder.

``report.py results/decisive --claims conf/claims/hybrid_2408.10536.yaml`` writes claims.md / claims.csv.
A claim names two rows (``a``, ``b``: row selectors such as ``sampler=hybrid,finetune=full``), one
number (a LAReQA ``kind`` mono / cross / multi or a Tatoeba ``group`` all / xtreme36 / low_resource, a
``metric``, optionally a ``subset`` seen / unseen) and what the paper expects of ``a - b``:

- ``">"`` (``a`` better; for rank distance write ``"<"``): **holds** when the difference has that sign and
  the Holm-corrected p < 0.05; **reversed** when it is significant the other way; else **not shown**.
- ``">="`` (``a`` at least as good; ``"<="`` where lower is better): **does not hold** only when ``a`` is
  significantly worse; it holds otherwise, and the outcome says whether ``a`` is significantly better or
  the difference is n.s.

The test is the same as the results table's (``mdr.report.significance``): per-unit numbers averaged over
each row's seeds (shared seeds; an unseeded row such as the untrained backbone against all seeds of the
other), Fisher's paired randomization test, Holm-Bonferroni over all claims tested in one file. The
interval is the difference +- 1.96 standard errors of the per-unit differences' sum (normal approximation
over thousands of units). A claim whose rows are not in the folder is listed as not run, not dropped.

That test treats the trained models as fixed. A second, seed-level verdict asks whether the difference
survives retraining: a paired t-test over the per-seed differences (an unseeded row: a one-sample test of
the other row's seeds against its value), its 95% t-interval, Holm over the claims with two or more seeds,
judged by the same rules. With few seeds it is weak by design; a claim that holds over queries but not over
seeds rests on the seeds drawn.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mdr.report.significance import (
    SIGNIFICANCE_LEVEL,
    UnitScores,
    holm,
    paired_randomization_test,
    paired_seeds,
    parse_selector,
    seed_values,
)
from mdr.report.stats import mean_ci
from mdr.runtime.errors import InputError
from mdr.runtime.inputs import read_yaml

EXPECTATIONS = (">", ">=", "<", "<=")
LAREQA_KINDS = ("mono", "cross", "multi")
TATOEBA_GROUPS = ("all", "xtreme36", "low_resource")
SUBSETS = (None, "seen", "unseen")


@dataclass(frozen=True)
class Claim:
    claim: str  # the hypothesis in words, as the table prints it
    a: str  # row selector, e.g. sampler=hybrid,finetune=full
    b: str
    dataset: str  # xquad_r / mlqa_r (LAReQA) or tatoeba
    metric: str  # map, p@1, mrr@5, rank_distance (LAReQA); accuracy, map, mrr@5 (Tatoeba)
    expect: str  # ">", ">=", "<" or "<=" for a - b ("<", "<=": lower is better, e.g. rank distance)
    kind: str | None = None  # LAReQA: mono / cross / multi
    group: str | None = None  # Tatoeba: all / xtreme36 / low_resource
    subset: str | None = None  # seen / unseen (languages of the training set)

    def check(self) -> None:
        where = f"claim {self.claim!r}"
        if self.expect not in EXPECTATIONS:
            raise InputError(f"{where}: expect={self.expect!r}; use one of {EXPECTATIONS}")
        if self.subset not in SUBSETS:
            raise InputError(f"{where}: subset={self.subset!r}; use seen, unseen or leave it out")
        if self.dataset == "tatoeba":
            if self.group not in TATOEBA_GROUPS or self.kind:
                raise InputError(f"{where}: Tatoeba claims name a group from {TATOEBA_GROUPS} and no kind")
        elif self.kind not in LAREQA_KINDS or self.group:
            raise InputError(f"{where}: LAReQA claims name a kind from {LAREQA_KINDS} and no group")

    @property
    def column(self) -> str:
        where = self.kind if self.dataset != "tatoeba" else self.group
        return f"{self.dataset} {where} {self.metric}" + (f" ({self.subset})" if self.subset else "")


@dataclass
class Verdict:
    claim: Claim
    outcome: str
    a_value: float | None = None
    b_value: float | None = None
    diff: float | None = None
    ci: tuple[float, float] | None = None
    p: float | None = None
    p_holm: float | None = None
    n_units: int = 0
    seeds_a: list | None = None
    seeds_b: list | None = None
    seed_diffs: list[float] | None = None  # a - b per seed: the seed-to-seed spread the query test ignores
    seed_ci: tuple[float, float] | None = None  # 95% t-interval of the mean per-seed difference
    seed_p: float | None = None  # paired t-test over seeds (None with one seed)
    seed_p_holm: float | None = None
    seed_outcome: str = ""


def load_claims(path: str | Path) -> list[Claim]:
    """Claims from a YAML list; unknown or missing fields fail with the claim's text."""
    raw = read_yaml(
        path, "claims file", "write a YAML list of claims (see conf/claims/hybrid_2408.10536.yaml)"
    )
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{path}: expected a non-empty YAML list of claims, got a {type(raw).__name__}")
    names = {f.name for f in fields(Claim)}
    claims = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InputError(f"{path}: claim {i} is a {type(item).__name__}, not a mapping of fields")
        unknown = set(item) - names
        if unknown:
            raise InputError(
                f"{path}: claim {i} has unknown field(s) {sorted(unknown)}; known: {sorted(names)}"
            )
        try:
            claim = Claim(**item)
        except TypeError as e:
            raise InputError(f"{path}: claim {i} ({item.get('claim')!r}): {e}") from None
        claim.check()
        claims.append(claim)
    return claims


def _runs_of(report, selector: str) -> list:
    wanted = parse_selector(selector, report.key_names)
    keys = {rv.key for rv in report.runs}
    matches = [k for k in keys if all(k[report.key_names.index(n)] == v for n, v in wanted.items())]
    if len(matches) > 1:
        raise InputError(f"row selector {selector!r} matches {len(matches)} rows {sorted(matches)}; add keys")
    return [rv for rv in report.runs if matches and rv.key == matches[0]]


def _seed_values(runs: list, seeds: list, claim: Claim, units: UnitScores) -> tuple[np.ndarray, np.ndarray]:
    """Unit keys and a (seeds, units) matrix of per-unit numbers (the results table's own units)."""
    where = claim.group if claim.dataset == "tatoeba" else claim.kind
    if claim.subset and any(r.datasets[claim.dataset].get("seen_languages") is None for r in runs):
        raise InputError(f"claim {claim.claim!r}: a run records no training languages for {claim.subset}")
    return seed_values(runs, seeds, claim.dataset, (where, claim.metric), units, claim.subset)


def _outcome(expect: str, diff: float, significant: bool) -> str:
    better = diff > 0 if expect in (">", ">=") else diff < 0
    if expect in (">=", "<="):
        if significant:
            return "holds (significantly better)" if better else "does not hold (significantly worse)"
        return "holds (no significant difference)"
    if significant:
        return "holds" if better else "reversed (significant the other way)"
    return "not shown (difference not significant)"


def seed_level_test(seed_diffs: list[float]) -> tuple[tuple[float, float] | None, float | None]:
    """95% t-interval and two-sided t-test p of the mean per-seed difference (None, None with one seed).

    Identical non-zero differences (no seed-to-seed spread) give p = 0; all-zero ones p = 1.
    """
    cell = mean_ci(seed_diffs)
    if cell.half_width is None:
        return None, None
    interval = (cell.mean - cell.half_width, cell.mean + cell.half_width)
    if cell.half_width == 0:
        return interval, 0.0 if cell.mean != 0 else 1.0
    from scipy import stats

    sd = np.std(seed_diffs, ddof=1)
    t = cell.mean / (sd / np.sqrt(cell.n))
    return interval, float(2 * stats.t.sf(abs(t), cell.n - 1))


def judge(report, claims: list[Claim], permutations: int = 10_000) -> list[Verdict]:
    """One verdict per claim, in order; p-values Holm-corrected over the claims that could be tested."""
    units = UnitScores(None)
    verdicts: list[Verdict] = []
    for claim in claims:
        runs_a, runs_b = _runs_of(report, claim.a), _runs_of(report, claim.b)
        missing = [sel for sel, runs in ((claim.a, runs_a), (claim.b, runs_b)) if not runs]
        if missing:
            verdicts.append(Verdict(claim, f"not run (no runs for {' and '.join(missing)})"))
            continue
        seeds_a, seeds_b = paired_seeds(runs_a, runs_b)
        if not seeds_a:
            verdicts.append(Verdict(claim, "not run (no seed in common)"))
            continue
        keys_a, per_seed_a = _seed_values(runs_a, seeds_a, claim, units)
        keys_b, per_seed_b = _seed_values(runs_b, seeds_b, claim, units)
        if not np.array_equal(keys_a, keys_b):
            raise InputError(f"claim {claim.claim!r}: {claim.a} and {claim.b} scored different units")
        a, b = per_seed_a.mean(0), per_seed_b.mean(0)
        d = a - b
        # the cell's difference seed by seed (shared seeds; an unseeded row against each seed of the other)
        sums_a, sums_b = per_seed_a.sum(1), per_seed_b.sum(1)
        seed_diffs = sums_a - sums_b if len(sums_a) == len(sums_b) else sums_a - sums_b.mean()
        half = 1.96 * np.sqrt(len(d)) * d.std(ddof=1) if len(d) > 1 else float("nan")
        verdicts.append(
            Verdict(
                claim,
                "",
                float(a.sum()),
                float(b.sum()),
                float(d.sum()),
                (float(d.sum() - half), float(d.sum() + half)),
                paired_randomization_test(a, b, permutations),
                None,
                len(d),
                seeds_a,
                seeds_b,
                [float(x) for x in seed_diffs],
            )
        )
    tested = [v for v in verdicts if v.p is not None]
    for v, p_holm in zip(tested, holm([v.p for v in tested])):
        v.p_holm = p_holm
        v.outcome = _outcome(v.claim.expect, v.diff, p_holm < SIGNIFICANCE_LEVEL)
    for v in tested:
        v.seed_ci, v.seed_p = seed_level_test(v.seed_diffs)
        v.seed_outcome = "one seed" if v.seed_p is None else ""
    over_seeds = [v for v in tested if v.seed_p is not None]
    for v, p_holm in zip(over_seeds, holm([v.seed_p for v in over_seeds])):
        v.seed_p_holm = p_holm
        v.seed_outcome = _outcome(v.claim.expect, v.diff, p_holm < SIGNIFICANCE_LEVEL)
    return verdicts


def _num(x: float | None, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _digits(claim: Claim) -> int:
    return 1 if claim.metric == "rank_distance" else 4


def claims_markdown(verdicts: list[Verdict], permutations: int) -> str:
    head = (
        "| claim | a | b | number | expect | a | b | a - b [95% CI] | p | p (Holm) | outcome over queries "
        "| seeds | a - b per seed | seeds: 95% t-CI | seeds: p (Holm) | outcome over seeds |"
    )
    lines = [head, "|" + "---|" * 16]
    for v in verdicts:
        c, k = v.claim, _digits(v.claim)
        interval = "–" if v.ci is None else f"{_num(v.diff, k)} [{_num(v.ci[0], k)}, {_num(v.ci[1], k)}]"
        seeds = "–" if v.seeds_a is None else f"{len(v.seeds_a)} / {len(v.seeds_b)}"
        p = "–" if v.p is None else f"{v.p:.4f}"
        p_holm = "–" if v.p_holm is None else f"{v.p_holm:.4f}"
        a_val, b_val = _num(v.a_value, k), _num(v.b_value, k)
        per_seed = "–" if v.seed_diffs is None else ", ".join(f"{x:+.{k}f}" for x in v.seed_diffs)
        seed_ci = "–" if v.seed_ci is None else f"[{_num(v.seed_ci[0], k)}, {_num(v.seed_ci[1], k)}]"
        seed_p = "–" if v.seed_p_holm is None else f"{v.seed_p_holm:.4f}"
        seed_outcome = v.seed_outcome or "–"
        lines.append(
            f"| {c.claim} | {c.a} | {c.b} | {c.column} | a {c.expect} b | {a_val} | {b_val} | {interval} "
            f"| {p} | {p_holm} | **{v.outcome}** | {seeds} | {per_seed} | {seed_ci} | {seed_p} | {seed_outcome} |"
        )
    note = (
        f"\nPaired randomization test over units ({permutations} sign flips; queries for LAReQA sets, "
        "sentence pairs for Tatoeba), each row averaged over its seeds first (seeds: a / b; an unseeded "
        "row, the untrained backbone, is paired with the other row's mean over all its seeds); Holm-"
        "Bonferroni over the claims tested here; 95% interval: normal approximation over units. "
        "`>=` (`<=` where lower is better) holds unless a is significantly worse. The test and interval treat the queries as the sample "
        "and the trained models as fixed: they do not include seed-to-seed variation. The seed columns do: "
        "a paired t-test over the per-seed differences (an unseeded row: one-sample, against its value), "
        "its 95% t-interval and Holm over the claims with two or more seeds, judged by the same rules "
        "(outcome over seeds). A claim that holds over queries but not over seeds rests on the seeds drawn.\n"
    )
    return "\n".join(lines) + "\n" + note


def write_verdicts(verdicts: list, out_dir: str | Path, permutations: int) -> None:
    out = Path(out_dir)
    (out / "claims.md").write_text(claims_markdown(verdicts, permutations))
    with (out / "claims.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["claim", "a", "b", "number", "expect", "a_value", "b_value", "diff", "ci_low", "ci_high",
                    "p", "p_holm", "n_units", "seeds_a", "seeds_b", "diff_per_seed", "outcome",
                    "seed_ci_low", "seed_ci_high", "seed_p", "seed_p_holm", "seed_outcome"])  # fmt: skip
        for v in verdicts:
            c = v.claim
            ci, seed_ci = v.ci or (None, None), v.seed_ci or (None, None)
            w.writerow([c.claim, c.a, c.b, c.column, c.expect, v.a_value, v.b_value, v.diff, *ci, v.p, v.p_holm,
                        v.n_units, v.seeds_a, v.seeds_b, v.seed_diffs, v.outcome,
                        *seed_ci, v.seed_p, v.seed_p_holm, v.seed_outcome])  # fmt: skip
