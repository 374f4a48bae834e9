"""Claim-by-claim verdicts about recipes: a paper's hypotheses judged on a recipe-level interval.

``report.py results/decisive --claims conf/claims/hybrid_2408.10536.yaml`` writes claims.md / claims.csv
(``mdr.report.claims_tables``) and prints the primary table. A claim names two rows (``a``, ``b``: row selectors such as
``sampler=hybrid,finetune=full``), one number (a LAReQA ``kind`` mono / cross / multi or a Tatoeba ``group``
all / xtreme36 / low_resource, a ``metric``, optionally a ``subset`` seen / unseen) and what is expected of
``a - b``: ``">"`` (superiority; ``"<"`` where lower is better, rank distance) or ``">="`` (non-inferiority
within a stated ``margin``; ``"<="`` where lower is better).

The evidence is the two-level bootstrap of ``mdr.report.bootstrap`` (training seeds within each row, test
clusters jointly: a question with all its translations, or a language for a Tatoeba group): a 95% interval
for the recipes' difference. Each row uses all its seeds; ``paired: true`` (with a ``paired_reason``) keeps
the seeds both rows have and resamples them together; ``same_seeds: true`` keeps the seeds both rows have but
resamples them apart (a recipe "at the same seeds" as another whose seeds share nothing else with it). The claims file declares families (``families:``); claims in ``primary`` are
tested one-sided at level 0.025 (the interval's side) with Holm's correction inside that family only:

- **holds**: the test against the claim's threshold (0, or ``-margin`` for ``>=``) rejects after Holm;
- **does not hold**: the opposite one-sided test rejects (``a`` is worse than the threshold), reported with
  its effect size;
- **inconclusive**: neither, with the interval and the seeds per row that 80% power would need (for the
  claim's own test; where the estimate is already past the threshold on the failing side, for the test that
  it does not hold, and the outcome says it leans that way).

Every other claim is exploratory: its interval and P(direction) (the corrected bootstrap distribution's mass
on the claimed side), no adjusted verdict. A query-level test (Fisher's randomization test with sign flips of whole
clusters, on each row's mean over its seeds) is kept as a secondary view: it speaks only of the trained
models in hand, not of the recipes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from mdr.report.blocks import POOL, STRATIFY, block_labels, plan_blocks
from mdr.report.bootstrap import (
    BootstrapResult,
    bootstrap_diff,
    cluster_sums,
    row_estimate,
    seeds_for_power,
)
from mdr.report.collect import BASE_KEYS
from mdr.report.seed_plan import (
    Family,
    check_plan_rows,
    coverage_text,
    parse_family,
    planned_seeds,
    withheld_reason,
)
from mdr.report.significance import UnitScores, holm, paired_randomization_test, parse_selector, seed_values
from mdr.runtime.errors import InputError
from mdr.runtime.inputs import read_yaml

log = logging.getLogger(__name__)

EXPECTATIONS = (">", ">=", "<", "<=")
LAREQA_KINDS = ("mono", "cross", "multi")
TATOEBA_GROUPS = ("all", "xtreme36", "low_resource")
SUBSETS = (None, "seen", "unseen")
# the per-query numbers a claim can test (mdr.eval.outputs.per_query: metrics_from_ranks and rank distance)
LAREQA_METRICS = ("map", "p@1", "mrr@5", "r@10", "map@20", "ndcg@10", "rank_distance")
TATOEBA_METRICS = ("accuracy", "map", "mrr@5")
ATTACK_METRICS = ("map", "p@1", "mrr@5")  # what an attack's per_query.npz stores per budget
PRIMARY, EXPLORATORY = "primary", "exploratory"
ALPHA = 0.025  # one-sided: the side of a two-sided 95% interval
POWER = 0.8
CLAIMS_FIX = "see conf/claims/hybrid_2408.10536.yaml for the layout"
# The fewest seeds per row at which the interval covers 93-97% in tests/test_bootstrap.py's simulations: with
# 2 unpaired seeds it covers up to 97.7% (conservative), with 2 / 3 / 4 paired seeds down to 88% / 92.7% / 92%.
MIN_SEEDS_UNPAIRED = 3
MIN_SEEDS_PAIRED = 5


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
    family: str = EXPLORATORY  # a family declared in the file's ``families:``, or exploratory
    margin: float | None = (
        None  # non-inferiority margin of ">=" / "<=" (metric units; ranks for rank distance)
    )
    margin_reason: str = ""
    paired: bool = False  # the rows share seeds that see the same batches: resample seeds together
    paired_reason: str = ""
    same_seeds: bool = False  # unpaired, but each row keeps only the seeds the other row also has
    budget: int | None = (
        None  # attack datasets (``<set>~attack...``): edits per query; the number is P@1 etc.
    )
    exclude_seeds: list | None = None  # seeds that motivated the claim: shown beside, never judged
    exclude_reason: str = ""
    undecidable: str = (
        ""  # declared undecidable at this margin (why: the test set's floor): reported, not tested
    )
    sized_with: dict | None = None  # how the claim was sized before its cells ran (mdr.report.sizing)

    def check(self, families: set[str]) -> None:
        where = f"claim {self.claim!r}"
        if self.expect not in EXPECTATIONS:
            raise InputError(f"{where}: field expect={self.expect!r}; use one of {EXPECTATIONS}")
        if self.subset not in SUBSETS:
            raise InputError(f"{where}: field subset={self.subset!r}; use seen, unseen or leave it out")
        if self.dataset == "tatoeba":
            if self.group not in TATOEBA_GROUPS or self.kind:
                raise InputError(f"{where}: Tatoeba claims name a group from {TATOEBA_GROUPS} and no kind")
        elif self.kind not in LAREQA_KINDS or self.group:
            raise InputError(f"{where}: LAReQA claims name a kind from {LAREQA_KINDS} and no group")
        metrics = (
            TATOEBA_METRICS
            if self.dataset == "tatoeba"
            else ATTACK_METRICS
            if is_attack_dataset(self.dataset)
            else LAREQA_METRICS
        )
        if self.metric not in metrics:
            raise InputError(
                f"{where}: field metric={self.metric!r} is not a {self.dataset} number; use one of {metrics}"
            )
        if self.family not in families | {EXPLORATORY}:
            raise InputError(
                f"{where}: field family={self.family!r} is not declared; declared: {sorted(families)} "
                f"(or {EXPLORATORY})"
            )
        if self.margin is not None and (not isinstance(self.margin, int | float) or self.margin < 0):
            raise InputError(f"{where}: field margin={self.margin!r} must be a number >= 0 (metric units)")
        if self.expect in (">=", "<=") and self.family != EXPLORATORY:
            if self.margin is None or not self.margin_reason:
                raise InputError(
                    f"{where}: field margin: a {self.family} '{self.expect}' claim states its margin and "
                    "margin_reason (how much worse still counts as 'at least as good')"
                )
        if self.paired and not self.paired_reason:
            raise InputError(f"{where}: field paired_reason: say why the two rows' seeds are paired")
        attack = is_attack_dataset(self.dataset)
        if attack and (not isinstance(self.budget, int) or isinstance(self.budget, bool) or self.budget < 0):
            raise InputError(
                f"{where}: field budget: an attack claim names the edits per query (an int >= 0)"
            )
        if not attack and self.budget is not None:
            raise InputError(
                f"{where}: field budget={self.budget!r} belongs to attack datasets (<set>~attack...)"
            )
        if self.exclude_seeds is not None and (
            not isinstance(self.exclude_seeds, list) or not self.exclude_reason
        ):
            raise InputError(
                f"{where}: field exclude_seeds: a list of seeds with an exclude_reason (why they are not judged)"
            )
        if self.sized_with is not None and not isinstance(self.sized_with, dict):
            raise InputError(
                f"{where}: field sized_with: a mapping of the proxy rows (a, b, ...) it was sized on"
            )

    @property
    def column(self) -> str:
        where = self.kind if self.dataset != "tatoeba" else self.group
        budget = f" k={self.budget}" if self.budget is not None else ""
        return f"{self.dataset} {where} {self.metric}{budget}" + (f" ({self.subset})" if self.subset else "")

    @property
    def tested(self) -> bool:
        """A family claim that takes its place in Holm's correction (not exploratory, not declared undecidable)."""
        return self.family != EXPLORATORY and not self.undecidable

    @property
    def higher_is_better(self) -> bool:
        return self.expect in (">", ">=")

    @property
    def threshold(self) -> float:
        """The value of ``a - b`` the claim must beat: 0, or the margin on the worse side."""
        m = float(self.margin or 0.0) if self.expect in (">=", "<=") else 0.0
        return -m if self.higher_is_better else m


