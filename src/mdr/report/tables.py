"""A collected ``Report`` as Markdown, LaTeX and CSV tables (and the alpha-curve / robustness tables)."""

from __future__ import annotations

import csv
from pathlib import Path

from mdr.data.names import is_variant, variant_of
from mdr.report.collect import Report
from mdr.report.significance import SIGNIFICANCE_LEVEL
from mdr.report.stats import Cell
from mdr.runtime.markdown import markdown_table


def _cell(c: Cell | None, digits: int) -> str:
    if c is None:
        return "-"
    s = f"{c.mean:.{digits}f}"
    return s if c.half_width is None else f"{s} ± {c.half_width:.{digits}f}"


def _digits(label: str) -> int:
    return 1 if label == "rank dist" else 4


def _mark(r: Report, key: tuple, col: str) -> str:
    """A dagger where the cell differs significantly from the baseline row's (Holm-corrected)."""
    c = r.comparisons.get(key, {}).get(col)
    return "†" if c is not None and c.p_holm < SIGNIFICANCE_LEVEL else ""


def significance_note(r: Report) -> str:
    if r.baseline is None:
        return ""
    n = sum(len(cols) for cols in r.comparisons.values())
    bases = sorted(set(r.baseline.values()))
    if not bases:
        return ""
    if len(bases) == 1:
        against = f"the baseline row ({', '.join(bases[0])})"
    else:  # several rows matched --baseline: each row is tested within its group (significance.baseline_rows)
        against = (
            "the baseline row of its group, the one agreeing on the columns --baseline does not name ("
            + ("; ".join(", ".join(b) for b in bases) + ")")
        )
    untested = [k for k in r.rows if k not in r.baseline and k not in bases]
    return (
        f" †: differs from {against} at p < {SIGNIFICANCE_LEVEL}, paired "
        f"randomization test over queries (per-query scores averaged over the shared seeds), Holm-corrected "
        f"over the table's {n} comparisons; p-values in the CSV."
        + (
            f" Not tested (no baseline row in their group): {'; '.join(', '.join(k) for k in untested)}."
            if untested
            else ""
        )
    )


def _ds_label(r: Report, ds: str) -> str:
    return f"{ds} ({r.subset})" if r.subset else ds


def to_markdown(r: Report) -> str:
    head = [*r.key_names, "seeds"] + [f"{_ds_label(r, ds)} {label}" for ds, label, _ in r.columns]
    rows = []
    for key, cells in r.rows.items():
        n = max((c.n for c in cells.values()), default=0)
        out = []
        for ds, label, _ in r.columns:
            text = _cell(cells.get(f"{ds}|{label}"), _digits(label)) + _mark(r, key, f"{ds}|{label}")
            out.append(f"**{text}**" if r.best.get((ds, label)) == key else text)
        rows.append([*key, str(n), *out])
    lines = [markdown_table(head, rows)]
    lines += [
        "",
        "Mean ± half-width of the 95% t-interval over seeds; **bold**: best mean in the column "
        "(lowest rank distance)."
        + (f" Queries and pools restricted to languages {r.subset} in training." if r.subset else "")
        + significance_note(r),
        f"Complete runs: {len(r.complete)}.",
    ]
    if r.failed:
        lines += ["", f"Failed runs ({len(r.failed)}), not in the table:"]
        lines += [f"- `{p}`: {reason}" for p, reason in r.failed]
    if r.skipped:
        lines += ["", f"Skipped runs ({len(r.skipped)}), their cells already archived:"]
        lines += [f"- `{p}`: {reason}" for p, reason in r.skipped]
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
        datasets = sorted({c.split("|")[0] for c in present if not is_variant(c.split("|")[0])})
        cols = [f"{ds}|{label}" for ds in datasets for label in CURVE_LABELS if f"{ds}|{label}" in present]
        lines += [f"Alpha curve ({', '.join(group)}): share of X-X batches", ""]
        rows = [
            [f"{a:g}", str(max(c.n for c in cells.values()))]
            + [_cell(cells.get(c), _digits(c.split("|")[1])) for c in cols]
            for a, cells in by_alpha.items()
        ]
        lines += [markdown_table(["alpha", "seeds", *(c.replace("|", " ") for c in cols)], rows), ""]
    return "\n".join(lines)


CURVE_LABELS = ("mono mAP", "cross mAP", "multi mAP", "rank dist")


def robustness_markdown(r: Report, drops: dict) -> str:
    variants = sorted({ds for d in drops.values() for ds in d})
    head = [*r.key_names, *(variant_of(v) for v in variants)]
    lines = [
        "mAP drop under query perturbations (clean minus perturbed; mono / cross / multi; mean over seeds)",
        "",
    ]
    rows = []
    for key, d in drops.items():
        cells = []
        for v in variants:
            c = d.get(v, {})
            cells.append(
                " / ".join(
                    f"{c[m].mean:+.3f}" if m in c else "-" for m in ("mono mAP", "cross mAP", "multi mAP")
                )
            )
        rows.append([*key, *cells])
    return "\n".join([*lines, markdown_table(head, rows)]) + "\n"


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
            text += r"$^\dagger$" if _mark(r, key, f"{ds}|{label}") else ""
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
                "diff_vs_baseline",
                "p_value",
                "p_holm",
                "paired_units",
            ]
        )
        for key, cells in r.rows.items():
            for ds, label, _ in r.columns:
                c = cells.get(f"{ds}|{label}")
                if c is not None:
                    cmp = r.comparisons.get(key, {}).get(f"{ds}|{label}")
                    tested = [cmp.diff, cmp.p, cmp.p_holm, cmp.n_units] if cmp else ["", "", "", ""]
                    w.writerow(
                        [
                            *key,
                            ds,
                            label,
                            c.mean,
                            "" if c.half_width is None else c.half_width,
                            c.n,
                            int(r.best.get((ds, label)) == key),
                            *tested,
                        ]
                    )
