"""Per-query results for paired significance tests: the exact ranks each query got, in a compact file.

``eval/<dataset>/per_query.npz`` keeps, per setting, the ranks of each scored query's relevant items
(integers, 0 = padding), so every metric of the run can be recomputed per query without the TREC runs.
LAReQA sets store ``rows/<x>-><y>`` (rows into the set's query order) and ``ranks/<x>-><y>`` (Q, R), plus
``query_uids``; Tatoeba stores ``ranks/<direction>/<lang>`` (the aligned line's rank per sentence).

:func:`unit_contributions` turns a run's file into one number per *unit* (a LAReQA query: its language
and id; a Tatoeba pair: language and line) such that the units' sum is exactly the headline macro
average; a paired test over units then tests exactly the difference the table shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mdr.eval.metrics import metrics_from_ranks, rank_distance
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.inputs import load_npz

PER_QUERY_FILE = "per_query.npz"


def save_lareqa_per_query(result, rs, path: Path) -> None:
    arrays = {"query_uids": np.asarray(rs.query_uids)}
    for name, rows in result.query_rows.items():
        arrays[f"rows/{name}"] = rows
        arrays[f"ranks/{name}"] = result.ranks[name]
    save_npz(path, arrays)


def save_tatoeba_per_query(result, path: Path) -> None:
    save_npz(path, {f"ranks/{k}": v for k, v in result.ranks.items()})


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Compressed and atomic: a reader never sees half a per-query file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def per_query_metric(ranks: np.ndarray, metric: str) -> np.ndarray:
    """One metric per row of stored ranks (0 = padding): map, p@1, mrr@5, rank_distance, ..."""
    r = torch.from_numpy(ranks.astype(np.float64))
    r = torch.where(r > 0, r, torch.full_like(r, float("inf")))
    if metric == "rank_distance":
        return rank_distance(r).numpy()
    return metrics_from_ranks(r)[metric].numpy()


def _setting_kind(name: str) -> tuple[str, str, str]:
    x, y = name.split("->")
    return ("multi" if y == "all" else "mono" if x == y else "cross"), x, y


def _in_subset(x: str, y: str, subset: str | None, seen: set[str]) -> bool:
    """The same selection as the LAReQA summaries' seen / unseen groups."""
    if subset is None:
        return True
    is_seen = x in seen and (y == "all" or y in seen)
    return is_seen if subset == "seen" else not is_seen


def lareqa_units(
    data, kind: str, metric: str, subset: str | None = None, seen_langs: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(unit keys, contributions) for a LAReQA headline cell (``kind`` mono / cross / multi)."""
    if subset and seen_langs is None:
        raise InputError("a seen / unseen subset needs the run's training languages")
    seen = set(seen_langs or [])
    uids = data["query_uids"]
    settings = []
    for key in data:
        if key.startswith("ranks/"):
            name = key.removeprefix("ranks/")
            k, x, y = _setting_kind(name)
            if k == kind and _in_subset(x, y, subset, seen) and len(data[key]):
                settings.append(name)
    contrib = np.zeros(len(uids), dtype=np.float64)
    touched = np.zeros(len(uids), dtype=bool)
    for name in settings:
        rows = data[f"rows/{name}"]
        values = per_query_metric(data[f"ranks/{name}"], metric)
        np.add.at(contrib, rows, values / (len(settings) * len(rows)))
        touched[rows] = True
    return uids[touched], contrib[touched]


def attack_units(
    data, setting: str, metric: str, subset: str | None = None, seen_langs: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(unit keys ``lang:qid``, contributions) for an attack cell: one attacked query per (query, setting);
    ``metric`` is ``<method>/k<budget>/<map|p@1|mrr@5>`` as the attack's per_query.npz stores it."""
    if metric not in data:
        have = sorted({k.split("/")[1] for k in data if k.count("/") == 2})
        raise InputError(f"attack results have no {metric!r}; budgets stored: {have}")
    if subset and seen_langs is None:
        raise InputError("a seen / unseen subset needs the run's training languages")
    seen = set(seen_langs or [])
    uids, pools = data["uids"], data["pools"]
    keep = np.array(
        [
            s == setting and _in_subset(u.split(":", 1)[0], y, subset, seen)
            for u, s, y in zip(uids, data["settings"], pools)
        ],
        dtype=bool,
    )
    n = int(keep.sum())
    return uids[keep], data[metric][keep] / max(n, 1)


def tatoeba_units(data, langs: list[str], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(unit keys ``lang:line``, contributions) for a Tatoeba group's macro average over ``langs``
    (``metric``: accuracy, map or mrr@5; each unit averages its two directions)."""
    name = "p@1" if metric == "accuracy" else metric
    keys, values = [], []
    for lang in langs:
        both = [
            per_query_metric(data[f"ranks/{d}/{lang}"].reshape(-1, 1), name) for d in ("to_eng", "from_eng")
        ]
        unit = (both[0] + both[1]) / 2
        keys.extend(f"{lang}:{i}" for i in range(len(unit)))
        values.append(unit / (len(langs) * len(unit)))
    return np.asarray(keys), (np.concatenate(values) if values else np.zeros(0))


def load_per_query(run_dir: Path, dataset: str) -> dict[str, np.ndarray]:
    """A run's per-query archive, checked: arrays that must align (a setting's rows and ranks; a Tatoeba
    language's two directions) have equal lengths."""
    path = Path(run_dir) / "eval" / dataset / PER_QUERY_FILE
    fix = "re-evaluate the run with eval.py ckpt=... to rewrite it"
    if not path.exists():
        raise MissingInputError(
            f"{path} is missing: this run predates per-query results; re-evaluate it with eval.py ckpt=... "
            "to test its differences for significance"
        )
    arrays = load_npz(path, "per-query archive", fix)
    for key, rows in arrays.items():
        if key.startswith("rows/"):
            ranks = arrays.get(f"ranks/{key[5:]}")
            if ranks is None or len(ranks) != len(rows):
                have = "no ranks" if ranks is None else f"{len(ranks)} ranks"
                raise InputError(f"{path}: setting {key[5:]!r} has {len(rows)} rows but {have}; {fix}")
    lengths: dict[str, set[int]] = {}
    for key, ranks in arrays.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "ranks":  # ranks/<direction>/<lang>
            lengths.setdefault(parts[2], set()).add(len(ranks))
    unequal = sorted(lang for lang, n in lengths.items() if len(n) > 1)
    if unequal:
        raise InputError(f"{path}: language(s) {unequal} have directions of unequal length; {fix}")
    return arrays
