"""``report.py <folder> --claims F --recommend``: "which recipe should I use?", per user priority, from the
declared claims alone.

For each priority (a number: monolingual mAP, language bias, bitext accuracy, ...) the candidates are the
recipes its declared claims compare (the untrained backbone is a reference, not a recipe). A recipe is named
only when its declared claims against **every** other candidate hold; two recipes whose claims hold both ways
are "equivalent within the margin"; otherwise the answer is "undecided between" the recipes no holding claim
puts below another. Means are never ranked, and exploratory claims are listed beside, never used. A pair of
candidates that no declared claim compares is named as such: the answer cannot come from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mdr.report.claims import EXPLORATORY, Verdict

# (priority, dataset, LAReQA kind, Tatoeba group, metric)
PRIORITIES = (
    ("monolingual retrieval (XQuAD-R mono mAP)", "xquad_r", "mono", None, "map"),
    ("cross-lingual retrieval (XQuAD-R cross mAP)", "xquad_r", "cross", None, "map"),
    ("multilingual retrieval (XQuAD-R multi mAP)", "xquad_r", "multi", None, "map"),
    ("less language bias (XQuAD-R rank distance)", "xquad_r", "multi", None, "rank_distance"),
    ("bitext accuracy kept (Tatoeba-112)", "tatoeba", None, "all", "accuracy"),
    ("low-resource bitext (Tatoeba low-resource)", "tatoeba", None, "low_resource", "accuracy"),
)
REFERENCE = "sampler=untrained"


@dataclass
class Recommendation:
    priority: str
    answer: str
    evidence: list[str] = field(default_factory=list)  # the declared claims used, one line each
    exploratory: list[str] = field(default_factory=list)  # claims on the same number, not used


def _about(v: Verdict, dataset: str, kind: str | None, group: str | None, metric: str) -> bool:
    c = v.claim
    return (
        (c.dataset, c.kind, c.group, c.metric) == (dataset, kind, group, metric)
        and not c.subset
        and c.budget is None
    )


def _line(v: Verdict) -> str:
    c = v.claim
    interval = f"{v.diff:+.4g} [{v.boot.ci[0]:+.4g}, {v.boot.ci[1]:+.4g}]" if v.boot else "no interval"
    seeds = f"{len(v.seeds_a or [])} / {len(v.seeds_b or [])} seeds"
    return f"{c.claim}: a - b = {interval}, {seeds}: {v.outcome.split(' (')[0]}"


def recommend_one(
    verdicts: list[Verdict], priority: tuple, row_of=None, recipes: list[str] | None = None
) -> Recommendation:
    """``row_of``: selector -> the row it names (``sampler=hybrid`` and ``sampler=hybrid,finetune=full`` are one
    recipe); by default the selector itself. ``recipes``: every recipe of the folder (report.py passes its
    trained rows): one that no declared claim covers keeps the answer undecided; by default the recipes the
    claims on this number name."""
    name, dataset, kind, group, metric = priority
    row = row_of or (lambda selector: selector)
    about = [v for v in verdicts if _about(v, dataset, kind, group, metric)]
    declared = [v for v in about if v.claim.family != EXPLORATORY and not v.claim.undecidable]
    rec = Recommendation(
        name, "", [_line(v) for v in declared], [_line(v) for v in about if v not in declared]
    )
    pair = {id(v): (row(v.claim.a), row(v.claim.b)) for v in declared}
    named = {s for a_b in pair.values() for s in a_b} - {row(REFERENCE)}
    # every recipe a claim on this number names, exploratory ones included: they cannot decide, but a recipe
    # they bring in keeps the answer open until a declared claim covers it
    mentioned = {row(s) for v in about for s in (v.claim.a, v.claim.b)} - {row(REFERENCE)}
    candidates = sorted(named | mentioned | set(recipes or []))
    holds = {pair[id(v)] for v in declared if v.outcome == "holds"}
    if not named:
        rec.answer = "no declared claim: nothing can be recommended"
        return rec
    if len(candidates) == 1:
        rec.answer = f"only {candidates[0]} is compared, with the untrained backbone: no recipe choice"
        return rec
    top = [r for r in candidates if all((r, o) in holds for o in candidates if o != r)]
    if len(top) == 1:
        others = ", ".join(o for o in candidates if o != top[0])
        rec.answer = f"{top[0]} (its declared claims against {others} hold)"
    elif top:
        rec.answer = f"equivalent within the margin: {' and '.join(top)}"
    else:
        below = {b for a, b in holds if (b, a) not in holds and a in candidates}
        undominated = [r for r in candidates if r not in below]
        compared = {frozenset(a_b) for a_b in pair.values()}
        missing = [f"{a} vs {b}" for i, a in enumerate(undominated) for b in undominated[i + 1 :]
                   if frozenset((a, b)) not in compared]  # fmt: skip
        shown = "; ".join(missing[:3]) + (f"; and {len(missing) - 3} more pairs" if len(missing) > 3 else "")
        rec.answer = f"undecided between {', '.join(undominated)}" + (
            f" (no declared claim compares {shown})" if missing else ""
        )
    return rec


def recommend(verdicts: list[Verdict], row_of=None, recipes: list[str] | None = None) -> list[Recommendation]:
    return [recommend_one(verdicts, p, row_of, recipes) for p in PRIORITIES]


def recommend_markdown(recs: list[Recommendation]) -> str:
    """The answers as a table (priority, recipe or 'undecided'), then the claims behind each."""
    from mdr.runtime.markdown import markdown_table

    table = markdown_table(["priority", "recipe (declared claims only; means are never ranked)"],
                           [[r.priority, r.answer] for r in recs])  # fmt: skip
    lines = [table, ""]
    for r in recs:
        lines.append(f"- **{r.priority}**")
        lines += [f"  - {e}" for e in r.evidence]
        lines += [f"  - exploratory, not used: {e}" for e in r.exploratory]
    lines += ["", "Training cost is not a declared claim: minutes per CPU kind are in docs/commands.md and "
              "docs/performance.md."]  # fmt: skip
    return "\n".join(lines) + "\n"
