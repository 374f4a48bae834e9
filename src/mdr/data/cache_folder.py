"""Build-once folders of memory-mapped data, shared by every process of a node (training corpora, search corpora).

A folder is named by a fingerprint of its source, built under a temporary name while a file lock is held,
and renamed when complete with ``meta.json`` written last: concurrent ranks build it once, and a killed
build leaves nothing that looks finished. Arrow IPC files written here are read back zero-copy through a
memory map, so the operating system's page cache holds one copy however many processes read them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
from filelock import FileLock

from mdr.data.content_hash import content_digest

log = logging.getLogger(__name__)

BATCH_ROWS = 65536
PROGRESS_EVERY = 500_000


def fingerprint(paths: list[Path], settings: dict, version: int) -> str:
    """Source identity for a cache folder's name: each local file's content hash (``mdr.data.content_hash``;
    not its path or modification time, so a same-size rewrite gets a new cache and a moved file keeps its
    own), the reader's settings and the folder format's version."""
    files = [[path.stat().st_size, content_digest(path)] for path in paths]
    key = json.dumps([files, settings, version], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def cached_folder(cache_dir: str | Path, name: str, key: str, build: Callable[[Path], dict]) -> Path:
    """``cache_dir/<name>-<key>``, made by ``build(tmp_folder)`` (which returns the meta to record) the first
    time; every later call, in any process, finds it complete."""
    folder = Path(cache_dir) / f"{name}-{key}"
    if (folder / "meta.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if (folder / "meta.json").is_file():
            return folder
        started = time.perf_counter()
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            meta = build(tmp)
            meta["build_s"] = round(time.perf_counter() - started, 2)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            shutil.rmtree(
                folder, ignore_errors=True
            )  # a folder without meta.json: an interrupted older build
            tmp.rename(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("cache: built %s in %.1f s", folder, meta["build_s"])
    return folder


def record_batches(rows: Iterable[dict], schema: pa.Schema, source: str) -> Iterator[pa.RecordBatch]:
    """Row dicts -> record batches of ``BATCH_ROWS`` rows (memory bounded by one batch); progress in the log."""
    columns: dict[str, list] = {name: [] for name in schema.names}
    started, count = time.perf_counter(), 0
    for row in rows:
        for name in schema.names:
            columns[name].append(row[name])
        count += 1
        if count % PROGRESS_EVERY == 0:
            rate = count / (time.perf_counter() - started)
            log.info("cache: %s: %d rows read (%.0f/s)", source, count, rate)
        if len(columns[schema.names[0]]) == BATCH_ROWS:
            yield pa.RecordBatch.from_pydict(columns, schema=schema)
            columns = {name: [] for name in schema.names}
    if columns[schema.names[0]]:
        yield pa.RecordBatch.from_pydict(columns, schema=schema)


def write_arrow(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
    """Batches into an Arrow IPC file; returns the rows written."""
    n = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            n += batch.num_rows
    return n


def map_arrow(path: Path) -> list[pa.RecordBatch]:
    """An Arrow IPC file's record batches, memory-mapped (zero-copy)."""
    reader = pa.ipc.open_file(pa.memory_map(str(path)))
    return [reader.get_batch(i) for i in range(reader.num_record_batches)]
