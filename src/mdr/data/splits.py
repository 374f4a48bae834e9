"""Deterministic splits that never put one article (group) on both sides."""

from __future__ import annotations

import numpy as np

from mdr.data.corpus import ParallelCorpus
from mdr.runtime.errors import InputError


def split_positions_by_group(
    corpus: ParallelCorpus, dev_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in ``corpus.ids``) of the train and dev ids: groups, sorted, are shuffled with ``seed`` and
    whole groups fill the dev side up to ``dev_fraction`` of the ids. Arrays, so millions of ids stay cheap."""
    if not 0.0 <= dev_fraction < 1.0:
        raise InputError(f"data.dev_fraction={dev_fraction} must be in [0, 1)")
    # ranks among a larger corpus's groups keep their order: renumber them 0..n_groups-1 for this corpus
    groups, group_index = np.unique(np.asarray(corpus.group_ranks()), return_inverse=True)
    members = np.argsort(group_index, kind="stable")  # ids grouped, in id order within a group
    starts = np.searchsorted(group_index[members], np.arange(len(groups) + 1))
    order = np.random.default_rng(seed).permutation(len(groups))
    target = round(dev_fraction * len(group_index))
    taken, chosen = 0, []
    for g in order:
        if taken >= target:
            break
        chosen.append(members[starts[g] : starts[g + 1]])
        taken += starts[g + 1] - starts[g]
    is_dev = np.zeros(len(group_index), dtype=bool)
    if chosen:
        is_dev[np.concatenate(chosen)] = True
    return np.flatnonzero(~is_dev), np.flatnonzero(is_dev)


def split_ids_by_group(
    corpus: ParallelCorpus, dev_fraction: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """The split as sorted id strings."""
    train, dev = split_positions_by_group(corpus, dev_fraction, seed)
    return corpus.ids.take(train), corpus.ids.take(dev)
