"""The ``poison`` table and transfer figure of ``report.py``: runs evaluated with ``eval.poison``.

Per row (recipe, seeds pooled) and attacker language: the share of evaluated questions with an adversarial
passage in the top 1 / 10 / 20 of their own language's pool (mono) and in the top 20 of every language's pool
(multi), the attacker similarity at the first and last step, and the gain of mono success@20 over the last
interval of the success curve (near 0: the attack had flattened at its budget; large: a lower bound).

With ``--baseline`` (``sampler=xx``), each row's success@20 is compared with its baseline row's: the difference
with the two-level interval of ``mdr.report.bootstrap`` (seeds within each row x question clusters jointly, a
question with all its language versions; every model is measured on the same evaluated questions, drawn from
the split seed alone). Poisoning has no declared family: the table gives intervals and directions, never a
verdict. ``poison_transfer.png``: the transfer matrix (attacker language x query language, mono success@20) per
row, averaged over its seeds.

Runs pool into one row only when their attack settings agree (``attack_budget``): a 60-step and a 250-step
attack on the same recipe are two rows, each compared with the baseline row of its own budget.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mdr.eval.outputs.per_query import load_per_query
from mdr.report.bootstrap import bootstrap_diff, cluster_sums
from mdr.report.collect import Report, RunValues
from mdr.report.stats import Cell, mean_ci
from mdr.runtime.errors import InputError
from mdr.runtime.markdown import markdown_table

POISON_KIND = "poison"
POOLS = ("mono", "multi")
COLUMNS = (("mono", 1), ("mono", 10), ("mono", 20), ("multi", 20))
COMPARED = (("mono", 20), ("multi", 20))
# settings that do not make another experiment: attacker languages are rows of their own, curve_every only
# samples the success curve
NOT_BUDGET = ("attacker_langs", "curve_every")


@dataclass
class PoisonRow:
    key: tuple[str, ...]
    dataset: str
    attacker: str
    seeds: list
    success: dict[tuple[str, int], Cell]  # (pool, k) -> share of evaluated questions, over seeds
    similarity: tuple[Cell, Cell]  # attacker similarity at the first and the last curve point
    last_gain: Cell | None  # mono success@20: last curve point - the one before
    steps: int
    transfer: dict[str, float]  # query language -> mono success@20, mean over seeds
    p_at_1: tuple[Cell, Cell] | None = None  # the gold answers' mono P@1, clean and poisoned
    diffs: dict[tuple[str, int], tuple[float, tuple[float, float]]] = field(default_factory=dict)
    baseline: tuple[str, ...] | None = None
    budget: tuple[tuple[str, str], ...] = ()


def poison_entries(datasets: dict) -> dict[str, dict]:
    return {ds: e for ds, e in datasets.items() if e.get("kind") == POISON_KIND}


def attack_budget(entry: dict) -> tuple[tuple[str, str], ...]:
    """The poisoning settings two runs must share to be seeds of one row (steps, passages, length, ...)."""
    settings = entry.get("settings", {})
    return tuple(sorted((k, json.dumps(v)) for k, v in settings.items() if k not in NOT_BUDGET))


def _steps(budget: tuple) -> int:
    return int(json.loads(dict(budget).get("steps", "0")))


def _other_settings(rows: list[PoisonRow]) -> list[str]:
    """Budget settings besides ``steps`` that differ between the rows: the table names them."""
    names = sorted({k for row in rows for k, _ in row.budget} - {"steps"})
    return [k for k in names if len({dict(row.budget).get(k) for row in rows}) > 1]


def _runs(r: Report, key: tuple, ds: str, budget: tuple) -> list[RunValues]:
    runs = (rv for rv in r.runs if rv.key == key and ds in rv.datasets)
    return sorted(
        (rv for rv in runs if attack_budget(rv.datasets[ds]) == budget), key=lambda rv: str(rv.seed)
    )


def _cell(values: list[float]) -> Cell:
    return mean_ci([float(v) for v in values])


def _row(key: tuple, ds: str, attacker: str, runs: list[RunValues], budget: tuple) -> PoisonRow:
    per = [rv.datasets[ds]["attacker_langs"][attacker] for rv in runs]
    success = {(p, k): _cell([e["success"][p][f"success@{k}"] for e in per]) for p, k in COLUMNS}
    curves = [e["curve"] for e in per]
    gains = [c[-1]["mono_success@20"] - c[-2]["mono_success@20"] for c in curves if len(c) >= 2]
    langs = sorted({x for e in per for x in e["transfer"]["mono"]})
    return PoisonRow(
        key,
        ds,
        attacker,
        [rv.seed for rv in runs],
        success,
        (_cell([c[0]["similarity"] for c in curves]), _cell([c[-1]["similarity"] for c in curves])),
        _cell(gains) if gains else None,
        int(max(c[-1]["step"] for c in curves)),
        {x: float(np.mean([e["transfer"]["mono"][x] for e in per])) for x in langs},
        _p_at_1(runs, ds, attacker),
        budget=budget,
    )


def _p_at_1(runs: list[RunValues], ds: str, attacker: str) -> tuple[Cell, Cell] | None:
    entries = [rv.datasets[ds] for rv in runs]
    if not all("clean" in e and "poisoned" in e["attacker_langs"][attacker] for e in entries):
        return None
    clean = _cell([e["clean"]["mono"]["p@1"] for e in entries])
    return clean, _cell([e["attacker_langs"][attacker]["poisoned"]["mono"]["p@1"] for e in entries])


def _k_index(entry: dict, attacker: str, pool: str, k: int) -> int:
    ks = sorted(int(name.split("@")[1]) for name in entry["attacker_langs"][attacker]["success"][pool])
    return ks.index(k)


def per_seed_sums(runs: list[RunValues], ds: str, attacker: str, pool: str, k: int):
    """(question ids, a (seeds, questions) matrix): each run's success@k summed per question, divided by the
    number of evaluated queries, so a row of the matrix sums to the run's success@k."""
    base = ds.split("~", 1)[0]
    ids, sums = None, []
    for rv in runs:
        arrays = load_per_query(rv.path, ds)
        uids = load_per_query(rv.path, base)["query_uids"]
        hits = arrays[f"{attacker}/{pool}/success"][:, _k_index(rv.datasets[ds], attacker, pool, k)]
        keys = uids[arrays["rows"]]
        got_ids, s = cluster_sums(keys, hits.astype(float) / len(hits), lambda u: u.split(":", 1)[1])
        if ids is not None and not np.array_equal(ids, got_ids):
            raise InputError(
                f"{rv.path}: its evaluated questions differ from {runs[0].path}'s (another split_seed or "
                "attacker_share?); poisoning rows compare only on the same questions"
            )
        ids = got_ids
        sums.append(s[0])
    return ids, np.array(sums)


