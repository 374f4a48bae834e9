"""Reader for users' own translated training data: one JSON object per line.

``{"id": ..., "lang": ..., "query": ..., "positive": ..., "negatives": [...]}``; ``negatives`` and
``group`` (an article key for splits) are optional. Translations of a question share ``id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from mdr.data.corpus import ParallelCorpus, ParallelExample
from mdr.data.errors import DataFormatError
from mdr.runtime.errors import InputError, MissingInputError

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
                line = raw.decode("utf-8")
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


def read_parallel_jsonl(
    path: str | Path, langs: list[str] | None = None, name: str | None = None
) -> ParallelCorpus:
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"parallel JSONL file {path} does not exist: set data.train.path to your file"
        )
    examples = []
    for lineno, row in iter_jsonl(path, "parallel JSONL file"):
        missing = [k for k in REQUIRED if not isinstance(row.get(k), str) or not row.get(k)]
        if missing:
            raise DataFormatError(
                f"{path}:{lineno}: missing or empty string field(s) {missing}; required: {list(REQUIRED)}"
            )
        negatives = row.get("negatives", [])
        if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
            raise DataFormatError(f"{path}:{lineno}: 'negatives' must be a list of strings")
        examples.append(
            ParallelExample(
                id=row["id"],
                lang=row["lang"],
                query=row["query"],
                positive=row["positive"],
                negatives=tuple(negatives),
                group=str(row.get("group", row["id"])),
            )
        )
    corpus = ParallelCorpus(examples, name or path.stem)
    if langs is not None:
        unknown = sorted(set(langs) - set(corpus.langs))
        if unknown:
            raise InputError(
                f"language(s) {unknown} have no data in {path} (it has {corpus.langs}); fix data.train.langs"
            )
        corpus = corpus.subset(langs=langs)
    return corpus
