"""Size a claims family before its cells train: seeds per row for 80% power, from rows that already exist.

A declared claim names rows that have no cells yet. Its ``sized_with`` names proxy rows that do (the same
selectors and number fields as a claim, plus ``folder`` when they live in another results folder and
``clusters_scale`` when the new cells will score a different number of test clusters, e.g. 0.2 for five times
the queries per language). The proxy pair's variance components (``mdr.report.bootstrap``: seed components,
the test set's cluster component) then give, at the family's Bonferroni level:

- seeds per row for 80% power at a true difference of 0 and of +margin (``>=`` / ``<=``), or at the proxy's
  observed difference (``>`` / ``<``, planning only);
- the test set's floor: the smallest distance from the threshold that infinitely many seeds could detect;
- seeds at the proxy's observed difference: None ("never") marks a claim to declare as undecidable at its
  margin instead of running seeds for it.

    python -m mdr.report.sizing results/decisive --claims conf/claims/lora_43.yaml [--out sizing.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy import stats

from mdr.report.bootstrap import Components, seeds_for_power
from mdr.report.claims import ALPHA, EXPLORATORY, POWER, Claim, judge, load_claims_file
from mdr.report.collect import collect
from mdr.runtime.errors import InputError
from mdr.runtime.markdown import markdown_table

PROXY_FIELDS = {"a", "b", "dataset", "kind", "group", "metric", "budget", "subset", "paired", "paired_reason"}
SIZING_FIELDS = PROXY_FIELDS | {"folder", "clusters_scale", "note"}


@dataclasses.dataclass
class Sizing:
    claim: Claim
    proxy: Claim
    folder: str
    seeds: str  # the proxy rows' seed counts, a / b
    diff: float  # the proxy's observed difference (planning only)
    se: float  # the proxy's standard error at its own seeds (after clusters_scale)
    floor_se: float  # the cluster component alone: what no number of seeds removes
    floor_distance: (
        float  # the smallest distance from the threshold infinitely many seeds detect with 80% power
    )
    seeds_at_zero: int | None
    seeds_at_margin: int | None
    seeds_at_observed: int | None  # None: no number of seeds decides the claim at the proxy's difference


def proxy_claim(claim: Claim) -> tuple[Claim, str, float]:
    """The claim re-pointed at its proxy rows (exploratory), the proxies' folder and the cluster scale."""
    spec = dict(claim.sized_with or {})
    unknown = set(spec) - SIZING_FIELDS
    if unknown:
        raise InputError(f"claim {claim.claim!r}: field sized_with has unknown key(s) {sorted(unknown)}")
    scale = float(spec.pop("clusters_scale", 1.0))
    if not scale > 0:
        raise InputError(f"claim {claim.claim!r}: sized_with.clusters_scale must be > 0")
    folder = str(spec.pop("folder", ""))
    spec.pop("note", None)
    proxy = dataclasses.replace(
        claim, family=EXPLORATORY, exclude_seeds=None, undecidable="", sized_with=None, **spec
    )
    proxy.check(set())
    return proxy, folder, scale


def _scaled(c: Components, scale: float) -> Components:
    return dataclasses.replace(c, clusters=c.clusters * scale, terms=())


def _floor_distance(c: Components, level: float) -> float:
    se = float(np.sqrt(c.clusters))
    return se * (stats.t.ppf(1 - level, max(c.n_clusters - 1, 1)) + stats.norm.ppf(POWER))