def poison_rows(r: Report, baseline: dict | None = None) -> list[PoisonRow]:
    """Every (row, poisoned set, attacker language), with its differences to its baseline row."""
    found = sorted(
        {(rv.key, ds, attack_budget(e)) for rv in r.runs for ds, e in poison_entries(rv.datasets).items()},
        key=lambda f: (f[0], f[1], _steps(f[2]), f[2]),
    )
    rows = []
    for key, ds, budget in found:
        runs = _runs(r, key, ds, budget)
        for attacker in sorted({a for rv in runs for a in rv.datasets[ds]["attacker_langs"]}):
            have = [rv for rv in runs if attacker in rv.datasets[ds]["attacker_langs"]]
            rows.append(_row(key, ds, attacker, have, budget))
    if baseline:
        for row in rows:
            base = baseline.get(row.key)
            if base is None or base == row.key:
                continue
            other = [
                rv
                for rv in _runs(r, base, row.dataset, row.budget)
                if row.attacker in rv.datasets[row.dataset]["attacker_langs"]
            ]
            if not other:
                continue
            mine = [
                rv
                for rv in _runs(r, row.key, row.dataset, row.budget)
                if row.attacker in rv.datasets[row.dataset]["attacker_langs"]
            ]
            row.baseline = base
            for pool, k in COMPARED:
                ids_a, a = per_seed_sums(mine, row.dataset, row.attacker, pool, k)
                ids_b, b = per_seed_sums(other, row.dataset, row.attacker, pool, k)
                if not np.array_equal(ids_a, ids_b):
                    raise InputError(
                        f"{mine[0].path} and {other[0].path} were measured on different questions; "
                        "poisoning rows compare only on the same split"
                    )
                result = bootstrap_diff(a, b)
                row.diffs[(pool, k)] = (result.diff, result.ci)
    return rows


