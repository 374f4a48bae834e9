"""Write a Tatoeba evaluation into a run folder.

Layout::

    eval/tatoeba/per_language.csv   one row per language: pairs, accuracy both ways and mean, mAP, MRR@5, groups
    eval/tatoeba/summary.md         group averages (all, XTREME-36, low-resource; seen / unseen)
    eval/tatoeba/accuracy.png       per-language accuracy, sorted, seen / unseen coloured apart
    eval/tatoeba/per_query.npz      rank of the aligned line for every sentence, both directions
"""

from __future__ import annotations

import csv
from pathlib import Path

from mdr.data.tatoeba import ISO3_TO_TRAINING, XTREME36
from mdr.eval.outputs.per_query import PER_QUERY_FILE, save_tatoeba_per_query
from mdr.eval.tatoeba import LANG_METRICS, TatoebaResult
from mdr.runtime.files import atomic_write_text
from mdr.runtime.markdown import markdown_table


def write_tatoeba_reports(result: TatoebaResult, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seen = set(result.seen_langs or [])
    with (out_dir / "per_language.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["lang", "n_pairs", *LANG_METRICS, "xtreme36", "low_resource", "seen"])
        for lang, row in result.per_language.items():
            is_seen = "" if result.seen_langs is None else int(ISO3_TO_TRAINING.get(lang, lang) in seen)
            w.writerow(
                [lang, row["n_pairs"], *(f"{row[m]:.4f}" for m in LANG_METRICS)]
                + [int(lang in XTREME36), int(row["low_resource"]), is_seen]
            )
    atomic_write_text(out_dir / "summary.md", summary_markdown(result))
    save_tatoeba_per_query(result, out_dir / PER_QUERY_FILE)
    _accuracy_plot(result, out_dir / "accuracy.png")


def summary_markdown(result: TatoebaResult) -> str:
    lines = [
        f"# {result.dataset}",
        "",
        f"{len(result.langs)} languages, each paired with English; accuracy = nearest neighbour by cosine is the "
        "aligned line (macro average over languages).",
        "",
    ]
    groups = [(g, row) for g, row in result.summary.items() if g not in ("seen", "unseen")]
    for split in ("seen", "unseen"):
        groups += [(f"{split} {g}", row) for g, row in result.summary.get(split, {}).items()]
    rows = [
        [name, str(row["n_languages"])]
        + [f"{row[k]:.4f}" for k in ("accuracy", "accuracy_to_eng", "accuracy_from_eng", "map", "mrr@5")]
        for name, row in groups
    ]
    header = ["group", "languages", "accuracy", "xx->eng", "eng->xx", "mAP", "MRR@5"]
    return "\n".join([*lines, markdown_table(header, rows)]) + "\n"


def _accuracy_plot(result: TatoebaResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(result.per_language.items(), key=lambda kv: kv[1]["accuracy"], reverse=True)
    seen = set(result.seen_langs or [])
    colors = [
        "tab:blue"
        if ISO3_TO_TRAINING.get(lang, lang) in seen
        else "tab:orange"
        if row["low_resource"]
        else "tab:gray"
        for lang, row in rows
    ]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.13 * len(rows) + 1), 3.6))
    ax.bar([lang for lang, _ in rows], [row["accuracy"] for _, row in rows], color=colors)
    ax.set_ylabel("accuracy (mean of both directions)")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", labelsize=5, rotation=90)
    ax.set_title(
        f"{result.dataset}: per-language accuracy (blue: seen in training, orange: low-resource, grey: other)",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
