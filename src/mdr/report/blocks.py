"""Which seeds a claim compares, and how, when its rows ran in different seed blocks.

A block is a CPU kind with major library versions (``mdr.runtime.provenance.block_of``); the commit is
listed, not blocked on. Results may drift between blocks (docs/experiments.md: hybrid's multilingual mAP moved by
+0.005 between the Intel block of seeds 0-4 and the AMD block of seeds 5-9; the paired measure, the same seed
retrained in the other block, later reproduced its twin to the fourth decimal, so that gap was the seeds', not
the machine's), and a claim whose rows hold different mixes of blocks would then compare blocks as much as
recipes. The rule:

- every run in one block: the rows as they are (``one block``);
- rows with seeds: only blocks where both rows have at least two seeds are kept; one shared block: ``restricted to <block>``; several:
  ``stratified``: each row's estimate is the equally weighted mean of its per-block seed means, and seeds are
  resampled within their block (``mdr.report.bootstrap``). No shared block: the claim cannot be judged;
- a row without seeds (the untrained backbone, evaluated once): it does not vary with training, so the seeded
  row's blocks are weighted equally against it;
- paired seeds: a seed's block is the pair of its two runs' blocks.

``pool`` mode (the rule families were declared under) ignores blocks: every seed of each row, pooled.
"""

from __future__ import annotations

from dataclasses import dataclass

STRATIFY, POOL = "stratify", "pool"


@dataclass
class BlockPlan:
    seeds_a: list
    seeds_b: list
    blocks_a: list | None  # each kept seed's block (None: not stratified)
    blocks_b: list | None
    weights: dict | None  # block -> weight in each row's estimate
    rule: str  # what the table prints
    comparable: bool = True


def _label(block: str, labels: dict[str, str]) -> str:
    return labels.get(block, block)


def _dropped(name: str, seeds: list, blocks: list, kept: set, labels: dict) -> str:
    gone = [f"{s} ({_label(k, labels)})" for s, k in zip(seeds, blocks) if k not in kept]
    return f"{name} drops seed(s) {', '.join(gone)}" if gone else ""


def plan_blocks(
    runs_a: list, runs_b: list, seeds_a: list, seeds_b: list, paired: bool, mode: str, labels: dict[str, str]
) -> BlockPlan:
    """The seeds each row keeps, their blocks and weights, and the rule's name (``labels``: block -> short
    name for the table)."""
    of_a, of_b = {r.seed: r.block for r in runs_a}, {r.seed: r.block for r in runs_b}
    ba, bb = [of_a[s] for s in seeds_a], [of_b[s] for s in seeds_b]
    seeded_a, seeded_b = seeds_a != [None], seeds_b != [None]
    every = set(ba if seeded_a else []) | set(bb if seeded_b else [])
    if mode == POOL or len(every) <= 1:
        mixed = "" if len(every) <= 1 else f" ({len(every)} blocks mixed)"
        rule = ("one block" if len(every) <= 1 else "pooled over blocks, as declared") + mixed
        return BlockPlan(seeds_a, seeds_b, None, None, None, rule)
    if paired:
        pairs = [f"{x} / {y}" if x != y else x for x, y in zip(ba, bb)]
        return _stratify(seeds_a, seeds_b, pairs, pairs, sorted(set(pairs)), labels, "")
    if not (seeded_a and seeded_b):  # one row was evaluated once: weight the seeded row's blocks equally
        blocks = ba if seeded_a else bb
        kept = sorted(set(blocks))
        return _stratify(
            seeds_a, seeds_b, ba if seeded_a else None, bb if seeded_b else None, kept, labels, ""
        )
    # a block where a row has a single seed gives no estimate of that row's seed variance there: not shared
    shared = sorted(k for k in set(ba) & set(bb) if ba.count(k) >= 2 and bb.count(k) >= 2)
    if not shared:
        rule = (
            f"no shared block (a: {', '.join(sorted({_label(k, labels) for k in ba}))}; "
            f"b: {', '.join(sorted({_label(k, labels) for k in bb}))})"
        )
        return BlockPlan(seeds_a, seeds_b, None, None, None, rule, comparable=False)
    keep = set(shared)
    drops = "; ".join(
        x for x in (_dropped("a", seeds_a, ba, keep, labels), _dropped("b", seeds_b, bb, keep, labels)) if x
    )
    kept_a = [(s, k) for s, k in zip(seeds_a, ba) if k in keep]
    kept_b = [(s, k) for s, k in zip(seeds_b, bb) if k in keep]
    return _stratify(
        [s for s, _ in kept_a],
        [s for s, _ in kept_b],
        [k for _, k in kept_a],
        [k for _, k in kept_b],
        shared,
        labels,
        drops,
    )


def _stratify(seeds_a, seeds_b, blocks_a, blocks_b, kept: list, labels: dict, drops: str) -> BlockPlan:
    names = ", ".join(_label(k, labels) for k in kept)
    if len(kept) == 1:
        rule = f"restricted to {names}"
        return BlockPlan(seeds_a, seeds_b, None, None, None, rule + (f"; {drops}" if drops else ""))
    rule = f"stratified over {names}, weighted equally" + (f"; {drops}" if drops else "")
    return BlockPlan(seeds_a, seeds_b, blocks_a, blocks_b, {k: 1.0 / len(kept) for k in kept}, rule)


def block_labels(runs: list) -> dict[str, str]:
    """Short names (B1, B2, ...) for the blocks of a report's runs, in sorted order."""
    return {block: f"B{i + 1}" for i, block in enumerate(sorted({r.block for r in runs}))}