def size_family(claims: list[Claim], default_folder: str) -> list[Sizing]:
    """A sizing per family claim that names ``sized_with`` (claims without one are skipped)."""
    sized = [c for c in claims if c.family != EXPLORATORY and c.sized_with is not None]
    family_size = {c.family: sum(1 for x in claims if x.family == c.family and x.tested) for c in sized}
    by_folder: dict[str, list[tuple[Claim, Claim, float]]] = {}
    for c in sized:
        proxy, folder, scale = proxy_claim(c)
        by_folder.setdefault(folder or default_folder, []).append((c, proxy, scale))
    out: list[Sizing] = []
    for folder, items in by_folder.items():
        report = collect(folder)
        verdicts = judge(report, [p for _, p, _ in items], permutations=1000, replicates=200)
        for (claim, proxy, scale), v in zip(items, verdicts):
            if v.boot is None:
                raise InputError(f"claim {claim.claim!r}: its proxy rows in {folder}: {v.outcome}")
            comps = _scaled(v.boot.comps, scale)
            level = ALPHA / max(family_size[claim.family], 1)
            margin = float(claim.margin or 0.0) if claim.expect in (">=", "<=") else 0.0
            sign = 1.0 if claim.higher_is_better else -1.0
            observed = sign * v.diff
            at_zero = seeds_for_power(comps, 0.0, margin, level, POWER) if margin else None
            at_margin = seeds_for_power(comps, margin, margin, level, POWER) if margin else None
            out.append(
                Sizing(
                    claim,
                    proxy,
                    folder,
                    f"{len(v.seeds_a)} / {len(v.seeds_b)}",
                    float(v.diff),
                    float(np.sqrt(comps.total)),
                    float(np.sqrt(comps.clusters)),
                    _floor_distance(comps, level),
                    at_zero,
                    at_margin,
                    seeds_for_power(comps, observed, margin, level, POWER),
                )  # fmt: skip
            )
    return out


def sizing_markdown(rows: list[Sizing]) -> str:
    def n(x: int | None) -> str:
        return "never (<= 100)" if x is None else str(x)

    header = ["claim", "family", "number", "expect", "margin", "proxy a / b", "proxy seeds", "proxy a - b",
              "proxy SE", "cluster floor SE", "floor distance", "seeds at 0", "seeds at +margin",
              "seeds at the proxy's difference"]  # fmt: skip
    body = []
    for s in rows:
        c = s.claim
        margin = "0" if c.expect in (">", "<") else f"{c.margin:g}"
        at_zero = n(s.seeds_at_zero) if c.expect in (">=", "<=") else "–"
        at_margin = n(s.seeds_at_margin) if c.expect in (">=", "<=") else "–"
        body.append([c.claim, c.family, c.column, f"a {c.expect} b", margin, f"{s.proxy.a} / {s.proxy.b}",
                     s.seeds, f"{s.diff:+.4f}", f"{s.se:.4f}", f"{s.floor_se:.4f}", f"{s.floor_distance:.4f}",
                     at_zero, at_margin, n(s.seeds_at_observed)])  # fmt: skip
    note = (
        "\nSeeds per row for 80% power at the family's Bonferroni level (0.025 / tested claims in the family), "
        "from the proxy rows' variance components (two-way random effects: seed components shrink as 1/n, the "
        "cluster component stays). Floor distance: the smallest distance between the true difference and the "
        "threshold that infinitely many seeds detect with 80% power. 'never' at the proxy's difference: no "
        "number of seeds decides the claim if the truth is what the proxies show; declare it undecidable at "
        "its margin. The proxy's difference is for planning only.\n"
    )
    return markdown_table(header, body) + "\n" + note


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "folder", help="results folder that holds the proxy rows (unless sized_with names one)"
    )
    parser.add_argument("--claims", required=True, help="the claims file to size")
    parser.add_argument("--out", help="write the table (Markdown) and sizing.json here")
    args = parser.parse_args(argv)
    cf = load_claims_file(args.claims)
    rows = size_family(cf.claims, args.folder)
    if not rows:
        raise SystemExit(f"{args.claims}: no family claim names sized_with; nothing to size")
    text = sizing_markdown(rows)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sizing.md").write_text(text)
        payload = [
            {k: v for k, v in dataclasses.asdict(s).items() if k not in ("claim", "proxy")}
            | {"claim": s.claim.claim, "family": s.claim.family, "proxy_a": s.proxy.a, "proxy_b": s.proxy.b}
            for s in rows
        ]
        (out / "sizing.json").write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
