"""Candidate edits of a query for adversarial attacks: one edit changes one word (or one character of
an unspaced script), in the spirit of DeepWordBug (character operations) plus word operations.

Character operations, each at one position of a word chosen by the caller's random generator:
``delete`` a character, ``swap`` two adjacent ones, ``insert`` a character of the query's own alphabet,
replace one by a QWERTY ``neighbour`` (Latin letters only) or by a ``homoglyph`` (a Latin / Cyrillic /
Greek look-alike). Word operations: ``drop`` the word, or ``translate`` it: replace it by the word at the
same relative position of a translation of the same question in another language (our parallel data
gives the translation; no word alignments exist offline, so the position is the alignment).

A query is held as its units (``mdr.data.perturb.split_units``: words, or characters of an unspaced
script) so that edits keep their positions: a dropped word becomes "" and is skipped when joining.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mdr.data.perturb import split_units
from mdr.runtime.errors import InputError

CHAR_OPS = ("delete", "swap", "insert", "neighbour", "homoglyph")
WORD_OPS = ("drop", "translate")
OPS = (*CHAR_OPS, *WORD_OPS)

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """Letters next to each letter on a QWERTY keyboard (same row, and the row above / below)."""
    pos = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    out = {}
    for c, (r, i) in pos.items():
        near = []
        for rr in (r - 1, r, r + 1):
            if 0 <= rr < len(_ROWS):
                near += [d for d in _ROWS[rr][max(0, i - 1) : i + 2] if d != c]
        out[c] = "".join(near)
    return out


KEYBOARD = _keyboard_neighbours()
# look-alikes across scripts (both directions), the classic homoglyph substitutions
_PAIRS = "aа cс eе oо pр xх yу iі sѕ jј AА BВ CС EЕ HН KК MМ OО PР TТ XХ oο vν"
HOMOGLYPHS: dict[str, str] = {}
for _pair in _PAIRS.split():
    HOMOGLYPHS.setdefault(_pair[0], _pair[1])
    HOMOGLYPHS.setdefault(_pair[1], _pair[0])


@dataclass(frozen=True)
class Edit:
    """One edit: operation, unit index, the unit before and after."""

    op: str
    unit: int
    before: str
    after: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Query:
    """A query as units and their separator (" " for words, "" for characters of unspaced scripts)."""

    units: tuple[str, ...]
    sep: str

    @classmethod
    def of(cls, text: str) -> Query:
        units, sep = split_units(text)
        return cls(tuple(units), sep)

    @property
    def text(self) -> str:
        return self.sep.join(u for u in self.units if u)

    def apply(self, edit: Edit) -> Query:
        if self.units[edit.unit] != edit.before:
            raise InputError(f"edit {edit} does not match unit {self.units[edit.unit]!r}")
        units = list(self.units)
        units[edit.unit] = edit.after
        return Query(tuple(units), self.sep)


def counterpart(query: Query, i: int, translation: Query | None) -> str | None:
    """The translation's unit at the same relative position as unit ``i`` (the positional alignment)."""
    if translation is None:
        return None
    words = [u for u in translation.units if u]
    if not words:
        return None
    n = len(query.units)
    j = round(i * (len(words) - 1) / (n - 1)) if n > 1 else 0
    return words[j]


def _char_edit(op: str, word: str, alphabet: str, rng: np.random.Generator) -> str | None:
    """``word`` after one character operation at a position drawn by ``rng`` (None: not applicable)."""
    if op == "delete":
        if len(word) < 2:
            return None  # deleting a word's only character is a word drop
        p = int(rng.integers(len(word)))
        return word[:p] + word[p + 1 :]
    if op == "swap":
        spots = [p for p in range(len(word) - 1) if word[p] != word[p + 1]]
        if not spots:
            return None
        p = spots[int(rng.integers(len(spots)))]
        return word[:p] + word[p + 1] + word[p] + word[p + 2 :]
    if op == "insert":
        p = int(rng.integers(len(word) + 1))
        return word[:p] + alphabet[int(rng.integers(len(alphabet)))] + word[p:]
    table = HOMOGLYPHS if op == "homoglyph" else None
    spots = [p for p, c in enumerate(word) if (c in table if table else c.lower() in KEYBOARD)]
    if not spots:
        return None
    p = spots[int(rng.integers(len(spots)))]
    c = word[p]
    if table:
        new = table[c]
    else:
        near = KEYBOARD[c.lower()]
        new = near[int(rng.integers(len(near)))]
        new = new.upper() if c.isupper() else new
    return word[:p] + new + word[p + 1 :]


def candidate_edits(
    query: Query,
    ops: tuple[str, ...],
    rng: np.random.Generator,
    translation: Query | None = None,
) -> list[Edit]:
    """Every applicable edit of ``query`` (one per word and operation), in a fixed order; edits that would
    leave the query's text unchanged or empty are left out."""
    alphabet = "".join(sorted({c for u in query.units for c in u if not c.isspace()})) or "x"
    live = sum(1 for u in query.units if u)
    out, seen = [], {query.text}
    for i, word in enumerate(query.units):
        if not word:
            continue
        for op in ops:
            if op == "drop":
                after = "" if live > 1 else None
            elif op == "translate":
                after = counterpart(query, i, translation)
            else:
                after = _char_edit(op, word, alphabet, rng)
            if after is None or after == word:
                continue
            edit = Edit(op, i, word, after)
            text = query.apply(edit).text
            if text and text not in seen:
                seen.add(text)
                out.append(edit)
    return out
