"""Reader for users' own translated training data: one JSON object per line.

``{"id": ..., "lang": ..., "query": ..., "positive": ..., "negatives": [...]}``; ``negatives`` and
``group`` (an article key for splits) are optional. Translations of a question share ``id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from mdr.data.arrow_store import build_in_memory, cached_corpus, fingerprint
from mdr.data.corpus import ParallelCorpus
from mdr.data.errors import DataFormatError
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.inputs import decode_line

REQUIRED = ("id", "lang", "query", "positive")


def iter_jsonl(path: str | Path, what: str = "JSONL file") -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line, streamed. A missing or empty file, bad bytes, a line
    that is not JSON or not an object: one error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{what} {path} does not exist; check the path")
    seen_any = False
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = decode_line(raw, first=lineno == 1)
            except UnicodeDecodeError as e:
                raise DataFormatError(
                    f"{path}:{lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); save the "
                    f"{what} as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(
                    f"{path}:{lineno}: not valid JSON ({e.msg}, column {e.colno}); each line must be one JSON "
                    "object (a truncated file ends mid-line)"
                ) from None
            if not isinstance(row, dict):
                raise DataFormatError(
                    f"{path}:{lineno}: a JSON {type(row).__name__}, not an object; each line must be one "
                    '{"key": value, ...} object'
                )
            seen_any = True
            yield lineno, row
    if not seen_any:
        raise DataFormatError(f"{what} {path} is empty; it needs one JSON object per line")


def parallel_rows(path: Path) -> Iterator[dict]:
    """The file's examples as row dicts (``mdr.data.arrow_store.SCHEMA``), each checked; a bad line stops the
    read with its file and line."""
    for lineno, row in iter_jsonl(path, "parallel JSONL file"):
        missing = [k for k in REQUIRED if not isinstance(row.get(k), str) or not row.get(k)]
        if missing:
            raise DataFormatError(
                f"{path}:{lineno}: missing or empty string field(s) {missing}; required: {list(REQUIRED)}"
            )
        negatives = row.get("negatives", [])
        if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
            raise DataFormatError(f"{path}:{lineno}: 'negatives' must be a list of strings")
        yield {
            "line": lineno,
            "id": row["id"],
            "lang": row["lang"],
            "query": row["query"],
            "positive": row["positive"],
            "negatives": negatives,
            "group": str(row.get("group", row["id"])),
        }


def read_parallel_jsonl(
    path: str | Path,
    langs: list[str] | None = None,
    name: str | None = None,
    cache_dir: str | Path | None = None,
) -> ParallelCorpus:
    """The file as a corpus. With ``cache_dir`` it is converted once to memory-mapped Arrow there (see
    ``arrow_store``) and every later start maps it; without, it is read into memory."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"parallel JSONL file {path} does not exist: set data.train.path to your file"
        )
    name = name or path.stem
    if cache_dir is None:
        corpus = build_in_memory(parallel_rows(path), str(path), name)
    else:
        key = fingerprint([path], {"reader": "parallel_jsonl"})
        corpus = cached_corpus(lambda: parallel_rows(path), cache_dir, key, str(path), name)
    if langs is not None:
        unknown = sorted(set(langs) - set(corpus.langs))
        if unknown:
            raise InputError(
                f"language(s) {unknown} have no data in {path} (it has {corpus.langs}); fix data.train.langs"
            )
        corpus = corpus.subset(langs=langs)
    return corpus
