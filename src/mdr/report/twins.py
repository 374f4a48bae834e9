"""Same seed, two blocks: the paired measure of how much results move between commits and CPU kinds.

A cell retrained with the config and seed of an archived cell (issue #45's results/retrained against
results/decisive) differs from its twin only by where and on what code it ran. Per row and metric the table
gives the archived and retrained means over the paired seeds, the mean of the per-seed differences
(retrained - archived) with a 95% t-interval over seeds, and two spreads that say what the pairing bought:
the SD of the paired differences against sqrt(2) x the archived row's seed SD pooled within its blocks (what
two independent seeds would differ by). Where the archived folder also holds other seeds of the row in the retrained cells' block,
their unpaired difference (those seeds' mean - the paired archived seeds' mean) is printed beside: the
estimate the report had before the twins existed.

Twins are matched on the row (sampler, model, fine-tuning mode) and the seed, and must agree on every
training setting both configs record (``TRAINING_SECTIONS``); a setting that only one config records (a key
added to the code since) is listed, not refused.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from mdr.data.names import is_variant
from mdr.report.blocks import block_labels
from mdr.report.collect import Report, RunValues
from mdr.report.stats import Cell, mean_ci
from mdr.runtime.errors import InputError

# what decides the trained weights (eval settings, paths and loggers do not)
TRAINING_SECTIONS = (
    "seed",
    "loss",
    "compute",
    "pretrain",
    "optim",
    "sampler",
    "finetune",
    "model",
    "trainer",
    "data",
)
NOT_TRAINING = ("data.eval_datasets", "data.qrels_sets", "data.datamodule.data_dir", "trainer.logger")
NOT_TRAINING += ("trainer.callbacks", "trainer.enable_progress_bar", "data.datamodule.num_workers")


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{name}."))
        else:
            out[name] = v
    return out


def training_settings(config: dict) -> dict[str, object]:
    """The flattened settings of ``config`` that decide the trained weights."""
    flat = _flatten({k: config[k] for k in TRAINING_SECTIONS if k in config})
    return {k: v for k, v in flat.items() if not k.startswith(NOT_TRAINING)}


@dataclass
class Twin:
    key: tuple[str, ...]  # (sampler, model, fine-tuning mode)
    seed: int | None
    archived: RunValues
    retrained: RunValues
    one_sided: list[str]  # training settings only one of the two configs records


@dataclass
class TwinRow:
    key: tuple[str, ...]  # the retrained run's row
    column: str  # dataset|label
    seeds: list[int]
    archived: Cell
    retrained: Cell
    diff: Cell  # mean of retrained - archived over the paired seeds, 95% t-interval
    sd_diff: float | None
    sd_independent: float | None  # sqrt(2) x the archived row's seed SD (pooled within its blocks)
    unpaired: float | None = None  # archived: other seeds in the retrained block - the paired seeds


@dataclass
class Twins:
    pairs: list[Twin]
    rows: list[TwinRow]
    unmatched: list[RunValues] = field(default_factory=list)  # retrained runs without an archived twin
    labels: dict[str, str] = field(default_factory=dict)  # block -> B1, B2, ...


def _base(rv: RunValues) -> tuple[str, ...]:
    return rv.key[:3]


def _row_names(rv: RunValues, key_names: list[str]) -> dict[str, str]:
    """A run's row as key name -> value, without the columns it takes the default in."""
    return {k: v for k, v in zip(key_names, rv.key) if v != "default"}


