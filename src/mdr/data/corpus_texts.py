"""Search corpora (MIRACL, BEIR layout) as memory-mapped Arrow: docids and texts without one Python string per
passage. MIRACL-de's 15.9 M passages as Python lists would take ~10 GB in every process; here they are one
cached file per corpus, read a shard at a time by the sharded encoder (``mdr.eval.shards``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from mdr.data.cache_folder import (
    BATCH_ROWS,
    cached_folder,
    fingerprint,
    map_arrow,
    record_batches,
    write_arrow,
)
from mdr.data.errors import DataFormatError
from mdr.data.jsonl import iter_jsonl

FORMAT_VERSION = 1
SCHEMA = pa.schema([("line", pa.int64()), ("docid", pa.string()), ("text", pa.string())])


class TextColumn(Sequence):
    """One string column of record batches of ``BATCH_ROWS`` rows (the last may be shorter)."""

    def __init__(self, batches: list[pa.RecordBatch], column: str):
        self.chunks = [b.column(column) for b in batches]
        self.size = sum(len(c) for c in self.chunks)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i):
        if isinstance(i, slice):
            start, stop, step = i.indices(self.size)
            if step != 1:
                return [self[j] for j in range(start, stop, step)]
            out: list[str] = []
            while start < stop:
                chunk, offset = divmod(start, BATCH_ROWS)
                take = min(stop - start, BATCH_ROWS - offset)
                out.extend(self.chunks[chunk].slice(offset, take).to_pylist())
                start += take
            return out
        if i < 0:
            i += self.size
        if not 0 <= i < self.size:
            raise IndexError(i)
        chunk, offset = divmod(int(i), BATCH_ROWS)
        return self.chunks[chunk][offset].as_py()

    def __iter__(self) -> Iterator[str]:
        for chunk in self.chunks:
            yield from chunk.to_pylist()


def corpus_rows(path: Path) -> Iterator[dict]:
    """A corpus JSONL's documents (``docid`` or ``_id``, ``text``, optional ``title`` put before the text)."""
    for lineno, row in iter_jsonl(path, "corpus file"):
        docid = row.get("docid", row.get("_id"))
        if docid is None or "text" not in row:
            raise DataFormatError(f"{path}:{lineno}: a corpus line needs 'docid' (or '_id') and 'text'")
        title = row.get("title") or ""
        yield {
            "line": lineno,
            "docid": str(docid),
            "text": f"{title} {row['text']}".strip() if title else row["text"],
        }


def _check_unique(batches: list[pa.RecordBatch], source: str) -> None:
    docids = pa.chunked_array([b.column("docid") for b in batches], type=pa.string())
    if pc.count_distinct(docids).as_py() == len(docids):
        return
    counts = pc.value_counts(docids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
    lines = (
        pa.chunked_array([b.column("line") for b in batches]).filter(pc.equal(docids, repeated)).to_pylist()
    )
    raise DataFormatError(
        f"{source}:{lines[1]}: docid {repeated!r} repeats line {lines[0]}; docids must be unique"
    )


def cached_corpus_texts(
    make_rows: Callable[[], Iterable[dict]], cache_dir: str | Path, key: str, name: str, source: str
) -> tuple[TextColumn, TextColumn]:
    """(docids, texts) of a corpus, converted once into ``cache_dir`` and memory-mapped from then on; a repeated
    docid fails the build with its two lines."""

    def build(tmp: Path) -> dict:
        n = write_arrow(tmp / "docs.arrow", SCHEMA, record_batches(make_rows(), SCHEMA, source))
        _check_unique(map_arrow(tmp / "docs.arrow"), source)
        return {"format_version": FORMAT_VERSION, "source": source, "docs": n}

    batches = map_arrow(cached_folder(cache_dir, name, key, build) / "docs.arrow")
    return TextColumn(batches, "docid"), TextColumn(batches, "text")


def read_corpus_texts(path: str | Path, cache_dir: str | Path) -> tuple[TextColumn, TextColumn]:
    """A corpus JSONL file, through the cache (named by the file's fingerprint)."""
    path = Path(path)
    key = fingerprint([path], {"reader": "corpus_jsonl"}, FORMAT_VERSION)
    return cached_corpus_texts(lambda: corpus_rows(path), cache_dir, key, f"corpus-{path.stem}", str(path))