@dataclass
class ClaimsFile:
    claims: list[Claim]
    families: dict[str, Family] = field(default_factory=dict)  # name -> what it holds, when, and its seeds


@dataclass
class Verdict:
    claim: Claim
    outcome: str
    a_value: float | None = None
    b_value: float | None = None
    seeds_a: list | None = None
    seeds_b: list | None = None
    boot: BootstrapResult | None = None
    p_holds: float | None = None  # one-sided, against the claim's threshold
    p_fails: float | None = None  # one-sided, the other way
    p_holds_adj: float | None = None  # Holm within the family (primary only)
    p_fails_adj: float | None = None
    seeds_needed: int | None = None  # per row, for 80% power (primary only)
    query_p: float | None = None  # secondary: clustered sign flips on the rows' seed means
    n_clusters: int = 0
    per_seed_a: list[float] = field(default_factory=list)
    per_seed_b: list[float] = field(default_factory=list)
    block_rule: str = ""  # how the rows' seed blocks were compared (mdr.report.blocks)
    seeds_at_zero: int | None = None  # '>=' / '<=': seeds per row for 80% power at a true difference of 0
    seeds_at_margin: int | None = None  # ... and at a true difference of +margin (the claimed direction)
    too_few_seeds: str = ""  # a primary claim whose rows have fewer seeds than a valid interval needs
    withheld: str = ""  # its family declares seeds that are not all in yet (mdr.report.seed_plan)
    pooled: Verdict | None = None  # the same claim with every seed pooled over blocks (as declared)

    @property
    def diff(self) -> float | None:
        return self.boot.diff if self.boot else None

    @property
    def tail(self) -> float | None:
        """One minus the one-sided p of "a is no better than b": a confidence tail, not P(a better)."""
        return self.boot.tail_beyond_zero(self.claim.higher_is_better) if self.boot else None


