"""Collect a sweep's run folders into a paper-style results table.

A run folder is any folder with ``.hydra/config.yaml``. A complete run has ``metrics.json`` (written
last and atomically); a run with ``FAILED`` is listed with its reason; a run with neither (killed, still
running) is listed as incomplete. Failed and incomplete runs are never read into the table.

Rows = sampler x model x finetune (seeds pooled), plus one column per other swept override that takes
more than one value in the collection (``sampler.alpha``, ``data``, ``pretrain.enabled``: read from each
run's ``.hydra/overrides.yaml``). Per LAReQA dataset the columns are mono / cross / multi mAP, P@1 and MRR@5
of the cross-lingual settings, and the rank distance; cells are mean +- the half-width of a 95%
t-interval over seeds. The best mean of each column is marked (lowest for rank distance) where a column
has two or more rows.

``subset="unseen"`` (or ``"seen"``) reads the summaries restricted to languages unseen (seen) in training.
Datasets evaluated on perturbed queries (``xquad_r~char_noise@0.1``, from ``eval.perturb``) are kept out
of the main table and reported as mAP drops against their clean dataset (``robustness``).
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


BASE_KEYS = ["sampler", "model", "finetune"]
NOT_A_ROW_KEY = {"seed", "sampler", "model", "finetune", "experiment", "ckpt"}


@dataclass
class RunValues:
    """One complete run: its row key and its metric values (``dataset|label`` -> value)."""

    path: Path
    key: tuple[str, ...]
    config: dict
    values: dict[str, float]


@dataclass
class Report:
    rows: dict[tuple[str, ...], dict[str, Cell]] = field(default_factory=dict)
    key_names: list[str] = field(default_factory=lambda: list(BASE_KEYS))
    columns: list[tuple[str, str, bool]] = field(default_factory=list)  # (dataset, label, higher is better)
    best: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    complete: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    incomplete: list[Path] = field(default_factory=list)
    runs: list[RunValues] = field(default_factory=list)
    subset: str | None = None


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


def sampler_name(config: dict, label_alpha: bool = True) -> str:
    sampler = config.get("sampler", {}).get("_target_", "?").rsplit(".", 1)[-1]
    sampler = SAMPLERS.get(sampler, sampler)
    alpha = config.get("sampler", {}).get("alpha")
    if label_alpha and sampler == "hybrid" and alpha is not None and float(alpha) != 0.5:
        sampler = f"hybrid a={alpha}"
    return sampler


def row_key(config: dict, label_alpha: bool = True) -> tuple[str, str, str]:
    return (
        sampler_name(config, label_alpha),
        str(config.get("model", {}).get("name", "?")),
        str(config.get("finetune", {}).get("mode", "?")),
    )


def read_overrides(run: Path) -> dict[str, str]:
    """The command-line overrides of a run (``key=value``), as Hydra recorded them."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    out = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if not key.startswith("hydra"):
            out[key] = value
    return out


def summary_values(metrics: dict, subset: str | None) -> dict[str, float]:
    """``dataset|label`` -> value for every LAReQA dataset of a run (``subset``: seen / unseen only)."""
    out = {}
    for ds, d in sorted(metrics.get("datasets", {}).items()):
        summary = d.get("summary")
        if summary is None:
            continue
        if subset:
            summary = summary.get(subset) or {}
        for label, (kind, metric), _ in COLUMNS:
            v = (summary.get(kind) or {}).get(metric)
            if v is not None:
                out[f"{ds}|{label}"] = float(v)
    return out