def _fmt(c: Cell | None, digits: int = 3) -> str:
    if c is None:
        return "-"
    if c.half_width is None:
        return f"{c.mean:.{digits}f}"
    return f"{c.mean:.{digits}f} ± {c.half_width:.{digits}f}"


def _diff(d: tuple[float, tuple[float, float]] | None) -> str:
    if d is None:
        return "-"
    diff, (lo, hi) = d
    return f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def poison_markdown(rows: list[PoisonRow], key_names: list[str]) -> str:
    compared = any(row.diffs for row in rows)
    other = _other_settings(rows)
    header = [*key_names, "dataset", "passages optimised on", "seeds", "steps", *other]
    header += ["similarity first -> last"]
    header += [f"{p} success@{k}" for p, k in COLUMNS] + ["mono success@20 gain, last curve interval"]
    header += ["mono P@1 clean -> poisoned"]
    if compared:
        header += [f"{p} success@{k} - baseline [95% CI]" for p, k in COMPARED]
    lines = []
    for row in rows:
        line = [*row.key, row.dataset, row.attacker, len(row.seeds), row.steps]
        line += [dict(row.budget).get(k, "-") for k in other]
        line.append(f"{row.similarity[0].mean:.3f} -> {row.similarity[1].mean:.3f}")
        line += [_fmt(row.success[c]) for c in COLUMNS] + [_fmt(row.last_gain)]
        clean_poisoned = row.p_at_1 and f"{_fmt(row.p_at_1[0], 4)} -> {_fmt(row.p_at_1[1], 4)}"
        line.append(clean_poisoned or "-")
        if compared:
            line += [_diff(row.diffs.get(c)) for c in COMPARED]
        lines.append([str(x) for x in line])
    notes = [
        "",
        "Cells: mean ± the half-width of a 95% t-interval over seeds (one seed: the value). Success@k: the share "
        "of evaluated questions (disjoint from the attacker's, every language version) with an adversarial "
        "passage in the top k. A gain near 0 over the last curve interval: the attack had flattened at its budget.",
    ]
    if compared:
        named = sorted({" / ".join(r.baseline) for r in rows if r.baseline})
        notes.append(
            f"Baseline row: {', '.join(named)}. Difference: two-level interval (seeds within each row x question "
            "clusters), exploratory: no family was declared for poisoning, so no verdict."
        )
    return markdown_table(header, lines) + "\n" + "\n".join(notes) + "\n"


def write_poison_csv(rows: list[PoisonRow], key_names: list[str], path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*key_names, "dataset", "attacker", "seeds", "steps", "settings", "pool", "k", "mean"]
                   + ["ci95_half_width", "diff_vs_baseline", "ci_low", "ci_high"])  # fmt: skip
        for row in rows:
            for pool, k in COLUMNS:
                c = row.success[(pool, k)]
                d = row.diffs.get((pool, k))
                diff = [d[0], *d[1]] if d else ["", "", ""]
                w.writerow(
                    [*row.key, row.dataset, row.attacker, " ".join(map(str, row.seeds)), row.steps]
                    + [json.dumps(dict(row.budget)), pool, k, c.mean, c.half_width, *diff]
                )


def plot_poison_transfer(rows: list[PoisonRow], label, path: Path) -> None:
    """One heatmap per recipe and budget: attacker language x query language, mono success@20 averaged over
    seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys((row.key, row.dataset, row.budget) for row in rows))
    langs = sorted({x for row in rows for x in row.transfer})
    fig, axes = plt.subplots(
        len(keys), 1, figsize=(0.55 * len(langs) + 2.5, 1.3 * len(keys) + 1.2), squeeze=False
    )
    for ax, (key, ds, budget) in zip(axes[:, 0], keys):
        mine = [row for row in rows if (row.key, row.dataset, row.budget) == (key, ds, budget)]
        grid = np.array([[row.transfer.get(x, np.nan) for x in langs] for row in mine])
        ax.imshow(grid, vmin=0, vmax=max(0.5, float(np.nanmax(grid))), cmap="Reds", aspect="auto")
        ax.set_xticks(range(len(langs)), langs)
        ax.set_yticks(range(len(mine)), [row.attacker for row in mine])
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
        title = f"{label(key)}, {mine[0].steps} steps ({len(mine[0].seeds)} seed(s)): mono success@20"
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("optimised on")
    axes[-1, 0].set_xlabel("query language")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
