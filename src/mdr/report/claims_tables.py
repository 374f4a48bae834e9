"""The claims' verdicts as tables: the primary family table (claims_primary.md), every claim (claims_all.md),
both in claims.md, and claims.csv with every number a verdict rests on (``mdr.report.claims`` judges)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mdr.report.bootstrap import equivalence_margin
from mdr.report.claims import EXPLORATORY, MIN_SEEDS_PAIRED, MIN_SEEDS_UNPAIRED, Claim, Verdict, leans_against
from mdr.report.seed_plan import Family
from mdr.runtime.markdown import markdown_table


def _num(x: float | None, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _digits(claim: Claim) -> int:
    return 1 if claim.metric == "rank_distance" else 4


def _interval(v: Verdict, k: int) -> str:
    if v.boot is None:
        return "–"
    low, high = v.boot.ci
    return f"{v.diff:+.{k}f} [{low:+.{k}f}, {high:+.{k}f}]"


def _seeds_text(v: Verdict) -> str:
    if v.seeds_a is None:
        return "–"
    return " / ".join("0" if s == [None] else str(len(s)) for s in (v.seeds_a, v.seeds_b))


def _threshold_text(c: Claim, k: int) -> str:
    if c.expect in (">", "<"):
        return "0"
    return f"{c.margin:.{k}g}" if c.margin is not None else "–"


def _power_text(v: Verdict) -> str:
    if v.boot is None:
        return "–"
    if v.claim.undecidable:
        return "– (declared undecidable at its margin)"

    def n(x: int | None) -> str:
        return str(x) if x else "> 100"

    if v.claim.expect in (">=", "<="):
        text = f"{n(v.seeds_at_zero)} at 0, {n(v.seeds_at_margin)} at +margin"
    else:
        text = f"{n(v.seeds_needed)} (at the observed difference; planning only)"
    if leans_against(v):
        text += f"; {n(v.seeds_needed)} to show it does not hold (observed; planning only)"
    return text


def _pooled_text(v: Verdict, k: int) -> str:
    """The verdict as declared (every seed pooled), where the block rule changed what was compared."""
    p = v.pooled
    if p is None or p.boot is None or v.block_rule.startswith("one block"):
        return "same"
    return f"{_interval(p, k)}: {p.outcome}"


def _tost_margins(v: Verdict) -> tuple:
    """The smallest equivalence margin two one-sided tests could show with 80% power at a true difference of 0:
    at 5 and 10 seeds per row, and with infinitely many (the test set's own floor)."""
    if v.boot is None:
        return (None, None, None)
    return tuple(equivalence_margin(v.boot.comps, n) for n in (5, 10, None))


def _pooled_numbers(v: Verdict) -> tuple:
    p = v.pooled
    if p is None or p.boot is None:
        return (None, None, None, None)
    return (p.diff, *p.boot.ci, p.outcome)


def _tail_text(v: Verdict) -> str:
    return "–" if v.boot is None else f"{v.tail:.3f}"


def primary_markdown(
    verdicts: list[Verdict],
    families: dict[str, Family],
    blocks: dict[str, str] | None = None,
    coverage: str = "",
) -> str:
    header = ["claim", "number", "expect", "a", "b", "a - b [95% CI]", "margin", "seeds a / b", "seed blocks",
              "tail beyond 0", "p (Holm, one-sided)", "outcome", "pooled over blocks, as declared",
              "seeds per row for 80% power"]  # fmt: skip
    rows = []
    for v in verdicts:
        c, k = v.claim, _digits(v.claim)
        if c.family == EXPLORATORY:
            continue
        p = "–" if v.p_holds_adj is None else f"{v.p_holds_adj:.4f}"
        rows.append([c.claim, c.column, f"a {c.expect} b", _num(v.a_value, k), _num(v.b_value, k), _interval(v, k),
                     _threshold_text(c, k), _seeds_text(v), v.block_rule or "–", _tail_text(v), p,
                     f"**{v.outcome}**", _pooled_text(v, k), _power_text(v)])  # fmt: skip
    declared = "; ".join(f"**{name}**: {family.about}" for name, family in families.items())
    legend = "; ".join(f"{label} = {block}" for block, label in (blocks or {}).items())
    note = (
        f"\nFamilies: {declared or 'none declared'}. Interval: two-level bootstrap (training seeds within each "
        "row, unpaired unless the claim says why; test clusters jointly: a question with all its translations, "
        "or a language for a Tatoeba group); standard error from the two-way random-effects decomposition "
        "(seed x cluster noise counted once), t quantile with Welch-Satterthwaite degrees of freedom "
        "(mdr.report.bootstrap). Seed blocks (CPU kind and major library versions, from each cell's provenance; "
        f"{legend or 'none recorded'}): rows that mix blocks differently are compared within the blocks they "
        "share, weighted equally (mdr.report.blocks); the column beside the outcome gives the verdict with every "
        "seed pooled, as the family was declared. One-sided tests at 0.025 against 0 (`>`, `<`) or the margin "
        "(`>=`, `<=`), Holm within the family: **holds** / **does not hold** (a significantly worse than the "
        "threshold) / **inconclusive**; **refused**: fewer seeds than a valid interval needs (>= "
        f"{MIN_SEEDS_UNPAIRED} unpaired, >= {MIN_SEEDS_PAIRED} paired); **withheld (interim)**: a family that "
        "declares its seeds is judged on those seeds alone, once they are all in (mdr.report.seed_plan). Tail beyond 0: one minus the one-sided "
        "p-value of 'a is no better than b' (a confidence tail, not the probability that a is better). Power: "
        "seeds per row at which the test rejects with probability 0.8 (Bonferroni level 0.025 / family size), "
        "for `>=` / `<=` at a true difference of 0 and of +margin (stated before the data), for `>` / `<` at "
        "the observed difference (planning only); the test set's own (cluster) component does not shrink "
        "with seeds.\n"
    )
    plan = f"Declared seeds per row:\n\n{coverage}\n\n" if coverage else ""
    return plan + markdown_table(header, rows) + "\n" + note


def exploratory_markdown(verdicts: list[Verdict], permutations: int) -> str:
    header = ["claim", "a", "b", "number", "expect", "a", "b", "a - b [95% CI]", "seeds a / b", "seed blocks",
              "tail beyond 0", "trained models: p (clustered)", "outcome"]  # fmt: skip
    rows = []
    for v in verdicts:
        c, k = v.claim, _digits(v.claim)
        query_p = "–" if v.query_p is None else f"{v.query_p:.4f}"
        outcome = v.outcome if c.family == EXPLORATORY else f"**{v.outcome}**"
        rows.append([c.claim, c.a, c.b, c.column, f"a {c.expect} b", _num(v.a_value, k), _num(v.b_value, k),
                     _interval(v, k), _seeds_text(v), v.block_rule or "–", _tail_text(v), query_p, outcome])  # fmt: skip
    note = (
        "\nEvery claim, primary ones included (their verdict is in the primary table). Exploratory claims carry "
        "their recipe-level interval and the tail beyond 0 (one minus the one-sided p-value of 'a is no better "
        "than b'; not a probability that a is better), and no adjusted verdict. The last p-value is a secondary "
        "view of the trained models in hand: Fisher's "
        f"randomization test ({permutations} sign flips of whole clusters) on each row's mean over its seeds; "
        "it ignores seed-to-seed variation and says nothing about the recipes.\n"
    )
    return markdown_table(header, rows) + "\n" + note


def write_verdicts(
    verdicts: list[Verdict], out_dir: str | Path, permutations: int, families=None, blocks=None, coverage=""
) -> str:
    """claims.md (the primary table, then every claim), the two tables alone (claims_primary.md,
    claims_all.md), claims.csv; returns the primary table's Markdown (report.py prints it)."""
    out = Path(out_dir)
    primary = primary_markdown(verdicts, families or {}, blocks, coverage)
    every = exploratory_markdown(verdicts, permutations)
    (out / "claims_primary.md").write_text(primary)
    (out / "claims_all.md").write_text(every)
    (out / "claims.md").write_text("## Primary claims\n\n" + primary + "\n## All claims\n\n" + every)
    with (out / "claims.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["claim", "family", "a", "b", "number", "expect", "margin", "a_value", "b_value", "diff",
                    "ci_low", "ci_high", "percentile_low", "percentile_high", "se", "df", "tail_beyond_0",
                    "p_holds", "p_fails", "p_holds_holm", "p_fails_holm", "outcome", "seeds_needed",
                    "seeds_at_zero", "seeds_at_margin", "block_rule", "pooled_diff", "pooled_ci_low",
                    "pooled_ci_high", "pooled_outcome", "tost_margin_5_seeds", "tost_margin_10_seeds",
                    "tost_margin_floor",
                    "n_clusters", "seeds_a", "seeds_b", "per_seed_a", "per_seed_b", "query_p_clustered"])  # fmt: skip
        for v in verdicts:
            c, b = v.claim, v.boot
            w.writerow([c.claim, c.family, c.a, c.b, c.column, c.expect, c.margin, v.a_value, v.b_value, v.diff,
                        *(b.ci if b else (None, None)), *(b.percentile_ci if b else (None, None)),
                        b.se if b else None, b.df if b else None, v.tail, v.p_holds, v.p_fails,
                        v.p_holds_adj, v.p_fails_adj, v.outcome, v.seeds_needed, v.seeds_at_zero,
                        v.seeds_at_margin, v.block_rule, *_pooled_numbers(v), *_tost_margins(v), v.n_clusters,
                        json.dumps(v.seeds_a), json.dumps(v.seeds_b), json.dumps(v.per_seed_a),
                        json.dumps(v.per_seed_b), v.query_p])  # fmt: skip
    return primary
