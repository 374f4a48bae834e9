"""Deterministic splits that never put one article (group) on both sides.

A split of a cached corpus is itself cached, beside the corpus (``<corpus folder>/split-<key>``: the train
side's id x language index and the dev positions, memory-mapped), so a rank's start at mMARCO scale computes
nothing per id and holds no private copy of the training index: every rank of a node maps one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from mdr.data import cache_folder
from mdr.data.arrow_store import open_index, write_index
from mdr.data.corpus import ParallelCorpus
from mdr.runtime.errors import InputError

log = logging.getLogger(__name__)

SPLIT_FORMAT_VERSION = 1


def _check_dev_fraction(dev_fraction: float) -> None:
    if not 0.0 <= dev_fraction < 1.0:
        raise InputError(f"data.dev_fraction={dev_fraction} must be in [0, 1)")


def split_positions_by_group(
    corpus: ParallelCorpus, dev_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in ``corpus.ids``) of the train and dev ids: groups, sorted, are shuffled with ``seed`` and
    whole groups fill the dev side up to ``dev_fraction`` of the ids. Arrays, so millions of ids stay cheap."""
    _check_dev_fraction(dev_fraction)
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


def split_corpus(
    corpus: ParallelCorpus, dev_fraction: float, seed: int = 0, dev_max_ids: int | None = None
) -> tuple[ParallelCorpus, ParallelCorpus | None]:
    """The train and dev corpora (dev: the first ``dev_max_ids`` dev ids, or None when there are none). The same
    split as ``split_positions_by_group``; read from the corpus's cache folder when it has one."""
    if corpus.cache_folder is None:
        train_positions, dev_positions = split_positions_by_group(corpus, dev_fraction, seed)
        train = corpus.subset_positions(train_positions, name=f"{corpus.name}-train")
    else:
        train, dev_positions = _cached_split(corpus, dev_fraction, seed)
    if dev_max_ids is not None:
        dev_positions = dev_positions[:dev_max_ids]
    dev = corpus.subset_positions(dev_positions, name=f"{corpus.name}-dev") if len(dev_positions) else None
    return train, dev


def _cached_split(
    corpus: ParallelCorpus, dev_fraction: float, seed: int
) -> tuple[ParallelCorpus, np.ndarray]:
    _check_dev_fraction(dev_fraction)  # before a folder is named after it
    settings = {"dev_fraction": dev_fraction, "seed": seed, "langs": corpus.langs}
    key = cache_folder.fingerprint([], settings, SPLIT_FORMAT_VERSION)

    def build(tmp: Path) -> dict:
        train_positions, dev_positions = split_positions_by_group(corpus, dev_fraction, seed)
        train_index = corpus.index.subset(train_positions)
        write_index(tmp, train_index)
        np.save(tmp / "dev_positions.npy", dev_positions)
        log.info("split cache: %d train ids, %d dev ids", len(train_positions), len(dev_positions))
        return {**settings, "train_ids": len(train_positions), "train_langs": train_index.langs}

    folder = cache_folder.cached_folder(corpus.cache_folder, "split", key, build)
    meta = json.loads((folder / "meta.json").read_text())
    train = ParallelCorpus(
        corpus.store, f"{corpus.name}-train", index=open_index(folder, meta["train_langs"])
    )
    return train, np.load(folder / "dev_positions.npy", mmap_mode="r")
