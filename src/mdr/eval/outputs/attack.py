"""What an attack leaves in the run folder: summaries for ``metrics.json``, the adversarial queries
(``adversarial_queries.jsonl``), per-query scores for paired tests (``per_query.npz``) and ``summary.md``.

Summary schema (``datasets["<set>~attack"]["attack_summary"]``): group (``all``, and ``seen`` / ``unseen``
when the training languages are known: seen = query language seen and pool seen or multilingual, as the
LAReQA summaries split) -> setting (mono / cross / multi) -> ``n_queries``, ``n_correct_clean`` (gold at
rank 1 before any edit), ``clean`` metrics, and per method (``greedy``, ``random``) and budget ``k``: mAP,
P@1, MRR@5 averaged over the attacked queries (a micro average: the sample has the same size in every
language), ``success_rate`` = share of the clean-correct queries whose gold answer left the top 1 within
``k`` edits, and for greedy ``mean_edits_to_success``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mdr.eval.attack import ATTACK_METRICS, SETTINGS, AttackResult
from mdr.eval.outputs.per_query import save_npz
from mdr.runtime.files import atomic_write_text
from mdr.runtime.markdown import markdown_table

ADVERSARIAL_FILE = "adversarial_queries.jsonl"
ATTACK_PER_QUERY_FILE = "per_query.npz"


def _groups(result: AttackResult) -> dict[str, np.ndarray]:
    """Boolean masks over targets per group."""
    n = len(result.paths)
    groups = {"all": np.ones(n, dtype=bool)}
    if result.seen_langs is not None:
        seen = set(result.seen_langs)
        is_seen = np.array(
            [lang in seen and p.target.pool in seen | {"all"} for p, lang in zip(result.paths, result.langs)],
            dtype=bool,
        )
        groups["seen"], groups["unseen"] = is_seen, ~is_seen
    return groups


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def summarise(result: AttackResult) -> dict:
    settings = np.array([p.target.setting for p in result.paths])
    edits_to_success = np.array(
        [np.nan if p.success_edits is None else p.success_edits for p in result.paths], dtype=float
    )
    clean_p1 = result.metrics[("clean", 0)]["p@1"]
    out: dict = {}
    for group, mask in _groups(result).items():
        for setting in SETTINGS:
            sel = mask & (settings == setting)
            if not sel.any():
                continue
            correct = sel & (clean_p1 == 1)
            row: dict = {
                "n_queries": int(sel.sum()),
                "n_correct_clean": int(correct.sum()),
                "clean": {m: _mean(result.metrics[("clean", 0)][m][sel]) for m in ATTACK_METRICS},
            }
            for (method, k), values in sorted(result.metrics.items()):
                if method == "clean":
                    continue
                cell = {m: _mean(values[m][sel]) for m in ATTACK_METRICS}
                hit = correct & (values["p@1"] == 0)
                cell["success_rate"] = _mean(hit[correct].astype(float))
                if method == "greedy":
                    cell["n_success"] = int(hit.sum())
                    cell["mean_edits_to_success"] = _mean(edits_to_success[hit])
                row.setdefault(method, {})[str(k)] = cell
            out.setdefault(group, {})[setting] = row
    return out


def entry(result: AttackResult, summary: dict) -> dict:
    """The attack's ``metrics.json`` entry."""
    stops: dict[str, int] = {}
    for p in result.paths:
        stops[p.stop] = stops.get(p.stop, 0) + 1
    return {
        "kind": "attack",
        "dataset": result.dataset,
        "attack": asdict(result.settings),
        "n_sampled_queries": len(set(result.uids)),
        "n_targets": len(result.paths),
        "skipped_targets": result.skipped,
        "texts_encoded": result.encoded,
        "stops": dict(sorted(stops.items())),
        "seen_languages": result.seen_langs,
        "attack_summary": summary,
    }


def headline(summary: dict, budgets: list[int]) -> dict:
    """Success rate of the greedy attack per setting at each budget, over all languages."""
    out = {}
    for setting, row in summary.get("all", {}).items():
        for k in budgets:
            out[f"{setting}_success@{k}"] = row["greedy"][str(k)]["success_rate"]
    return out


def adversarial_records(result: AttackResult, query_texts: list[str]) -> list[dict]:
    """One JSON line per attacked (query, setting): the clean and attacked texts, every edit and margin."""
    records = []
    for i, p in enumerate(result.paths):
        t = p.target
        rec = {
            "query_uid": result.uids[i],
            "lang": result.langs[i],
            "setting": t.setting,
            "pool": t.pool,
            "clean": query_texts[t.row],
            "translation": None
            if result.translations.get(t.row) is None
            else result.translations[t.row].text,
            "clean_margin": p.margins[0],
            "stop": p.stop,
            "edits": [
                {**e.to_dict(), "text": q.text, "margin": m}
                for e, q, m in zip(p.edits, p.queries[1:], p.margins[1:])
            ],
            "p@1": {
                str(k): float(v["p@1"][i]) for (method, k), v in result.metrics.items() if method == "greedy"
            },
        }
        if result.random:
            rec["random"] = [q.text for q in result.random[t.row][1:]]
        records.append(rec)
    return records


def write_attack_outputs(result: AttackResult, summary: dict, query_texts: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(r, ensure_ascii=False) for r in adversarial_records(result, query_texts))
    atomic_write_text(out / ADVERSARIAL_FILE, "\n".join(lines) + "\n")
    arrays = {
        "uids": np.asarray(result.uids),
        "settings": np.asarray([p.target.setting for p in result.paths]),
        "pools": np.asarray([p.target.pool for p in result.paths]),
    }
    for (method, k), values in result.metrics.items():
        for m, v in values.items():
            arrays[f"{method}/k{k}/{m}"] = v
    save_npz(out / ATTACK_PER_QUERY_FILE, arrays)
    atomic_write_text(out / "summary.md", summary_markdown(summary, result.settings.budgets))


def summary_markdown(summary: dict, budgets: list[int]) -> str:
    lines = []
    for group, rows in summary.items():
        lines += [
            f"### {group}: P@1 under attack (greedy / random edits) and greedy success rate",
            "",
        ]
        header = [
            "setting",
            "queries",
            "clean P@1",
            *(f"P@1 k={k}" for k in budgets),
            *(f"success k={k}" for k in budgets),
            "edits to success",
        ]
        table = []
        for setting, row in rows.items():
            g, r = row["greedy"], row.get("random", {})
            p1 = [f"{g[str(k)]['p@1']:.3f} / " + (f"{r[str(k)]['p@1']:.3f}" if r else "-") for k in budgets]
            succ = [_fmt(g[str(k)]["success_rate"]) for k in budgets]
            top = g[str(max(budgets))]
            table.append(
                [setting, str(row["n_queries"]), f"{row['clean']['p@1']:.3f}", *p1, *succ]
                + [_fmt(top["mean_edits_to_success"], 2)]
            )
        lines += [markdown_table(header, table), ""]
    return "\n".join(lines)


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