def collect(root: str | Path, subset: str | None = None) -> Report:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: pass a multirun/<date>/<time> folder or outputs/")
    if subset not in (None, "seen", "unseen"):
        raise ValueError(f"subset={subset!r}: choose seen or unseen (or none for all languages)")
    report = Report(subset=subset)
    runs = sorted(p.parent.parent for p in root.rglob(".hydra/config.yaml"))
    if not runs:
        raise FileNotFoundError(f"no run folders (with .hydra/config.yaml) under {root}")
    found = []
    for run in runs:
        if (run / "FAILED").exists():
            report.failed.append((run, (run / "FAILED").read_text().strip()))
            continue
        if not (run / "metrics.json").exists():
            report.incomplete.append(run)
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        config = metrics.get("config") or yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
        config = config.get("trained_with") or config  # eval.py of a training run's checkpoint
        found.append((run, config, read_overrides(run), summary_values(metrics, subset)))
        report.complete.append(run)
    swept: dict[str, set[str]] = {}
    for _, _, overrides, _ in found:
        for k, v in overrides.items():
            if k not in NOT_A_ROW_KEY:
                swept.setdefault(k, set()).add(v)
    extra = sorted(k for k, vs in swept.items() if len(vs) > 1 or any(k not in o for _, _, o, _ in found))
    report.key_names = BASE_KEYS + extra
    for run, config, overrides, values in found:
        key = row_key(config, label_alpha="sampler.alpha" not in extra)
        key += tuple(overrides.get(k, "default") for k in extra)
        report.runs.append(RunValues(run, key, config, values))
    pooled: dict[tuple, dict[str, list[float]]] = {}
    for rv in report.runs:
        for col, v in rv.values.items():
            pooled.setdefault(rv.key, {}).setdefault(col, []).append(v)
    datasets = sorted({col.split("|")[0] for cols in pooled.values() for col in cols} - set())
    clean = [ds for ds in datasets if PERTURBED not in ds]
    report.columns = [(ds, label, higher) for ds in clean for label, _, higher in COLUMNS]
    for key in sorted(pooled):
        report.rows[key] = {col: mean_ci(v) for col, v in pooled[key].items()}
    for ds, label, higher in report.columns:
        col = f"{ds}|{label}"
        cands = [(cells[col].mean, key) for key, cells in report.rows.items() if col in cells]
        if len(cands) > 1:  # a column with one row (e.g. a dataset only one setting evaluates) has no best
            report.best[(ds, label)] = (max if higher else min)(cands)[1]
    return report


PERTURBED = "~"  # xquad_r~char_noise@0.1: a dataset evaluated on perturbed queries


def alpha_curve(r: Report) -> dict[tuple, dict[float, dict[str, Cell]]]:
    """Hybrid runs grouped by (model, finetune, other keys) -> alpha -> column -> mean / CI over seeds."""
    groups: dict[tuple, dict[float, dict[str, list[float]]]] = {}
    for rv in r.runs:
        sampler_cfg = rv.config.get("sampler", {})
        if sampler_name(rv.config, label_alpha=False) != "hybrid" or sampler_cfg.get("alpha") is None:
            continue
        rest = tuple(v for name, v in zip(r.key_names, rv.key) if name not in ("sampler", "sampler.alpha"))
        by_alpha = groups.setdefault(rest, {}).setdefault(float(sampler_cfg["alpha"]), {})
        for col, v in rv.values.items():
            by_alpha.setdefault(col, []).append(v)
    return {
        g: {a: {c: mean_ci(v) for c, v in cols.items()} for a, cols in sorted(by.items())}
        for g, by in groups.items()
        if len(by) > 1
    }


def robustness(r: Report) -> dict[tuple, dict[str, dict[str, Cell]]]:
    """Row -> perturbed dataset -> ``mono/cross/multi mAP`` -> drop (clean minus perturbed), over seeds."""
    out: dict[tuple, dict[str, dict[str, list[float]]]] = {}
    for rv in r.runs:
        for col, v in rv.values.items():
            ds, label = col.split("|")
            if PERTURBED not in ds or not label.endswith("mAP"):
                continue
            clean = rv.values.get(f"{ds.split(PERTURBED)[0]}|{label}")
            if clean is not None:
                out.setdefault(rv.key, {}).setdefault(ds, {}).setdefault(label, []).append(clean - v)
    return {
        k: {ds: {label: mean_ci(v) for label, v in labels.items()} for ds, labels in sorted(d.items())}
        for k, d in sorted(out.items())
    }