def load_claims_file(path: str | Path) -> ClaimsFile:
    """A claims file: ``{families: {name: description}, claims: [...]}`` or a bare list (all exploratory); a
    family may declare its seeds per row (``mdr.report.seed_plan``). Unknown or missing fields fail with the
    claim's text and the field."""
    raw = read_yaml(path, "claims file", f"write a YAML list of claims ({CLAIMS_FIX})")
    families: dict = {}
    if isinstance(raw, dict):
        families = raw.get("families") or {}
        if not isinstance(families, dict):
            raise InputError(f"{path}: field families must map a family name to its description")
        unknown = set(raw) - {"families", "claims"}
        if unknown:
            raise InputError(f"{path}: unknown top-level field(s) {sorted(unknown)}; use families and claims")
        raw = raw.get("claims")
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
        try:
            claim.check(set(families))
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
        claims.append(claim)
    parsed = {str(k): parse_family(path, str(k), v) for k, v in families.items()}
    for name, family in parsed.items():
        check_plan_rows(path, name, family, claims)
    return ClaimsFile(claims, parsed)


def is_attack_dataset(name: str) -> bool:
    """Per-query attack results live under ``<set>~attack`` (and ``<set>~attack_<name>``) eval folders."""
    return "~attack" in name


def load_claims(path: str | Path) -> list[Claim]:
    return load_claims_file(path).claims


