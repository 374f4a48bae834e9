"""The seeds a declared family runs per row, checked before its verdicts are printed.

A family may be declared with its seeds (``families: {name: {about: <text>, seeds: {<row>: [seeds]}}}`` in
conf/claims/*.yaml). Its claims are then judged on exactly those seeds: while a declared seed of a row is not
yet in the folder the verdict is withheld (a sweep that runs over several sessions gets looked at between them,
and a look is not a verdict: stopping when a result looks good inflates the error rate), and a seed the
declaration does not name (a rerun, an extra seed) is shown but never judged. A family declared as plain text
has no plan and is judged on every seed present, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mdr.runtime.errors import InputError

FAMILY_FIX = "write a description, or {about: <text>, seeds: {<row selector>: [<seed>, ...]}}"


@dataclass(frozen=True)
class Family:
    about: str  # what the family holds and when it was declared
    seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # row selector, as declared -> its seeds

    def declared(self, selector: str) -> tuple[int, ...] | None:
        """The seeds declared for the row a selector names (in any order of its keys), or None."""
        key = selector_key(selector)
        return next((seeds for row, seeds in self.seeds.items() if selector_key(row) == key), None)


@dataclass(frozen=True)
class PlannedSeeds:
    """One row of one claim under its family's plan: the seeds judged, and the declared seeds still missing."""

    judged: list
    missing: tuple[int, ...] = ()
    declared: tuple[int, ...] | None = None  # None: the row is not in the plan (every seed present is judged)


def selector_key(selector: str) -> str:
    """One spelling per row: ``finetune=lora,sampler=hybrid`` names the row ``sampler=hybrid,finetune=lora`` does."""
    return ",".join(sorted(part.strip() for part in selector.split(",")))


def parse_family(path: str | Path, name: str, raw: object) -> Family:
    """A ``families:`` entry: a description alone, or the description with the seeds each row runs."""
    if isinstance(raw, str):
        return Family(raw)
    if not isinstance(raw, dict) or set(raw) - {"about", "seeds"} or not isinstance(raw.get("about"), str):
        raise InputError(f"{path}: family {name}: {FAMILY_FIX}")
    seeds = raw.get("seeds") or {}
    if not isinstance(seeds, dict):
        raise InputError(
            f"{path}: family {name}: field seeds must map a row selector to its seeds; {FAMILY_FIX}"
        )
    plan = {}
    for selector, values in seeds.items():
        distinct_ints = (
            isinstance(values, list)
            and values
            and all(isinstance(s, int) and not isinstance(s, bool) for s in values)
            and len(set(values)) == len(values)
        )
        if not distinct_ints:
            raise InputError(
                f"{path}: family {name}: seeds of {selector!r} = {values!r}; write a list of distinct integer "
                "seeds, e.g. [0, 1, 2, 3, 4]"
            )
        plan[str(selector)] = tuple(sorted(values))
    return Family(raw["about"], plan)


def check_plan_rows(path: str | Path, family_name: str, family: Family, claims: list) -> None:
    """Every row a plan names is a row one of the family's claims compares (a misspelt selector would otherwise
    leave its row unchecked), and no declared seed is one a claim excludes."""
    members = [c for c in claims if c.family == family_name]
    rows = {selector_key(s) for c in members for s in (c.a, c.b)}
    for row, seeds in family.seeds.items():
        if selector_key(row) not in rows:
            raise InputError(
                f"{path}: family {family_name}: seeds name the row {row!r}, which none of its claims compares; "
                f"use one of {sorted(rows)}"
            )
        for c in members:
            clash = (
                sorted(set(seeds) & set(c.exclude_seeds or []))
                if selector_key(row) in {selector_key(c.a), selector_key(c.b)}
                else []
            )
            if clash:
                raise InputError(
                    f"{path}: family {family_name}: seeds {clash} of {row!r} are declared and also excluded by "
                    f"claim {c.claim!r}; a seed is either judged or excluded"
                )


def planned_seeds(family: Family | None, selector: str, present: list) -> PlannedSeeds:
    """The seeds a row is judged on under its family's plan."""
    declared = family.declared(selector) if family else None
    if declared is None:
        return PlannedSeeds(list(present))
    return PlannedSeeds(
        [s for s in present if s in declared], tuple(s for s in declared if s not in present), declared
    )


def withheld_reason(rows: list[tuple[str, PlannedSeeds]]) -> str:
    """Why a verdict waits ("" when every declared seed of its rows is in)."""
    waiting = [
        f"{selector}: {len(p.declared) - len(p.missing)} of {len(p.declared)} (missing {', '.join(map(str, p.missing))})"
        for selector, p in rows
        if p.missing
    ]
    if not waiting:
        return ""
    return "withheld (interim): declared seeds not all in; " + "; ".join(waiting)


def coverage_text(families: dict[str, Family], runs_of) -> str:
    """One line per planned family: how many declared cells are in, which are missing, which are not judged.
    ``runs_of(selector)`` gives a row's runs (each with ``.seed``)."""
    lines = []
    for name, family in families.items():
        if not family.seeds:
            continue
        done = total = 0
        missing, extra = [], []
        for row, declared in family.seeds.items():
            present = {r.seed for r in runs_of(row)}
            total += len(declared)
            done += len(present & set(declared))
            if gaps := [s for s in declared if s not in present]:
                missing.append(f"{row} seeds {', '.join(map(str, gaps))}")
            if others := sorted(present - set(declared), key=str):
                extra.append(f"{row} seeds {', '.join(map(str, others))}")
        line = f"- **{name}**: {done} of {total} declared cells in"
        line += f"; missing: {'; '.join(missing)}" if missing else " (complete)"
        if extra:
            line += f"; present but not declared (never judged): {'; '.join(extra)}"
        lines.append(line)
    return "\n".join(lines)
