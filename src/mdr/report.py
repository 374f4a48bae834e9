"""Collect a sweep's run folders into a paper-style results table.

A run folder is any folder with ``.hydra/config.yaml``. A complete run has ``metrics.json`` (written
last and atomically); a run with ``FAILED`` is listed with its reason; a run with neither (killed, still
running) is listed as incomplete. Failed and incomplete runs are never read into the table.

Rows = sampler x model x finetune (seeds pooled); per LAReQA dataset the columns are mono / cross / multi
mAP, P@1 and MRR@5 of the cross-lingual settings, and the rank distance; cells are mean +- the half-width
of a 95% t-interval over seeds. The best mean of each column is marked (lowest for rank distance).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SAMPLERS = {"XXSampler": "xx", "XYSampler": "xy", "HybridSampler": "hybrid", "MixedSampler": "mixed"}
# (column label, path into a dataset's summary, higher is better)
COLUMNS = [
    ("mono mAP", ("mono", "map"), True),
    ("cross mAP", ("cross", "map"), True),
    ("multi mAP", ("multi", "map"), True),
    ("P@1 (X->Y)", ("cross", "p@1"), True),
    ("MRR@5 (X->Y)", ("cross", "mrr@5"), True),
    ("rank dist", ("multi", "rank_distance"), False),
]


@dataclass
class Cell:
    mean: float
    half_width: float | None  # None with one seed
    n: int


@dataclass
class Report:
    rows: dict[tuple[str, str, str], dict[str, Cell]] = field(default_factory=dict)
    columns: list[tuple[str, str, bool]] = field(default_factory=list)  # (dataset, label, higher is better)
    best: dict[tuple[str, str], tuple[str, str, str]] = field(default_factory=dict)
    complete: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    incomplete: list[Path] = field(default_factory=list)


def t_quantile_975(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def mean_ci(values: list[float]) -> Cell:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Cell(mean, None, n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Cell(mean, t_quantile_975(n - 1) * sd / math.sqrt(n), n)


def row_key(config: dict) -> tuple[str, str, str]:
    sampler = config.get("sampler", {}).get("_target_", "?").rsplit(".", 1)[-1]
    sampler = SAMPLERS.get(sampler, sampler)
    alpha = config.get("sampler", {}).get("alpha")
    if sampler == "hybrid" and alpha is not None and float(alpha) != 0.5:
        sampler = f"hybrid a={alpha}"
    return (
        sampler,
        str(config.get("model", {}).get("name", "?")),
        str(config.get("finetune", {}).get("mode", "?")),
    )


def collect(root: str | Path) -> Report:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: pass a multirun/<date>/<time> folder or outputs/")
    report = Report()
    values: dict[tuple, dict[tuple[str, str], list[float]]] = {}
    runs = sorted(p.parent.parent for p in root.rglob(".hydra/config.yaml"))
    if not runs:
        raise FileNotFoundError(f"no run folders (with .hydra/config.yaml) under {root}")
    for run in runs:
        if (run / "FAILED").exists():
            report.failed.append((run, (run / "FAILED").read_text().strip()))
            continue
        if not (run / "metrics.json").exists():
            report.incomplete.append(run)
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        config = metrics.get("config") or yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
        key = row_key(config)
        report.complete.append(run)
        for ds, d in sorted(metrics.get("datasets", {}).items()):
            if "summary" not in d:
                continue
            for label, (kind, metric), _ in COLUMNS:
                v = d["summary"].get(kind, {}).get(metric)
                if v is not None:
                    values.setdefault(key, {}).setdefault((ds, label), []).append(float(v))
    datasets = sorted({ds for cols in values.values() for ds, _ in cols})
    report.columns = [(ds, label, higher) for ds in datasets for label, _, higher in COLUMNS]
    for key in sorted(values):
        report.rows[key] = {f"{ds}|{label}": mean_ci(v) for (ds, label), v in values[key].items()}
    for ds, label, higher in report.columns:
        col = f"{ds}|{label}"
        cands = [(cells[col].mean, key) for key, cells in report.rows.items() if col in cells]
        if cands:
            report.best[(ds, label)] = (max if higher else min)(cands)[1]
    return report


def _cell(c: Cell | None, digits: int) -> str:
    if c is None:
        return "-"
    s = f"{c.mean:.{digits}f}"
    return s if c.half_width is None else f"{s} ± {c.half_width:.{digits}f}"


def _digits(label: str) -> int:
    return 1 if label == "rank dist" else 4


def to_markdown(r: Report) -> str:
    head = ["sampler", "model", "finetune", "seeds"] + [f"{ds} {label}" for ds, label, _ in r.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, cells in r.rows.items():
        n = max((c.n for c in cells.values()), default=0)
        out = []
        for ds, label, _ in r.columns:
            text = _cell(cells.get(f"{ds}|{label}"), _digits(label))
            out.append(f"**{text}**" if r.best.get((ds, label)) == key else text)
        lines.append("| " + " | ".join([*key, str(n), *out]) + " |")
    lines += [
        "",
        "Mean ± half-width of the 95% t-interval over seeds; **bold**: best mean in the column "
        "(lowest rank distance).",
        f"Complete runs: {len(r.complete)}.",
    ]
    if r.failed:
        lines += ["", f"Failed runs ({len(r.failed)}), not in the table:"]
        lines += [f"- `{p}`: {reason}" for p, reason in r.failed]
    if r.incomplete:
        lines += [
            "",
            f"Incomplete runs ({len(r.incomplete)}: no metrics.json, killed or still running), not in the table:",
        ]
        lines += [f"- `{p}`" for p in r.incomplete]
    return "\n".join(lines) + "\n"


def to_latex(r: Report) -> str:
    cols = "lll" + "c" * (1 + len(r.columns))
    head = ["sampler", "model", "finetune", "seeds"] + [f"{ds} {label}" for ds, label, _ in r.columns]
    esc = lambda s: s.replace("_", r"\_").replace("->", r"$\to$").replace("#", r"\#")  # noqa: E731
    lines = [
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(esc(h) for h in head) + r" \\",
        r"\midrule",
    ]
    for key, cells in r.rows.items():
        n = max((c.n for c in cells.values()), default=0)
        out = []
        for ds, label, _ in r.columns:
            text = _cell(cells.get(f"{ds}|{label}"), _digits(label)).replace("±", r"$\pm$")
            out.append(rf"\textbf{{{text}}}" if r.best.get((ds, label)) == key else text)
        lines.append(" & ".join([*(esc(k) for k in key), str(n), *out]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_csv(r: Report, path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "sampler",
                "model",
                "finetune",
                "dataset",
                "metric",
                "mean",
                "ci95_half_width",
                "n_seeds",
                "best",
            ]
        )
        for key, cells in r.rows.items():
            for ds, label, _ in r.columns:
                c = cells.get(f"{ds}|{label}")
                if c is not None:
                    w.writerow(
                        [
                            *key,
                            ds,
                            label,
                            c.mean,
                            "" if c.half_width is None else c.half_width,
                            c.n,
                            int(r.best.get((ds, label)) == key),
                        ]
                    )


def write_report(root: str | Path, out_dir: str | Path | None = None) -> Report:
    r = collect(root)
    out = Path(out_dir) if out_dir else Path(root)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(to_markdown(r))
    (out / "results.tex").write_text(to_latex(r))
    write_csv(r, out / "results.csv")
    return r
