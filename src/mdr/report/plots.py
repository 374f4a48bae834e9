"""PNG figures of a sweep report: mono / cross / multi bars, language bias, the alpha curve, robustness.

Error bars are the 95% t-interval half-widths of the table (none with one seed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdr.data.names import is_variant, variant_of
from mdr.report.collect import Report

KINDS = ("mono mAP", "cross mAP", "multi mAP")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def row_label(r: Report, key: tuple) -> str:
    """The parts of a row key that differ between rows (the whole key when there is one row)."""
    varying = [i for i in range(len(key)) if len({k[i] for k in r.rows}) > 1] or list(range(len(key)))
    return "\n".join(str(key[i]) for i in varying)


def _datasets(r: Report) -> list[str]:
    return sorted({ds for ds, _, _ in r.columns if not is_variant(ds)})


def _err(cell) -> float:
    return 0.0 if cell is None or cell.half_width is None else cell.half_width


def plot_bars(r: Report, path: Path) -> None:
    """One panel per dataset: for every row, mono / cross / multi mAP side by side."""
    plt = _plt()
    datasets = _datasets(r)
    keys = list(r.rows)
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(2 + 1.6 * len(keys) * len(datasets), 4), squeeze=False
    )
    width = 0.8 / len(KINDS)
    for ax, ds in zip(axes[0], datasets):
        x = np.arange(len(keys))
        for i, kind in enumerate(KINDS):
            cells = [r.rows[k].get(f"{ds}|{kind}") for k in keys]
            means = [c.mean if c else np.nan for c in cells]
            ax.bar(x + (i - 1) * width, means, width, yerr=[_err(c) for c in cells], capsize=3, label=kind)
        ax.set_xticks(x, [row_label(r, k) for k in keys], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("mAP")
        ax.set_title(f"{ds} ({r.subset})" if r.subset else ds, fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bias(r: Report, path: Path) -> None:
    """Language bias: rank distance (lower = less bias) next to the multilingual-pool mAP, per row."""
    plt = _plt()
    datasets = _datasets(r)
    keys = list(r.rows)
    fig, axes = plt.subplots(
        2, len(datasets), figsize=(2 + 1.2 * len(keys) * len(datasets), 6), squeeze=False
    )
    x = np.arange(len(keys))
    for j, ds in enumerate(datasets):
        for ax, label, color in (
            (axes[0][j], "rank dist", "tab:red"),
            (axes[1][j], "multi mAP", "tab:green"),
        ):
            cells = [r.rows[k].get(f"{ds}|{label}") for k in keys]
            ax.bar(
                x,
                [c.mean if c else np.nan for c in cells],
                0.6,
                yerr=[_err(c) for c in cells],
                capsize=3,
                color=color,
            )
            ax.set_xticks(x, [row_label(r, k) for k in keys], fontsize=8)
            ax.set_ylabel("rank distance (lower: less bias)" if label == "rank dist" else "multilingual mAP")
        axes[0][j].set_title(f"{ds}: language bias", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_alpha_curve(curves: dict, path: Path) -> None:
    """mono / cross / multi mAP against alpha (share of X-X batches), one panel per group and dataset."""
    plt = _plt()
    panels = []
    for group, by_alpha in curves.items():
        datasets = sorted(
            {c.split("|")[0] for cells in by_alpha.values() for c in cells if not is_variant(c.split("|")[0])}
        )
        panels += [(group, ds, by_alpha) for ds in datasets]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, (group, ds, by_alpha) in zip(axes[0], panels):
        alphas = list(by_alpha)
        for kind in KINDS:
            cells = [by_alpha[a].get(f"{ds}|{kind}") for a in alphas]
            ax.errorbar(
                alphas,
                [c.mean if c else np.nan for c in cells],
                yerr=[_err(c) for c in cells],
                marker="o",
                capsize=3,
                label=kind,
            )
        ax.set_xlabel("alpha (probability of an X-X batch)")
        ax.set_ylabel("mAP")
        ax.set_xticks(alphas)
        ax.set_title(f"{ds}: {', '.join(group)}", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_robustness(r: Report, drops: dict, path: Path) -> None:
    """Multilingual mAP drop against perturbation rate: one panel per perturbation kind, a line per row."""
    plt = _plt()
    parsed: dict[str, dict[tuple, list[tuple[float, float, float]]]] = {}
    for key, by_ds in drops.items():
        for ds, cells in by_ds.items():
            variant = variant_of(ds)
            kind, _, rate = variant.partition("@")
            if "multi mAP" in cells:
                c = cells["multi mAP"]
                parsed.setdefault(kind, {}).setdefault(key, []).append((float(rate or 0), c.mean, _err(c)))
    kinds = sorted(parsed)
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for key, points in sorted(parsed[kind].items()):
            points.sort()
            ax.errorbar(
                [p[0] for p in points],
                [p[1] for p in points],
                yerr=[p[2] for p in points],
                marker="o",
                capsize=3,
                label=row_label(r, key).replace("\n", " "),
            )
        ax.set_xlabel("perturbation rate")
        ax.set_ylabel("multilingual mAP drop")
        ax.set_title(kind, fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


PARETO_X = (
    "tatoeba",
    "acc",
)  # keeping what the backbone could do: bitext accuracy over all Tatoeba languages
PARETO_PANELS = (("xquad_r", "multi mAP"), ("xquad_r", "mono mAP"))


def pareto_points(r: Report) -> dict[tuple, dict[str, object]]:
    """Each row's (bitext accuracy, multilingual mAP, monolingual mAP) cells, for rows that have all three."""
    cols = [f"{ds}|{label}" for ds, label in (PARETO_X, *PARETO_PANELS)]
    return {
        key: {c: cells[c] for c in cols} for key, cells in r.rows.items() if all(c in cells for c in cols)
    }


