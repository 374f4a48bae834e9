"""A LAReQA set's files in a run folder (its TREC runs: :mod:`mdr.eval.outputs.trec`)::

eval/<dataset>/pairs.csv         one row per setting (x->y and x->all) with every metric
eval/<dataset>/map_matrix.csv    query language x pool language (+ "all") mAP
eval/<dataset>/summary.md        headline table
eval/<dataset>/heatmap.png       the mAP matrix as a picture
eval/<dataset>/runs/<x>-<y>.trec.gz    TREC run (top ``eval.run_depth``) per setting
eval/<dataset>/qrels/<x>-<y>.qrels     TREC qrels per setting
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mdr.eval.lareqa import EM_METRICS, METRICS, LareqaResult
from mdr.runtime.files import atomic_write_text
from mdr.runtime.markdown import markdown_table


def write_dataset_reports(result: LareqaResult, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = [
        "setting",
        "type",
        "query_lang",
        "pool",
        "n_queries",
        "n_skipped",
        "pool_size",
        *METRICS,
        "rank_distance",
        *EM_METRICS,
    ]
    with (out_dir / "pairs.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for name, row in result.pairs.items():
            w.writerow({"setting": name, **row})
    langs = result.langs
    pools = [*langs, "all"]
    matrix = np.full((len(langs), len(pools)), np.nan)
    for i, x in enumerate(langs):
        for j, y in enumerate(pools):
            row = result.pairs.get(f"{x}->{y}")
            if row and row["map"] is not None:
                matrix[i, j] = row["map"]
    with (out_dir / "map_matrix.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query\\pool", *pools])
        for i, x in enumerate(langs):
            w.writerow([x, *("" if np.isnan(v) else f"{v:.4f}" for v in matrix[i])])
    atomic_write_text(out_dir / "summary.md", summary_markdown(result))
    _heatmap(matrix, langs, pools, out_dir / "heatmap.png", f"{result.dataset}: mAP, query language x pool")
    _bias_plot(result, out_dir / "bias.png")


def _bias_plot(result: LareqaResult, path: Path) -> None:
    """Language bias in the multilingual pool: per query language, the languages of its top 10 (stacked)
    and its rank distance. An unbiased model shows even stacks and small distances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = [x for x in result.langs if f"{x}->all" in result.pairs]
    if not langs:
        return
    rows = [result.pairs[f"{x}->all"] for x in langs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(4 + 0.9 * len(langs), 4), width_ratios=[2, 1])
    bottom = np.zeros(len(langs))
    cmap = plt.get_cmap("tab20")
    for k, pool_lang in enumerate(result.langs):
        share = np.array([(r.get("top10_lang_share") or {}).get(pool_lang, 0.0) for r in rows])
        ax1.bar(langs, share, bottom=bottom, color=cmap(k % 20), label=pool_lang)
        bottom += share
    ax1.set_ylabel("share of the top 10")
    ax1.set_xlabel("query language")
    ax1.set_title(f"{result.dataset}: languages of the top 10 (multilingual pool)", fontsize=9)
    ax1.legend(fontsize=6, ncol=2, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    ax2.bar(langs, [r.get("rank_distance") or 0.0 for r in rows], color="tab:red")
    ax2.set_ylabel("rank distance (lower: less bias)")
    ax2.set_xlabel("query language")
    ax2.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _rank(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def summary_markdown(result: LareqaResult) -> str:
    lines = [
        f"# {result.dataset}",
        "",
        f"{result.n_queries} queries, {result.n_candidates} candidates, languages: {' '.join(result.langs)}",
        "",
    ]
    rows = []
    groups = [("", result.summary)]
    groups += [(f"{k} ", result.summary[k]) for k in ("seen", "unseen") if k in result.summary]
    for prefix, summ in groups:
        for kind in ("mono", "cross", "multi"):
            row = summ[kind]
            rows.append(
                [f"{prefix}{kind}", *(_fmt(row[m]) for m in METRICS)]
                + [_rank(row.get("rank_distance")), str(row["n_settings"])]
            )
    lines.append(markdown_table(["setting", *METRICS, "rank distance", "settings"], rows))
    lines += ["", f"Skipped queries (no relevant candidate in the pool): {result.skipped['total']}", ""]
    return "\n".join(lines)


def _heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1 + 0.55 * len(cols), 1 + 0.5 * len(rows)))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("pool language")
    ax.set_ylabel("query language")
    for i in range(len(rows)):
        for j in range(len(cols)):
            if not np.isnan(matrix[i, j]):
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if matrix[i, j] < 0.6 else "black",
                )
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def headline(result: LareqaResult) -> dict:
    s = result.summary
    return {
        "mono_map": s["mono"]["map"],
        "cross_map": s["cross"]["map"],
        "multi_map": s["multi"]["map"],
        "rank_distance": s["multi"]["rank_distance"],
    }
