"""Deterministic splits that never put one article (group) on both sides."""

from __future__ import annotations

import numpy as np

from mdr.data.corpus import ParallelCorpus
from mdr.runtime.errors import InputError


def split_ids_by_group(
    corpus: ParallelCorpus, dev_fraction: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Shuffle groups with ``seed`` and fill the dev side up to ``dev_fraction`` of the ids."""
    if not 0.0 <= dev_fraction < 1.0:
        raise InputError(f"data.dev_fraction={dev_fraction} must be in [0, 1)")
    group_of: dict[str, str] = {}
    for ex in corpus.examples:
        if group_of.setdefault(ex.id, ex.group or ex.id) != (ex.group or ex.id):
            raise InputError(
                f"id {ex.id!r} has different groups in different languages; groups must be per id"
            )
    groups = sorted(set(group_of.values()))
    members: dict[str, list[str]] = {g: [] for g in groups}
    for id_, g in sorted(group_of.items()):
        members[g].append(id_)
    order = np.random.default_rng(seed).permutation(len(groups))
    target = round(dev_fraction * len(group_of))
    dev: list[str] = []
    for i in order:
        if len(dev) >= target:
            break
        dev.extend(members[groups[i]])
    dev_set = set(dev)
    train = [i for i in sorted(group_of) if i not in dev_set]
    return train, sorted(dev_set)