def pareto_front(points: dict[tuple, tuple[float, float]]) -> set[tuple]:
    """Rows no other row beats on both coordinates (higher is better on each), on the means."""
    return {
        k
        for k, (x, y) in points.items()
        if not any(x2 >= x and y2 >= y and (x2, y2) != (x, y) for k2, (x2, y2) in points.items() if k2 != k)
    }


PARETO_MARKERS = "osD^vP<>Xph"


def pareto_styles(keys: list[tuple]) -> dict[tuple, tuple[str, str]]:
    """One (colour, marker) per row, the same in both panels, no two rows alike: rows cluster within a point of
    each other, so a legend names them where labels beside the points would overlap. 10 colours x 11 markers
    (coprime counts): unique for up to 110 rows. The backbone: a black star."""
    trained = sorted(k for k in keys if k[0] != "untrained")
    styles = {k: (f"C{i % 10}", PARETO_MARKERS[i % len(PARETO_MARKERS)]) for i, k in enumerate(trained)}
    styles.update({k: ("black", "*") for k in keys if k[0] == "untrained"})
    return styles


PARETO_MIN_SEEDS = (
    3  # below this a 95% t interval is 12.7 (2 seeds) standard errors wide: it would fill the panel
)


def pareto_whisker(cell) -> float:
    """A point's half interval on one axis; 0 (no whisker) for rows with fewer than PARETO_MIN_SEEDS seeds,
    which the legend marks "n < 3" instead."""
    return 0.0 if cell is None or cell.n < PARETO_MIN_SEEDS else _err(cell)


def _pareto_label(r: Report, key: tuple, n_seeds: int) -> str:
    """The row's name and its seed count; "n < 3" where the point has no interval."""
    name = " ".join(part for part in row_label(r, key).split("\n") if part != "default")
    if key[0] == "untrained":
        return name
    seeds = f"{n_seeds} seed{'s' * (n_seeds != 1)}"
    return f"{name} ({seeds}{', n < 3: no interval' if n_seeds < PARETO_MIN_SEEDS else ''})"


def legend_columns(keys: list[tuple]) -> list[list[tuple | None]]:
    """Legend entries grouped by recipe (the sampler, a row key's first part): one column per recipe, the
    backbone last, shorter columns padded with None (blank entries), so a column reads as one recipe."""
    groups: dict[str, list[tuple]] = {}
    for k in sorted(keys, key=lambda k: (k[0] == "untrained", k)):
        groups.setdefault(k[0], []).append(k)
    height = max(len(g) for g in groups.values())
    return [g + [None] * (height - len(g)) for g in groups.values()]


def plot_pareto(r: Report, path: Path) -> bool:
    """Every recipe's point with its seed interval (95% t, both axes; none below 3 seeds): XQuAD-R multilingual
    mAP, and in a second panel monolingual mAP, against Tatoeba accuracy; the untrained backbone as the
    reference (dashed lines); filled markers: the rows on the Pareto front of that panel. One legend, a column
    per recipe, names every row (colour and marker) with its seed count.
    False (nothing drawn) without those three columns."""
    points = pareto_points(r)
    if len(points) < 2:
        return False
    plt = _plt()
    from matplotlib.lines import Line2D

    xcol = f"{PARETO_X[0]}|{PARETO_X[1]}"
    styles = pareto_styles(list(points))
    fig, axes = plt.subplots(1, len(PARETO_PANELS), figsize=(6.5 * len(PARETO_PANELS), 7.0), squeeze=False)
    for ax, (ds, label) in zip(axes[0], PARETO_PANELS):
        ycol = f"{ds}|{label}"
        front = pareto_front({k: (c[xcol].mean, c[ycol].mean) for k, c in points.items()})
        for key, c in points.items():
            untrained = key[0] == "untrained"
            colour, marker = styles[key]
            x, y = c[xcol], c[ycol]
            ax.errorbar(x.mean, y.mean, xerr=pareto_whisker(x), yerr=pareto_whisker(y), fmt=marker, color=colour, capsize=2,
                        markersize=12 if untrained else 6, elinewidth=0.8,
                        mfc=colour if key in front or untrained else "none")  # fmt: skip
            if untrained:
                ax.axvline(x.mean, color="grey", ls="--", lw=0.8)
                ax.axhline(y.mean, color="grey", ls="--", lw=0.8)
        ax.set_xlabel(f"Tatoeba accuracy ({r.subset or 'all languages'})")
        ax.set_ylabel(f"{ds} {label}")
        ax.set_title(f"{ds} {label} vs bitext accuracy; filled: Pareto front (means)", fontsize=9)
    columns = legend_columns(list(points))
    handles = [
        Line2D([], [], color=styles[k][0], marker=styles[k][1], ls="none", markersize=7,
               label=_pareto_label(r, k, points[k][xcol].n)) if k is not None else Line2D([], [], ls="none", label=" ")
        for column in columns for k in column
    ]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=len(columns), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * len(columns[0]), 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True
