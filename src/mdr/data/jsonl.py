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

REQUIRED = ("id", "lang", "query", "positive")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a line that is not JSON names its file and line."""
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(
                    f"{path}:{lineno}: not valid JSON ({e}); each line must be one JSON object"
                ) from e


def read_parallel_jsonl(
    path: str | Path, langs: list[str] | None = None, name: str | None = None
) -> ParallelCorpus:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"parallel JSONL file {path} does not exist: set data.train.path to your file"
        )
    examples = []
    for lineno, row in iter_jsonl(path):
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
            raise ValueError(
                f"language(s) {unknown} have no data in {path} (it has {corpus.langs}); fix data.train.langs"
            )
        corpus = corpus.subset(langs=langs)
    return corpus
