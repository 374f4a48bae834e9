"""The id x language index the samplers draw from, as arrays rather than Python objects.

``rows[i, k]`` is the storage row of id ``i`` (in sorted id order) in language ``k`` (sorted), or -1 where the id
has no example in that language. At mMARCO scale (7.5 M examples) this is a few bytes per example, can be
memory-mapped from the corpus cache and shared by every rank of a node; dicts of Python strings were ~880 bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdr.runtime.errors import InputError


def arrow_positions(positions) -> pa.Array:
    """Row positions as an Arrow int64 array, zero-copy. (``pa.array`` on a numpy array imports pandas to
    check its type: 0.3 s of every start.)"""
    arr = np.ascontiguousarray(positions, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(arr), [None, pa.py_buffer(arr)])


class IdSequence(Sequence):
    """Sorted question ids backed by an Arrow string array: a Python ``str`` only for the ids asked for."""

    def __init__(self, ids: pa.Array):
        self.array = ids

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.array[i].to_pylist()
        return self.array[int(i)].as_py()

    def __iter__(self) -> Iterator[str]:
        for chunk in range(0, len(self.array), 65536):
            yield from self.array[chunk : chunk + 65536].to_pylist()

    def __eq__(self, other) -> bool:
        if isinstance(other, IdSequence):
            return self.array.equals(other.array)
        return isinstance(other, (list, tuple)) and len(other) == len(self) and list(self) == list(other)

    __hash__ = None  # mutable-looking sequence semantics, like list

    def __repr__(self) -> str:
        return f"IdSequence({len(self)} ids)"

    def __contains__(self, id_) -> bool:
        return isinstance(id_, str) and self.position_or_none([id_])[0] >= 0

    def take(self, positions: np.ndarray) -> list[str]:
        return self.array.take(arrow_positions(positions)).to_pylist()

    def position_or_none(self, ids: Sequence[str]) -> np.ndarray:
        """Positions of ``ids``; -1 for an id that is not here."""
        found = pc.index_in(pa.array(list(ids), type=pa.string()), value_set=self.array)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


class LanguageIndex:
    """Which (id, language) pairs exist and where each one is stored."""

    def __init__(
        self, ids: pa.Array, langs: Sequence[str], rows: np.ndarray, group_ranks: np.ndarray | None = None
    ):
        if rows.shape != (len(ids), len(langs)):
            raise ValueError(f"index rows {rows.shape} do not match {len(ids)} ids x {len(langs)} languages")
        self.ids, self.langs, self.rows = IdSequence(ids), list(langs), rows
        # per id, the rank of its group among the sorted group names (splits need only the order); None until known
        self.group_ranks = group_ranks
        self._lang_pos = {lang: k for k, lang in enumerate(self.langs)}

    @classmethod
    def build(cls, ids: pa.Array | pa.ChunkedArray, langs: pa.Array | pa.ChunkedArray, name: str, where=None):
        """From one id and one language value per storage row. A repeated (id, language) is an error;
        ``where(row)`` names the row's origin (``file:line``) in that error."""
        id_values = pc.unique(ids).sort()
        lang_values = pc.unique(langs).sort()
        id_pos = pc.index_in(ids, value_set=id_values).to_numpy().astype(np.int64)
        lang_pos = pc.index_in(langs, value_set=lang_values).to_numpy().astype(np.int64)
        cell = id_pos * len(lang_values) + lang_pos
        counts = np.bincount(cell, minlength=len(id_values) * len(lang_values))
        if counts.max(initial=0) > 1:
            twice = int(np.flatnonzero(counts > 1)[0])
            first, second = np.flatnonzero(cell == twice)[:2]
            id_, lang = (
                id_values[twice // len(lang_values)].as_py(),
                lang_values[twice % len(lang_values)].as_py(),
            )
            at = f" ({where(int(first))} and {where(int(second))})" if where else ""
            raise InputError(
                f"{name}: id {id_!r} appears twice in language {lang!r}{at}; ids must be unique per language"
            )
        dtype = np.int32 if len(cell) < 2**31 else np.int64
        rows = np.full((len(id_values), len(lang_values)), -1, dtype=dtype)
        rows[id_pos, lang_pos] = np.arange(len(cell), dtype=dtype)
        return cls(id_values, lang_values.to_pylist(), rows)

    @property
    def n_ids(self) -> int:
        return len(self.ids)

    def lang_position(self, lang: str) -> int:
        return self._lang_pos[lang]

    def present(self, lang: str) -> np.ndarray:
        return self.rows[:, self._lang_pos[lang]] >= 0

    def in_lang(self, lang: str) -> np.ndarray:
        """Positions of the ids that exist in ``lang``, in id order."""
        return np.flatnonzero(self.present(lang))

    def in_pair(self, query_lang: str, passage_lang: str) -> np.ndarray:
        return np.flatnonzero(self.present(query_lang) & self.present(passage_lang))

    def lang_counts(self) -> np.ndarray:
        """Per id, how many languages it exists in."""
        return (np.asarray(self.rows) >= 0).sum(axis=1)

    def langs_at(self, position: int) -> list[str]:
        return [self.langs[k] for k in np.flatnonzero(self.rows[position] >= 0)]

    def row(self, position: int, lang: str) -> int:
        r = int(self.rows[position, self._lang_pos[lang]])
        if r < 0:
            raise KeyError(f"id {self.ids[position]!r} has no example in {lang!r}")
        return r

    def subset(
        self, positions: np.ndarray | None = None, langs: Sequence[str] | None = None
    ) -> LanguageIndex:
        """The index restricted to some ids and languages; ids and languages left without any example drop out,
        as they did from the in-memory corpus."""
        rows = np.asarray(self.rows)
        ids, groups = self.ids.array, self.group_ranks
        if positions is not None:
            positions = np.asarray(positions, dtype=np.int64)
            rows, ids = rows[positions], ids.take(arrow_positions(positions))
            groups = groups[positions] if groups is not None else None
        keep_langs = [k for k, lang in enumerate(self.langs) if langs is None or lang in set(langs)]
        rows = rows[:, keep_langs]
        lang_names = [self.langs[k] for k in keep_langs]
        has = rows >= 0
        keep_cols = np.flatnonzero(has.any(axis=0))
        keep_ids = np.flatnonzero(has[:, keep_cols].any(axis=1))
        if len(keep_ids) < len(ids):
            rows, ids = rows[keep_ids], ids.take(arrow_positions(keep_ids))
        return LanguageIndex(
            ids, [lang_names[k] for k in keep_cols], np.ascontiguousarray(rows[:, keep_cols])
        )
