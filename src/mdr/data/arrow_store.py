"""Training corpora as memory-mapped Arrow, built once per source file and shared by every rank of a node
(the folder mechanics, lock and fingerprint: ``mdr.data.cache_folder``).

A cache folder holds ``examples.arrow`` (the examples, one record batch per ``BATCH_ROWS``), the id x
language index (``ids.arrow``, ``rows.npy``), each id's group rank for splits (``groups.npy``) and
``meta.json``, written last (the done marker). The folder's name carries a fingerprint of the source (each
file's content hash, reader settings, format version): a changed file gets a new cache. Pages are the
operating system's page cache: ranks on one node share them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from mdr.data import cache_folder
from mdr.data.cache_folder import BATCH_ROWS, cached_folder, map_arrow, record_batches, write_arrow
from mdr.data.corpus import ParallelCorpus, ParallelExample
from mdr.data.language_index import LanguageIndex, arrow_positions

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: groups.npy
SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("id", pa.string()),
        ("lang", pa.string()),
        ("query", pa.string()),
        ("positive", pa.string()),
        ("negatives", pa.list_(pa.string())),
        ("group", pa.string()),
    ]
)


def _example(values: dict) -> ParallelExample:
    return ParallelExample(
        id=values["id"],
        lang=values["lang"],
        query=values["query"],
        positive=values["positive"],
        negatives=tuple(values["negatives"] or ()),
        group=values["group"],
    )


def _runs(values: np.ndarray):
    """(value, start, stop) of each run of equal values in a sorted array."""
    if not len(values):
        return
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(values)]])
    for start, stop in zip(starts, stops):
        yield int(values[start]), int(start), int(stop)


class ArrowStore:
    """Examples read from Arrow record batches of ``BATCH_ROWS`` rows (memory-mapped, or in memory)."""

    def __init__(self, batches: list[pa.RecordBatch], source: str):
        self.batches, self.source = batches, source
        self.table = pa.Table.from_batches(batches, schema=SCHEMA)

    @classmethod
    def open(cls, path: Path, source: str) -> ArrowStore:
        return cls(map_arrow(path), source)

    def example(self, row: int) -> ParallelExample:
        batch, offset = divmod(row, BATCH_ROWS)
        return _example(
            {name: col[offset].as_py() for name, col in zip(SCHEMA.names, self.batches[batch].columns)}
        )

    def group_values(self, rows: np.ndarray) -> pa.Array:
        return self._take(rows, ["group"]).column(0)

    def examples(self, rows: np.ndarray) -> list[ParallelExample]:
        """Many examples at once (one Arrow take and conversion per record batch: ~10x faster than one by one)."""
        return [_example(values) for values in self._take(rows, SCHEMA.names).to_pylist()]

    def _take(self, rows: np.ndarray, columns: list[str]) -> pa.Table:
        """The given rows, in the given order, taken batch by batch (a take on the whole table concatenates
        every chunk of the memory-mapped file into memory first)."""
        rows = np.asarray(rows, dtype=np.int64)
        batch_of = rows // BATCH_ROWS
        order = np.argsort(batch_of, kind="stable")
        sorted_batches = batch_of[order]
        parts = []
        for b, start, stop in _runs(sorted_batches):
            offsets = rows[order[start:stop]] - b * BATCH_ROWS
            parts.append(self.batches[b].select(columns).take(arrow_positions(offsets)))
        schema = pa.schema([SCHEMA.field(c) for c in columns])
        taken = pa.Table.from_batches(parts, schema=schema).combine_chunks()
        return taken.take(arrow_positions(np.argsort(order, kind="stable")))

    def where(self, row: int) -> str:
        batch, offset = divmod(row, BATCH_ROWS)
        return f"{self.source}:{self.batches[batch].column(0)[offset].as_py()}"


def build_in_memory(rows: Iterable[dict], source: str, name: str) -> ParallelCorpus:
    """The corpus without a cache folder (small files, tests): the same store and index, in memory."""
    store = ArrowStore(list(record_batches(rows, SCHEMA, source)), source)
    return _corpus(store, _index(store, name), name)


def _index(store: ArrowStore, name: str) -> LanguageIndex:
    return LanguageIndex.build(store.table.column("id"), store.table.column("lang"), name, where=store.where)


def _corpus(store: ArrowStore, index: LanguageIndex, name: str) -> ParallelCorpus:
    corpus = ParallelCorpus(store, name, index=index)
    corpus.check_groups()  # at build, not at every start
    return corpus


def fingerprint(paths: list[Path], settings: dict) -> str:
    """The source's identity in this format (see ``cache_folder.fingerprint``)."""
    return cache_folder.fingerprint(paths, settings, FORMAT_VERSION)


def cached_corpus(
    make_rows: Callable[[], Iterable[dict]], cache_dir: str | Path, key: str, source: str, name: str
) -> ParallelCorpus:
    """The corpus from ``cache_dir/<name>-<key>``, built from ``make_rows()`` (an iterable of row dicts) the
    first time. Every later start, in any rank, memory-maps it."""

    def build(tmp: Path) -> dict:
        write_arrow(tmp / "examples.arrow", SCHEMA, record_batches(make_rows(), SCHEMA, source))
        store = ArrowStore.open(tmp / "examples.arrow", source)
        index = _index(store, name)
        corpus = _corpus(store, index, name)
        write_index(tmp, index)
        np.save(tmp / "groups.npy", corpus.group_ranks())
        log.info("corpus cache: %s: %d examples, %d ids", source, store.table.num_rows, index.n_ids)
        return {
            "format_version": FORMAT_VERSION,
            "source": source,
            "examples": store.table.num_rows,
            "ids": index.n_ids,
            "langs": index.langs,
        }

    return _open(cached_folder(cache_dir, name, key, build), source, name)


def write_index(folder: Path, index: LanguageIndex) -> None:
    """The id x language index as ``ids.arrow`` + ``rows.npy`` (its languages go into the folder's meta)."""
    ids_schema = pa.schema([("id", pa.string())])
    write_arrow(folder / "ids.arrow", ids_schema, [pa.record_batch([index.ids.array], schema=ids_schema)])
    np.save(folder / "rows.npy", index.rows)


def open_index(folder: Path, langs: list[str], groups: np.ndarray | None = None) -> LanguageIndex:
    """The index ``write_index`` wrote, memory-mapped: every rank of a node shares its pages."""
    ids = map_arrow(folder / "ids.arrow")[0].column(0)
    return LanguageIndex(ids, langs, np.load(folder / "rows.npy", mmap_mode="r"), groups)


def _open(folder: Path, source: str, name: str) -> ParallelCorpus:
    meta = json.loads((folder / "meta.json").read_text())
    store = ArrowStore.open(folder / "examples.arrow", source)
    index = open_index(folder, meta["langs"], np.load(folder / "groups.npy", mmap_mode="r"))
    log.info("corpus cache: %s (%d examples, %d ids, memory-mapped)", folder, meta["examples"], meta["ids"])
    return ParallelCorpus(store, name, index=index, cache_folder=folder)