def claims_paths(spec: str | Path | list) -> list[Path]:
    """``a.yaml,b.yaml`` (as report.py's ``--claims`` and a docs marker take it) or a list -> the files."""
    items = spec if isinstance(spec, list) else str(spec).split(",")
    return [Path(p) for p in items if str(p)]


def load_claims_files(spec: str | Path | list) -> ClaimsFile:
    """Several claims files judged together (every family declared on one folder, for ``--recommend``): their
    claims in order, their families side by side. Holm stays within each family; a family name declared in
    two files is refused (two families would share one correction)."""
    claims: list[Claim] = []
    families: dict[str, Family] = {}
    for path in claims_paths(spec):
        one = load_claims_file(path)
        if twice := sorted(set(one.families) & set(families)):
            raise InputError(f"{path}: family {twice} is also declared in another --claims file; rename one")
        claims += one.claims
        families |= one.families
    return ClaimsFile(claims, families)


def runs_of(report, selector: str) -> list:
    """The runs of the one row the selector names. A swept key the selector leaves out means its default:
    ``sampler=hybrid,finetune=full`` is the trained row, not its merged ``merge=wise0.5`` row. A key that no
    run of the folder sets (``pretrain=mlm`` before the first such cell) selects no run."""
    named = {part.partition("=")[0] for part in selector.split(",")}
    if not named <= set(report.key_names) and all("=" in part for part in selector.split(",")):
        return []
    wanted = parse_selector(selector, report.key_names)
    keys = {rv.key for rv in report.runs}
    matches = [k for k in keys if all(k[report.key_names.index(n)] == v for n, v in wanted.items())]
    if len(matches) > 1:
        extra = [i for i, n in enumerate(report.key_names) if n not in wanted and n not in BASE_KEYS]
        defaults = [k for k in matches if extra and all(k[i] == "default" for i in extra)]
        matches = defaults if len(defaults) == 1 else matches
    if len(matches) > 1:
        raise InputError(f"row selector {selector!r} matches {len(matches)} rows {sorted(matches)}; add keys")
    return [rv for rv in report.runs if matches and rv.key == matches[0]]


def cluster_key(claim: Claim, keys: np.ndarray):
    """The test set's clusters: a question with all its language versions (LAReQA unit ``lang:qid``); for a
    Tatoeba group a language (unit ``lang:line``), for a one-language group the sentence pair."""
    if claim.dataset != "tatoeba":
        return lambda k: k.split(":", 1)[1]
    if len({str(k).split(":", 1)[0] for k in keys}) == 1:
        return lambda k: k
    return lambda k: k.split(":", 1)[0]


def _row_sums(runs, seeds, claim, units) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    where = claim.group if claim.dataset == "tatoeba" else claim.kind
    metric = claim.metric if claim.budget is None else f"greedy/k{claim.budget}/{claim.metric}"
    if claim.subset and any(r.datasets[claim.dataset].get("seen_languages") is None for r in runs):
        raise InputError(f"claim {claim.claim!r}: a run records no training languages for {claim.subset}")
    keys, values = seed_values(runs, seeds, claim.dataset, (where, metric), units, claim.subset)
    ids, sums = cluster_sums(keys, values, cluster_key(claim, keys))
    return keys, ids, sums


def _seeds(runs_a: list, runs_b: list, claim: Claim) -> tuple[list, list]:
    """Each row's own seeds (unpaired: the seed drives each recipe's own batch stream), or only the seeds both
    rows have: ``paired`` resamples them together, ``same_seeds`` keeps them apart ("hybrid at the soups' seeds")."""
    dropped = set(claim.exclude_seeds or [])
    a = sorted({r.seed for r in runs_a} - dropped, key=str)
    b = sorted({r.seed for r in runs_b} - dropped, key=str)
    if not (claim.paired or claim.same_seeds):
        return a, b
    shared = sorted(set(a) & set(b), key=str)
    if not shared or None in shared:
        field_name = "paired" if claim.paired else "same_seeds"
        raise InputError(
            f"claim {claim.claim!r}: field {field_name}: the rows share no training seed ({a} vs {b})"
        )
    return shared, shared