def _cell(c: Cell | None, digits: int) -> str:
    if c is None:
        return "-"
    s = f"{c.mean:.{digits}f}"
    return s if c.half_width is None else f"{s} ± {c.half_width:.{digits}f}"


def _digits(label: str) -> int:
    return 1 if label == "rank dist" else 4


def _ds_label(r: Report, ds: str) -> str:
    return f"{ds} ({r.subset})" if r.subset else ds


def to_markdown(r: Report) -> str:
    head = [*r.key_names, "seeds"] + [f"{_ds_label(r, ds)} {label}" for ds, label, _ in r.columns]
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
        "(lowest rank distance)."
        + (f" Queries and pools restricted to languages {r.subset} in training." if r.subset else ""),
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


def alpha_markdown(curves: dict) -> str:
    lines = []
    for group, by_alpha in curves.items():
        present = {c for cells in by_alpha.values() for c in cells}
        datasets = sorted({c.split("|")[0] for c in present if PERTURBED not in c})
        cols = [f"{ds}|{label}" for ds in datasets for label in CURVE_LABELS if f"{ds}|{label}" in present]
        lines += [f"Alpha curve ({', '.join(group)}): share of X-X batches", ""]
        lines += ["| alpha | seeds | " + " | ".join(c.replace("|", " ") for c in cols) + " |"]
        lines += ["|" + "---|" * (2 + len(cols))]
        for a, cells in by_alpha.items():
            n = max(c.n for c in cells.values())
            row = [_cell(cells.get(c), _digits(c.split("|")[1])) for c in cols]
            lines.append(f"| {a:g} | {n} | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


CURVE_LABELS = ("mono mAP", "cross mAP", "multi mAP", "rank dist")


def robustness_markdown(r: Report, drops: dict) -> str:
    variants = sorted({ds for d in drops.values() for ds in d})
    head = [*r.key_names, *(v.split(PERTURBED, 1)[1] for v in variants)]
    lines = [
        "mAP drop under query perturbations (clean minus perturbed; mono / cross / multi; mean over seeds)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for key, d in drops.items():
        cells = []
        for v in variants:
            c = d.get(v, {})
            cells.append(
                " / ".join(
                    f"{c[m].mean:+.3f}" if m in c else "-" for m in ("mono mAP", "cross mAP", "multi mAP")
                )
            )
        lines.append("| " + " | ".join([*key, *cells]) + " |")
    return "\n".join(lines) + "\n"


def to_latex(r: Report) -> str:
    cols = "l" * len(r.key_names) + "c" * (1 + len(r.columns))
    head = [*r.key_names, "seeds"] + [f"{_ds_label(r, ds)} {label}" for ds, label, _ in r.columns]
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
                *r.key_names,
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


def write_report(root: str | Path, out_dir: str | Path | None = None, subset: str | None = None) -> Report:
    """results.{md,csv,tex}, results_bars.png, bias.png; alpha_curve.{md,png} and robustness.{md,png} when the
    runs hold an alpha sweep or perturbed evaluations. ``subset`` names the files ``results_unseen.*``."""
    from mdr.report_plots import plot_alpha_curve, plot_bars, plot_bias, plot_robustness

    r = collect(root, subset)
    out = Path(out_dir) if out_dir else Path(root)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"results_{subset}" if subset else "results"
    (out / f"{stem}.md").write_text(to_markdown(r))
    (out / f"{stem}.tex").write_text(to_latex(r))
    write_csv(r, out / f"{stem}.csv")
    if r.rows and r.columns:
        plot_bars(r, out / f"{stem}_bars.png")
        plot_bias(r, out / ("bias_" + subset + ".png" if subset else "bias.png"))
    curves = alpha_curve(r)
    if curves:
        (out / "alpha_curve.md").write_text(alpha_markdown(curves))
        plot_alpha_curve(curves, out / "alpha_curve.png")
    drops = robustness(r)
    if drops:
        (out / "robustness.md").write_text(robustness_markdown(r, drops))
        plot_robustness(r, drops, out / "robustness.png")
    return r