def _check_settings(new: RunValues, old: RunValues) -> list[str]:
    a, b = training_settings(new.config), training_settings(old.config)
    differ = [k for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    if differ:
        k = differ[0]
        raise InputError(
            f"{new.path} and {old.path} are not twins: {k} is {a[k]!r} in the first and {b[k]!r} in the second "
            f"({len(differ)} training setting(s) differ); retrain with the archived cell's config"
        )
    return sorted(set(a) ^ set(b))


def match_twins(retrained: Report, archived: Report) -> tuple[list[Twin], list[RunValues]]:
    """Each retrained run with the archived run of the same row (every row column, e.g. a merged row's
    ``merge``, equal) and seed; refused when their training settings differ."""
    by_cell: dict[tuple, list[RunValues]] = {}
    for rv in archived.runs:
        by_cell.setdefault((tuple(sorted(_row_names(rv, archived.key_names).items())), rv.seed), []).append(
            rv
        )
    twins, unmatched = [], []
    for new in sorted(retrained.runs, key=lambda r: (_base(r), r.seed if r.seed is not None else -1)):
        row = tuple(sorted(_row_names(new, retrained.key_names).items()))
        olds = [] if new.seed is None else by_cell.get((row, new.seed), [])
        same = [old for old in olds if training_settings(old.config) == training_settings(new.config)]
        candidates = same or olds
        if not candidates:
            unmatched.append(new)
            continue
        if len(candidates) > 1:
            paths = ", ".join(str(o.path) for o in candidates)
            raise InputError(f"{new.path} has {len(candidates)} archived twins ({paths}): keep one")
        twins.append(Twin(_base(new), new.seed, candidates[0], new, _check_settings(new, candidates[0])))
    return twins, unmatched


def _sd(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _within_block_sd(runs: list[RunValues], col: str) -> float | None:
    """The seed SD of a row pooled within its blocks (a block effect is not seed noise)."""
    by_block: dict[str, list[float]] = {}
    for rv in runs:
        by_block.setdefault(rv.block, []).append(rv.values[col])
    groups = [v for v in by_block.values() if len(v) >= 2]
    dof = sum(len(v) - 1 for v in groups)
    if not dof:
        return None
    return math.sqrt(sum((len(v) - 1) * _sd(v) ** 2 for v in groups) / dof)


def twin_rows(twins: list[Twin], archived: Report) -> list[TwinRow]:
    """Per row and clean metric column: the paired difference and its context."""
    rows = []
    for key in sorted({t.retrained.key for t in twins}):
        group = [t for t in twins if t.retrained.key == key]
        new_block = {t.retrained.block for t in group}
        paired_seeds = {t.seed for t in group}
        twin_row = group[0].archived.key
        row_runs = [rv for rv in archived.runs if rv.key == twin_row]
        columns = sorted(
            {
                c
                for t in group
                for c in t.retrained.values
                if c in t.archived.values and not is_variant(c.split("|")[0])
            }
        )
        for col in columns:
            both = [t for t in group if col in t.retrained.values and col in t.archived.values]
            old = [t.archived.values[col] for t in both]
            new = [t.retrained.values[col] for t in both]
            diffs = [b - a for a, b in zip(old, new)]
            sd_old = _within_block_sd([rv for rv in row_runs if col in rv.values], col)
            others = [
                rv.values[col]
                for rv in row_runs
                if col in rv.values
                and rv.seed not in paired_seeds
                and len(new_block) == 1
                and rv.block in new_block
            ]
            unpaired = sum(others) / len(others) - sum(old) / len(old) if len(others) >= 2 else None
            rows.append(
                TwinRow(
                    key,
                    col,
                    [t.seed for t in both],
                    mean_ci(old),
                    mean_ci(new),
                    mean_ci(diffs),
                    _sd(diffs),
                    None if sd_old is None else math.sqrt(2) * sd_old,
                    unpaired,
                )
            )
    return rows


def twins(retrained: Report, archived: Report) -> Twins:
    pairs, unmatched = match_twins(retrained, archived)
    if not pairs:
        raise InputError(
            "no retrained run has an archived twin (same sampler, model, fine-tuning mode and seed): "
            "pass the folder the retrained cells copy (e.g. --twins results/decisive)"
        )
    labels = block_labels([t.archived for t in pairs] + [t.retrained for t in pairs])
    return Twins(pairs, twin_rows(pairs, archived), unmatched, labels)


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.4f}" if signed else f"{v:.4f}"


def _interval(c: Cell) -> str:
    if c.half_width is None:
        return _fmt(c.mean, signed=True)
    return f"{c.mean:+.4f} [{c.mean - c.half_width:+.4f}, {c.mean + c.half_width:+.4f}]"


def _blocks(runs: list[RunValues], labels: dict[str, str]) -> str:
    commits = sorted(
        {
            str((r.provenance or {}).get("git_commit") or "?")[:7]
            + (" reconstructed" if (r.provenance or {}).get("source") == "reconstructed" else "")
            for r in runs
        }
    )
    blocks = sorted({labels.get(r.block, r.block) for r in runs})
    return f"{', '.join(blocks)} (commit {', '.join(commits)})"


def twins_markdown(t: Twins) -> str:
    lines = [
        "| row | metric | seeds | archived | retrained | retrained - archived [95% CI over seeds] "
        "| SD of differences | sqrt(2) x seed SD | unpaired, same blocks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in t.rows:
        lines.append(
            f"| {' / '.join(v for v in r.key if v != 'default')} | {r.column.replace('|', ' ')} | {','.join(map(str, r.seeds))} "
            f"| {_fmt(r.archived.mean)} | {_fmt(r.retrained.mean)} | {_interval(r.diff)} "
            f"| {_fmt(r.sd_diff)} | {_fmt(r.sd_independent)} | {_fmt(r.unpaired, signed=True)} |"
        )
    lines += [
        "",
        "Blocks: " + "; ".join(f"{v} = {k}" for k, v in sorted(t.labels.items(), key=lambda kv: kv[1])),
    ]
    lines.append(f"Archived: {_blocks([p.archived for p in t.pairs], t.labels)}.")
    lines.append(f"Retrained: {_blocks([p.retrained for p in t.pairs], t.labels)}.")
    one_sided = sorted({k for p in t.pairs for k in p.one_sided})
    if one_sided:
        lines.append(
            f"Training settings recorded on one side only (added to the code since): {', '.join(one_sided)}."
        )
    if t.unmatched:
        names = ", ".join(f"{' / '.join(rv.key[:3])} seed {rv.seed}" for rv in t.unmatched)
        lines.append(f"Without an archived twin (not in the table): {names}.")
    lines.append(
        "A SD of differences near sqrt(2) x seed SD: the same seed on the other block behaves as a new seed "
        "(the pairing removes no seed noise). The unpaired column: archived seeds of the row in the retrained "
        "block minus the paired archived seeds (the estimate before twins)."
    )
    return "\n".join(lines) + "\n"


def write_twins(t: Twins, out: Path) -> None:
    (out / "twins.md").write_text(twins_markdown(t))
    with (out / "twins.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["row", "metric", "seeds", "archived", "retrained", "diff", "ci95_half_width"]
            + ["sd_diff", "sd_independent", "unpaired_same_block"]
        )
        for r in t.rows:
            w.writerow(
                ["/".join(r.key), r.column, " ".join(map(str, r.seeds)), r.archived.mean, r.retrained.mean]
                + [r.diff.mean, r.diff.half_width, r.sd_diff, r.sd_independent, r.unpaired]
            )
