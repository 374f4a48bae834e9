"""The ``adversarial`` table and figure of ``report.py``: runs evaluated with ``eval.attack``.

Per row (sampler x model x finetune, seeds pooled) and setting: clean P@1 of the attacked sample, P@1 under
the greedy attack and under random edits at each budget, the greedy success rate, mean edits to success
and mAP at the largest budget. With ``--baseline``, each row's per-query P@1 under the greedy attack at
each budget is tested against the baseline row's on the same (query, setting) targets: the attacked sample
is drawn from the attack's seed, not the model, so every model is attacked on the same queries. Each row's
per-target values are averaged over its own runs (training seeds; the untrained backbone has one run), and
the test is the paired randomization test of ``significance`` over targets, Holm-corrected over all rows,
settings and budgets of the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdr.report.collect import Report
from mdr.report.significance import SIGNIFICANCE_LEVEL, holm, paired_randomization_test
from mdr.report.stats import Cell, mean_ci
from mdr.runtime.markdown import markdown_table

ATTACK_KIND = "attack"
PER_QUERY = "per_query.npz"
SETTINGS = ("mono", "cross", "multi")


@dataclass
class AttackTable:
    """Row key -> dataset -> setting -> column -> Cell; budgets; significance per (row, ds, setting, k)."""

    rows: dict[tuple, dict[str, dict[str, dict[str, Cell]]]]
    budgets: list[int]
    tests: dict[tuple, tuple[float, float, float]]  # (row, ds, setting, k) -> (diff, p, p_holm)
    subset: str | None = None


def attack_entries(datasets: dict) -> dict[str, dict]:
    return {ds: e for ds, e in datasets.items() if e.get("kind") == ATTACK_KIND}


def adversarial(r: Report, baseline: dict | None = None, permutations: int = 10_000) -> AttackTable | None:
    """``baseline``: row key -> the baseline row it is tested against (``significance.baseline_rows``)."""
    group = r.subset or "all"
    pooled: dict[tuple, dict] = {}
    budgets: set[int] = set()
    for rv in r.runs:
        for ds, e in attack_entries(rv.datasets).items():
            budgets.update(int(k) for k in e["attack"]["budgets"])
            for setting, row in (e["attack_summary"].get(group) or {}).items():
                cols = pooled.setdefault(rv.key, {}).setdefault(ds, {}).setdefault(setting, {})
                for name, v in _columns(row).items():
                    if v is not None:
                        cols.setdefault(name, []).append(v)
    if not pooled:
        return None
    rows = {
        key: {
            ds: {s: {c: mean_ci(v) for c, v in cols.items()} for s, cols in by.items()}
            for ds, by in d.items()
        }
        for key, d in sorted(pooled.items())
    }
    table = AttackTable(rows, sorted(budgets), {}, r.subset)
    if baseline is not None:
        table.tests = _tests(r, baseline, table, permutations)
    return table


def _columns(row: dict) -> dict[str, float | None]:
    out = {"clean P@1": row["clean"]["p@1"]}
    for method, label in (("greedy", "P@1"), ("random", "random P@1")):
        for k, cell in row.get(method, {}).items():
            out[f"{label} k={k}"] = cell["p@1"]
            if method == "greedy":
                out[f"success k={k}"] = cell["success_rate"]
                out[f"mAP k={k}"] = cell["map"]
                out[f"MRR@5 k={k}"] = cell["mrr@5"]
                out[f"edits k={k}"] = cell.get("mean_edits_to_success")
            else:
                out[f"random success k={k}"] = cell["success_rate"]
    return out


def _per_target(run: Path, ds: str, k: int, group: str, seen: list | None) -> dict[tuple[str, str], float]:
    """(query uid, setting) -> P@1 under the greedy attack with budget ``k``."""
    path = run / "eval" / ds / PER_QUERY
    if not path.exists():
        return {}
    with np.load(path) as f:
        if f"greedy/k{k}/p@1" not in f:
            return {}
        uids, settings, pools = f["uids"], f["settings"], f["pools"]
        values = f[f"greedy/k{k}/p@1"]
    keep = np.ones(len(uids), dtype=bool)
    if group != "all" and seen is not None:
        seen_set = set(seen)
        is_seen = np.array(
            [u.split(":", 1)[0] in seen_set and p in seen_set | {"all"} for u, p in zip(uids, pools)]
        )
        keep = is_seen if group == "seen" else ~is_seen
    return {(str(u), str(s)): float(v) for u, s, v, k_ in zip(uids, settings, values, keep) if k_}


def _seed_mean(r: Report, key: tuple, ds: str, k: int, seeds: list) -> dict[tuple[str, str], float]:
    group = r.subset or "all"
    sums: dict[tuple[str, str], list[float]] = {}
    for rv in r.runs:
        if rv.key == key and rv.seed in seeds and ds in rv.datasets:
            seen = rv.datasets[ds].get("seen_languages")
            for unit, v in _per_target(rv.path, ds, k, group, seen).items():
                sums.setdefault(unit, []).append(v)
    return {u: float(np.mean(v)) for u, v in sums.items() if len(v) == len(seeds)}


def _tests(r: Report, baselines: dict, table: AttackTable, permutations: int) -> dict:
    raw: dict[tuple, tuple[float, float]] = {}
    for key, by_ds in table.rows.items():
        baseline = baselines.get(key)
        if baseline is None:
            continue
        for ds, by_setting in by_ds.items():
            if ds not in table.rows.get(baseline, {}):
                continue
            seeds_a = sorted({rv.seed for rv in r.runs if rv.key == key and ds in rv.datasets}, key=str)
            seeds_b = sorted({rv.seed for rv in r.runs if rv.key == baseline and ds in rv.datasets}, key=str)
            for k in table.budgets:
                a, b = _seed_mean(r, key, ds, k, seeds_a), _seed_mean(r, baseline, ds, k, seeds_b)
                for setting in by_setting:
                    units = sorted(u for u in a.keys() & b.keys() if u[1] == setting)
                    if not units:
                        continue
                    x = np.array([a[u] for u in units])
                    y = np.array([b[u] for u in units])
                    raw[(key, ds, setting, k)] = (
                        float(x.mean() - y.mean()),
                        paired_randomization_test(x, y, permutations),
                    )
    adjusted = holm([p for _, p in raw.values()])
    return {t: (d, p, ph) for (t, (d, p)), ph in zip(raw.items(), adjusted)}


def _fmt(c: Cell | None, digits: int = 3) -> str:
    return "-" if c is None else f"{c.mean:.{digits}f}"


def adversarial_markdown(t: AttackTable, key_names: list[str], baseline: dict | None = None) -> str:
    ks = t.budgets
    kmax = max(ks)
    head = [
        *key_names,
        "attack set",
        "setting",
        "seeds",
        "clean P@1",
        *(f"P@1 k={k}" for k in ks),
        *(f"random P@1 k={k}" for k in ks),
        *(f"success k={k}" for k in ks),
        f"edits to success (k={kmax})",
        f"mAP k={kmax}",
        f"MRR@5 k={kmax}",
    ]
    group = t.subset or "all languages"
    lines = [
        f"Greedy query attack ({group}): P@1 of the attacked sample under k edits, random edits of the same "
        "size, and the share of clean-correct queries whose gold answer left the top 1 (mean over seeds)",
        "",
    ]
    rows = []
    for key, by_ds in t.rows.items():
        for ds, by_setting in by_ds.items():
            for setting in SETTINGS:
                cells = by_setting.get(setting)
                if cells is None:
                    continue
                n = cells["clean P@1"].n

                tested = [t.tests.get((key, ds, setting, k)) for k in ks]
                marks = ["†" if x and x[2] < SIGNIFICANCE_LEVEL else "" for x in tested]

                rows.append(
                    [
                        *key,
                        ds,  # the attack set: one run may hold several (xquad_r~attack, xquad_r~attack_chars)
                        setting,
                        str(n),
                        _fmt(cells.get("clean P@1")),
                        *(_fmt(cells.get(f"P@1 k={k}")) + m for k, m in zip(ks, marks)),
                        *(_fmt(cells.get(f"random P@1 k={k}")) for k in ks),
                        *(_fmt(cells.get(f"success k={k}")) for k in ks),
                        _fmt(cells.get(f"edits k={kmax}"), 2),
                        _fmt(cells.get(f"mAP k={kmax}")),
                        _fmt(cells.get(f"MRR@5 k={kmax}")),
                    ]
                )
    lines.append(markdown_table(head, rows))
    if baseline and t.tests:
        against = " or ".join(" / ".join(b) for b in sorted(set(baseline.values())))
        lines += [
            "",
            f"† P@1 under the greedy attack differs from the {against} row's on the same attacked "
            f"(query, setting) targets: paired randomization test, Holm-corrected over the {len(t.tests)} "
            f"comparisons of this table, p < {SIGNIFICANCE_LEVEL}.",
        ]
    return "\n".join(lines) + "\n"


def adversarial_csv_rows(t: AttackTable) -> list[list]:
    out = []
    for key, by_ds in t.rows.items():
        for ds, by_setting in by_ds.items():
            for setting, cells in by_setting.items():
                for col, c in cells.items():
                    k = col.rsplit("k=", 1)[-1] if "k=" in col else ""
                    test = t.tests.get((key, ds, setting, int(k))) if k and col.startswith("P@1") else None
                    out.append(
                        [
                            *key,
                            ds,
                            setting,
                            col,
                            c.mean,
                            "" if c.half_width is None else c.half_width,
                            c.n,
                            *(test or ("", "", "")),
                        ]
                    )
    return out


def plot_adversarial(t: AttackTable, path: Path, key_label) -> None:
    """P@1 under attack against the budget k: one panel per setting, a line per row (dashed: random edits)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = [s for s in SETTINGS if any(s in by for d in t.rows.values() for by in d.values())]
    fig, axes = plt.subplots(1, len(settings), figsize=(4 * len(settings), 3.6), squeeze=False)
    ks = [0, *[k for k in t.budgets if k > 0]]
    for ax, setting in zip(axes[0], settings):
        several = len({ds for by_ds in t.rows.values() for ds in by_ds}) > 1
        for i, (key, by_ds) in enumerate(t.rows.items()):
            for j, (ds, by_setting) in enumerate(by_ds.items()):
                cells = by_setting.get(setting)
                if not cells:
                    continue
                color = f"C{i % 10}"
                label = key_label(key) + (f", {ds.split('~', 1)[1]}" if several else "")
                marker = "os^vD"[j % 5]
                for prefix, style, suffix in (("P@1", "-", ""), ("random P@1", "--", " (random)")):
                    ys = [
                        cells["clean P@1"].mean if k == 0 else cells[f"{prefix} k={k}"].mean
                        for k in ks
                        if k == 0 or f"{prefix} k={k}" in cells
                    ]
                    xs = [k for k in ks if k == 0 or f"{prefix} k={k}" in cells]
                    ax.plot(xs, ys, style, marker=marker, color=color, label=label + suffix)
        ax.set_xlabel("edits per query (k)")
        ax.set_ylabel("P@1 under attack")
        ax.set_title(setting, fontsize=10)
        ax.set_xticks(ks)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