def _check_primary(claim: Claim, runs_a: list, runs_b: list, family: Family | None) -> None:
    """A primary claim's rows exist, unless its family declares their seeds (then the verdict waits for them)."""
    for field_name, selector, runs in (("a", claim.a, runs_a), ("b", claim.b, runs_b)):
        if not runs and not (family and family.declared(selector)):
            raise InputError(
                f"claim {claim.claim!r} ({claim.family}): field {field_name}: no runs for {selector!r} in the "
                "folder; run its cells, or move the claim out of the primary family before any cell runs"
            )


def too_few_seeds(claim: Claim, seeds_a: list, seeds_b: list) -> str:
    """Why a primary claim's interval cannot be trusted at these seed counts ("" when it can)."""
    need = MIN_SEEDS_PAIRED if claim.paired else MIN_SEEDS_UNPAIRED
    counts = [len(s) for s in (seeds_a, seeds_b) if s != [None]]
    if not counts or min(counts) >= need:
        return ""
    design = "paired" if claim.paired else "unpaired"
    return (
        f"refused: {min(counts)} {design} seed(s) per row; a primary claim needs >= {need} for an interval that "
        "covers 93-97% (tests/test_bootstrap.py)"
    )


def judge(
    report,
    claims: list[Claim],
    permutations: int = 10_000,
    replicates: int = 4000,
    blocks: str = STRATIFY,
    families: dict[str, Family] | None = None,
) -> list[Verdict]:
    """One verdict per claim, in order, with the seed-block rule (``blocks``: stratify, or pool as declared);
    Holm within each declared family; exploratory claims get none. In stratify mode each verdict also carries
    the pooled one (``Verdict.pooled``), so that a verdict that moves with the blocks shows both numbers.
    ``families`` (from the claims file): a family that declares its seeds is judged on them alone, and its
    verdicts are withheld until they are all in (``mdr.report.seed_plan``)."""
    verdicts = _judge(report, claims, permutations, replicates, blocks, families or {})
    for v in verdicts:
        if v.outcome.startswith("not run"):  # exploratory (a primary claim without rows stops the report)
            log.warning("claim %r selects no rows: %s; it is listed as not run", v.claim.claim, v.outcome)
    mixed = any(v.block_rule and not v.block_rule.startswith("one block") for v in verdicts)
    if blocks == STRATIFY and mixed:  # with one block everywhere the pooled verdicts are these verdicts
        for v, p in zip(verdicts, _judge(report, claims, permutations, replicates, POOL, families or {})):
            v.pooled = p
    return verdicts


def _judged_seeds(claim: Claim, runs_a: list, runs_b: list, family: Family | None) -> tuple[list, list, str]:
    """Each row's judged seeds (exclusions, pairing, then the family's declared seeds) and why the verdict is
    withheld ("" when every declared seed is in)."""
    if runs_a and runs_b:
        seeds_a, seeds_b = _seeds(runs_a, runs_b, claim)
    else:
        seeds_a, seeds_b = (
            [r.seed for r in runs if r.seed not in (claim.exclude_seeds or [])] for runs in (runs_a, runs_b)
        )
    plan_a, plan_b = planned_seeds(family, claim.a, seeds_a), planned_seeds(family, claim.b, seeds_b)
    return plan_a.judged, plan_b.judged, withheld_reason([(claim.a, plan_a), (claim.b, plan_b)])


