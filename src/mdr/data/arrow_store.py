"""Training corpora as memory-mapped Arrow, built once per source file and shared by every rank of a node.

A cache folder holds ``examples.arrow`` (the examples, one record batch per ``BATCH_ROWS``), the id x
language index (``ids.arrow``, ``rows.npy``), each id's group rank for splits (``groups.npy``) and ``meta.json``, written last (the done marker). A folder is
built under a temporary name and renamed when complete, under a file lock, so concurrent ranks build it
once and a killed build leaves nothing that looks finished. The folder's name carries a fingerprint of
the source (path, size, modification time, reader settings, format version): a changed file gets a new
cache. Pages are the operating system's page cache: ranks on one node share them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
from filelock import FileLock

from mdr.data.corpus import ParallelCorpus, ParallelExample
from mdr.data.language_index import LanguageIndex

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: groups.npy
BATCH_ROWS = 65536
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
PROGRESS_EVERY = 500_000


class ArrowStore:
    """Examples read from Arrow record batches of ``BATCH_ROWS`` rows (memory-mapped, or in memory)."""

    def __init__(self, batches: list[pa.RecordBatch], source: str):
        self.batches, self.source = batches, source
        self.table = pa.Table.from_batches(batches, schema=SCHEMA)

    @classmethod
    def open(cls, path: Path, source: str) -> ArrowStore:
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        return cls([reader.get_batch(i) for i in range(reader.num_record_batches)], source)

    def example(self, row: int) -> ParallelExample:
        batch, offset = divmod(row, BATCH_ROWS)
        values = {name: col[offset].as_py() for name, col in zip(SCHEMA.names, self.batches[batch].columns)}
        return ParallelExample(
            id=values["id"],
            lang=values["lang"],
            query=values["query"],
            positive=values["positive"],
            negatives=tuple(values["negatives"] or ()),
            group=values["group"],
        )

    def group_values(self, rows: np.ndarray) -> pa.Array:
        return self.table.column("group").take(pa.array(np.asarray(rows, dtype=np.int64))).combine_chunks()

    def where(self, row: int) -> str:
        batch, offset = divmod(row, BATCH_ROWS)
        return f"{self.source}:{self.batches[batch].column(0)[offset].as_py()}"


def _record_batches(rows: Iterable[dict], source: str) -> Iterable[pa.RecordBatch]:
    """Rows (dicts with SCHEMA's keys) -> record batches of BATCH_ROWS rows; progress in the log."""
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    started, count = time.perf_counter(), 0
    for row in rows:
        for name in SCHEMA.names:
            columns[name].append(row[name])
        count += 1
        if count % PROGRESS_EVERY == 0:
            log.info(
                "corpus cache: %s: %d examples read (%.0f/s)",
                source,
                count,
                count / (time.perf_counter() - started),
            )
        if len(columns["id"]) == BATCH_ROWS:
            yield pa.RecordBatch.from_pydict(columns, schema=SCHEMA)
            columns = {name: [] for name in SCHEMA.names}
    if columns["id"]:
        yield pa.RecordBatch.from_pydict(columns, schema=SCHEMA)


def build_in_memory(rows: Iterable[dict], source: str, name: str) -> ParallelCorpus:
    """The corpus without a cache folder (small files, tests): the same store and index, in memory."""
    store = ArrowStore(list(_record_batches(rows, source)), source)
    return _corpus(store, _index(store, name), name)


def _index(store: ArrowStore, name: str) -> LanguageIndex:
    return LanguageIndex.build(store.table.column("id"), store.table.column("lang"), name, where=store.where)


def _corpus(store: ArrowStore, index: LanguageIndex, name: str) -> ParallelCorpus:
    corpus = ParallelCorpus(store, name, index=index)
    corpus.check_groups()  # at build, not at every start
    return corpus


def fingerprint(paths: list[Path], settings: dict) -> str:
    """Source identity for the cache folder's name: each local file's path, size and modification time (as
    HF ``datasets`` does for local files), the reader's settings and this format's version."""
    files = []
    for path in paths:
        stat = path.stat()
        files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    key = json.dumps([files, settings, FORMAT_VERSION], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def cached_corpus(
    make_rows: Callable[[], Iterable[dict]], cache_dir: str | Path, key: str, source: str, name: str
) -> ParallelCorpus:
    """The corpus from ``cache_dir/<name>-<key>``, built from ``make_rows()`` (an iterable of row dicts) the
    first time. Every later start, in any rank, memory-maps it."""
    folder = Path(cache_dir) / f"{name}-{key}"
    if not (folder / "meta.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            if not (folder / "meta.json").is_file():
                _build(folder, make_rows(), source, name)
    return _open(folder, source, name)


def _build(folder: Path, rows: Iterable[dict], source: str, name: str) -> None:
    started = time.perf_counter()
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with pa.OSFile(str(tmp / "examples.arrow"), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
            for batch in _record_batches(rows, source):
                writer.write_batch(batch)
        store = ArrowStore.open(tmp / "examples.arrow", source)
        index = _index(store, name)
        _corpus(store, index, name)
        with pa.OSFile(str(tmp / "ids.arrow"), "wb") as sink:
            ids_schema = pa.schema([("id", pa.string())])
            with pa.ipc.new_file(sink, ids_schema) as writer:
                writer.write_table(pa.table({"id": index.ids.array}, schema=ids_schema))
        np.save(tmp / "rows.npy", index.rows)
        np.save(tmp / "groups.npy", ParallelCorpus(store, name, index=index).group_ranks())
        meta = {
            "format_version": FORMAT_VERSION,
            "source": source,
            "examples": store.table.num_rows,
            "ids": index.n_ids,
            "langs": index.langs,
            "build_s": round(time.perf_counter() - started, 2),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        shutil.rmtree(folder, ignore_errors=True)  # a folder without meta.json: an interrupted older build
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "corpus cache: built %s from %s (%d examples, %d ids) in %.1f s",
        folder,
        source,
        meta["examples"],
        meta["ids"],
        meta["build_s"],
    )


def _open(folder: Path, source: str, name: str) -> ParallelCorpus:
    meta = json.loads((folder / "meta.json").read_text())
    store = ArrowStore.open(folder / "examples.arrow", source)
    ids = pa.ipc.open_file(pa.memory_map(str(folder / "ids.arrow"))).get_batch(0).column(0)
    rows = np.load(folder / "rows.npy", mmap_mode="r")
    groups = np.load(folder / "groups.npy", mmap_mode="r")
    log.info("corpus cache: %s (%d examples, %d ids, memory-mapped)", folder, meta["examples"], meta["ids"])
    return ParallelCorpus(store, name, index=LanguageIndex(ids, meta["langs"], rows, groups))
