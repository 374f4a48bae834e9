"""What corpus poisoning leaves in the run folder (``eval/<set>~poison/``): the adversarial passages (text and
token ids), the attacker / evaluated split, per-query success for paired tests, the transfer matrix (attacker
language x query language) as CSV and heatmap, and the entry ``metrics.json`` keeps.

Entry schema (``datasets["<set>~poison"]``): ``kind: poison``, the settings, ``n_attacker_ids`` /
``n_evaluated_ids``, ``seconds``, and per attacker language: ``curve`` (step, attacker similarity, success@k
per pool), ``success`` (pool -> k -> share of evaluated queries), ``transfer`` (pool -> query language ->
success@20), ``poisoned`` / ``clean`` (mAP, P@1, MRR@5 of the evaluated queries per pool), and per passage
whether its text re-tokenises to the optimised tokens.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mdr.eval.outputs.per_query import save_npz
from mdr.eval.poison import POOLS, TOP_K, PoisonResult, poisoned_metrics
from mdr.runtime.files import atomic_write_json, atomic_write_text

PASSAGES_FILE = "passages.json"
SPLIT_FILE = "split.json"
POISON_PER_QUERY_FILE = "per_query.npz"


def transfer(result: PoisonResult, k: int = 20) -> dict[str, dict[str, dict[str, float]]]:
    """attacker language -> pool -> query language -> success@k."""
    j = TOP_K.index(k)
    langs = np.asarray(result.langs)
    return {
        a: {
            pool: {x: float(hits[langs == x, j].mean()) for x in sorted(set(result.langs))}
            for pool, hits in by.items()
        }
        for a, by in result.success.items()
    }


def entry(result: PoisonResult) -> dict:
    moved = transfer(result)
    per_lang = {}
    for a in result.success:
        per_lang[a] = {
            "curve": result.curve[a],
            "success": {
                pool: {
                    f"success@{k}": float(result.success[a][pool][:, j].mean()) for j, k in enumerate(TOP_K)
                }
                for pool in POOLS
            },
            "transfer": moved[a],
            "poisoned": {pool: poisoned_metrics(result.gold_ranks[a][pool]) for pool in POOLS},
            "retokenized_same": [p["retokenized_same"] for p in result.passages[a]],
        }
    return {
        "kind": "poison",
        "settings": asdict(result.settings),
        "n_attacker_ids": len(result.attacker_ids),
        "n_evaluated_ids": len(result.evaluated_ids),
        "n_evaluated_queries": len(result.rows),
        "clean": {pool: poisoned_metrics(result.clean_ranks[pool]) for pool in POOLS},
        "seconds": result.seconds,
        "attacker_langs": per_lang,
    }


def headline(result: PoisonResult) -> dict:
    return {
        f"{a}->{pool}_success@20": float(result.success[a][pool][:, TOP_K.index(20)].mean())
        for a in result.success
        for pool in POOLS
    }


def write_poison_outputs(result: PoisonResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / PASSAGES_FILE, result.passages)
    atomic_write_json(
        out_dir / SPLIT_FILE,
        {"split_seed": result.settings.split_seed, "attacker_ids": result.attacker_ids,
         "evaluated_ids": result.evaluated_ids},
    )  # fmt: skip
    arrays = {"rows": result.rows, "langs": np.asarray(result.langs)}
    for a, by in result.success.items():
        for pool, hits in by.items():
            arrays[f"{a}/{pool}/success"] = hits
    save_npz(out_dir / POISON_PER_QUERY_FILE, arrays)
    moved = transfer(result)
    query_langs = sorted(set(result.langs))
    lines = ["attacker,pool," + ",".join(query_langs)]
    for a, by in moved.items():
        for pool, row in by.items():
            lines.append(f"{a},{pool}," + ",".join(f"{row[x]:.4f}" for x in query_langs))
    atomic_write_text(out_dir / "transfer.csv", "\n".join(lines) + "\n")
    plot_transfer(moved, query_langs, out_dir / "transfer.png")


def plot_transfer(moved: dict, query_langs: list[str], path: Path) -> None:
    """Heatmaps of success@20: attacker language (rows) x query language (columns), one panel per pool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attackers = list(moved)
    fig, axes = plt.subplots(
        1, len(POOLS), figsize=(0.55 * len(query_langs) * len(POOLS) + 2, 0.6 * len(attackers) + 1.6)
    )
    for ax, pool in zip(np.atleast_1d(axes), POOLS):
        grid = np.array([[moved[a][pool][x] for x in query_langs] for a in attackers])
        ax.imshow(grid, vmin=0, vmax=1, cmap="Reds", aspect="auto")
        ax.set_xticks(range(len(query_langs)), query_langs)
        ax.set_yticks(range(len(attackers)), attackers)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
        ax.set_title(f"success@20, {pool} pool", fontsize=9)
        ax.set_xlabel("query language")
        ax.set_ylabel("passages optimised on")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_passages(path: Path) -> dict:
    return json.loads(Path(path).read_text())