def _judge(
    report, claims: list[Claim], permutations: int, replicates: int, blocks: str, families: dict[str, Family]
) -> list[Verdict]:
    units = UnitScores(None)
    labels = block_labels(report.runs)
    verdicts: list[Verdict] = []
    for claim in claims:
        family = families.get(claim.family)
        runs_a, runs_b = runs_of(report, claim.a), runs_of(report, claim.b)
        if claim.family != EXPLORATORY:
            _check_primary(claim, runs_a, runs_b, family)
        seeds_a, seeds_b, withheld = _judged_seeds(claim, runs_a, runs_b, family)
        missing = [sel for sel, runs in ((claim.a, runs_a), (claim.b, runs_b)) if not runs]
        if missing or not seeds_a or not seeds_b:
            not_run = (
                f"no runs for {' and '.join(missing)}"
                if missing
                else f"every seed is excluded: {claim.exclude_seeds}"
            )
            verdicts.append(Verdict(claim, withheld or f"not run ({not_run})", withheld=withheld))
            continue
        plan = plan_blocks(runs_a, runs_b, seeds_a, seeds_b, claim.paired, blocks, labels)
        if not plan.comparable:
            verdicts.append(Verdict(claim, f"not comparable: {plan.rule}", block_rule=plan.rule))
            continue
        keys_a, ids_a, a = _row_sums(runs_a, plan.seeds_a, claim, units)
        keys_b, ids_b, b = _row_sums(runs_b, plan.seeds_b, claim, units)
        if not np.array_equal(keys_a, keys_b) or not np.array_equal(ids_a, ids_b):
            raise InputError(f"claim {claim.claim!r}: {claim.a} and {claim.b} scored different units")
        boot = bootstrap_diff(
            a, b, replicates, paired=claim.paired, blocks_a=plan.blocks_a, blocks_b=plan.blocks_b,
            weights=plan.weights,
        )  # fmt: skip
        a_value = float(row_estimate(a, plan.blocks_a, plan.weights).sum())
        b_value = float(row_estimate(b, plan.blocks_b, plan.weights).sum())
        v = Verdict(claim, "", a_value, b_value, plan.seeds_a, plan.seeds_b, boot, withheld=withheld)
        v.block_rule = plan.rule
        v.p_holds, v.p_fails = one_sided_tests(boot, claim)
        v.query_p = paired_randomization_test(a.mean(0), b.mean(0), permutations)
        v.n_clusters = a.shape[1]
        v.per_seed_a, v.per_seed_b = [float(x) for x in a.sum(1)], [float(x) for x in b.sum(1)]
        if claim.tested:
            v.too_few_seeds = too_few_seeds(claim, plan.seeds_a, plan.seeds_b)
        verdicts.append(v)
    _adjust_and_decide(verdicts)
    return verdicts


def one_sided_tests(boot: BootstrapResult, claim: Claim) -> tuple[float, float]:
    """(p of "a - b is not past the claim's threshold", p of "it is"): the test that the claim holds and the
    one that it does not, on the claimed side (lower is better for ``<`` / ``<=``)."""
    if claim.higher_is_better:
        return boot.p_above(claim.threshold), boot.p_below(claim.threshold)
    return boot.p_below(claim.threshold), boot.p_above(claim.threshold)


def _adjust_and_decide(verdicts: list[Verdict]) -> None:
    """Holm within each family (a refused or withheld claim counts with p = 1: it still takes its place in the
    family), then each claim's outcome and the seeds 80% power needs at the pre-stated alternatives."""

    def counted(v: Verdict) -> bool:
        return (v.boot is not None or bool(v.withheld)) and v.claim.tested

    for family in sorted({v.claim.family for v in verdicts if counted(v)}):
        members = [v for v in verdicts if v.claim.family == family and counted(v)]
        refused = [bool(v.too_few_seeds or v.withheld or v.boot is None) for v in members]
        p_holds = [1.0 if r else v.p_holds for v, r in zip(members, refused)]
        p_fails = [1.0 if r else v.p_fails for v, r in zip(members, refused)]
        level = ALPHA / len(members)
        for v, holds, fails in zip(members, holm(p_holds), holm(p_fails)):
            if v.boot is None:
                continue
            if not v.withheld:  # an interim look has no adjusted p-value to report
                v.p_holds_adj, v.p_fails_adj = holds, fails
            _power(v, level)
            v.outcome = v.withheld or v.too_few_seeds or _outcome(v)
    for v in verdicts:
        if v.withheld and v.claim.family != EXPLORATORY:
            v.outcome = v.withheld
        elif v.boot is not None and v.claim.family == EXPLORATORY:
            v.outcome = f"exploratory: tail beyond 0 = {v.tail:.3f}"
        elif v.boot is not None and v.claim.undecidable:
            low, high = v.boot.ci
            v.outcome = (
                f"declared undecidable at this margin ({v.claim.undecidable}); not tested: a - b = {v.diff:+.4g} "
                f"[{low:+.4g}, {high:+.4g}]"
            )


def _power(v: Verdict, level: float) -> None:
    """Seeds per row for 80% power. ``>=`` / ``<=``: at the pre-stated alternatives, a true difference of 0
    (``seeds_at_zero``) and of +margin in the claimed direction (``seeds_at_margin``). ``seeds_needed`` is what
    the outcome speaks of: for ``>=`` / ``<=`` the one at 0; for ``>`` / ``<`` the observed difference, and for
    an estimate already past the threshold on the failing side the test that the claim does not hold at the
    observed distance (both for planning only)."""
    c = v.claim
    if c.expect in (">=", "<="):
        margin = float(c.margin or 0.0)
        v.seeds_at_zero = seeds_for_power(v.boot.comps, 0.0, margin, level, POWER)
        v.seeds_at_margin = seeds_for_power(v.boot.comps, margin, margin, level, POWER)
        v.seeds_needed = v.seeds_at_zero
    else:
        v.seeds_needed = seeds_for_power(v.boot.comps, abs(v.diff), 0.0, level, POWER)
    if leans_against(v):
        v.seeds_needed = seeds_for_power(v.boot.comps, abs(v.diff - c.threshold), 0.0, level, POWER)


def leans_against(v: Verdict) -> bool:
    """The estimate is past the claim's threshold on the failing side: more evidence would be evidence that
    it does not hold, so "more seeds needed" must speak of that test, not of the claim's own."""
    t = v.claim.threshold
    return v.diff < t if v.claim.higher_is_better else v.diff > t


def _outcome(v: Verdict) -> str:
    low, high = v.boot.ci
    if v.p_holds_adj < ALPHA:
        return "holds"
    if v.p_fails_adj < ALPHA:
        return f"does not hold (a - b = {v.diff:+.4g} [{low:+.4g}, {high:+.4g}])"
    n = (
        min(len(v.seeds_a), len(v.seeds_b))
        if None not in (v.seeds_a + v.seeds_b)
        else max(len(v.seeds_a), len(v.seeds_b))
    )
    if leans_against(v):
        t = v.claim.threshold
        more = _more_seeds(v, n, "more seeds cannot decide it")
        if v.p_fails < ALPHA:  # the unadjusted test rejects: only the family's correction holds it back
            return (
                f"inconclusive after Holm, leaning 'does not hold' (the interval lies past the threshold {t:+.4g}; "
                f"Holm p {v.p_fails_adj:.3f}{more and '; ' + more})"
            )
        return f"inconclusive (the estimate is past the threshold {t:+.4g}{more and '; ' + more})"
    more = _more_seeds(
        v, n, "more seeds cannot decide it: the test set's own (cluster) component alone is too large"
    )
    return f"inconclusive ({more})" if more else "inconclusive"


def _more_seeds(v: Verdict, n: int, unreachable: str) -> str:
    """What more seeds would do for an inconclusive claim ("" when it already has the seeds 80% power needs)."""
    if v.seeds_needed is None:
        return unreachable
    return f"too few seeds: {n} per row; ~{v.seeds_needed} for 80% power" if v.seeds_needed > n else ""


# ---- tables ----
def family_coverage(report, families: dict[str, Family]) -> str:
    """Each family that declares its seeds: how many of its cells are in the folder, and which are missing."""
    return coverage_text(families, lambda row: runs_of(report, row))
