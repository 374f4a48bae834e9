"""Query perturbations for robustness evaluation: character noise, word dropping, word-order swaps, code-switching.

Every perturbation is deterministic for (seed, kind, rate, query language, question id) whatever the order
of the queries, and changes about ``rate`` of the query's units:
- ``char_noise``: each non-space character is, with probability ``rate``, deleted, replaced by another
  character of the same query, doubled, or swapped with its right neighbour;
- ``word_drop``: each word is dropped with probability ``rate`` (at least one word is kept);
- ``word_swap``: ``rate * n / 2`` (rounded at random, keeping the expectation) disjoint pairs of adjacent words are swapped (about ``rate`` of the
  words move);
- ``code_switch``: the query's first ``1 - rate`` of words followed by the last ``rate`` of the words of the
  same question in another language of the set (two translations' halves mixed; no word alignments are
  available offline, which the other variant of code-switching needs).

"Words" are whitespace tokens; a query without whitespace (Chinese, Thai, Japanese) is split into characters.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from mdr.data.corpus import RetrievalSet
from mdr.data.names import perturbed_name
from mdr.runtime.errors import InputError

KINDS = ("char_noise", "word_drop", "word_swap", "code_switch")


def stochastic_round(x: float, rng: np.random.Generator) -> int:
    """floor(x) or floor(x) + 1 with the expectation x: small rates still act on short queries."""
    base = int(np.floor(x))
    return base + int(rng.random() < x - base)


def split_units(text: str) -> tuple[list[str], str]:
    """Words and the string that joins them back (characters and "" for unspaced scripts)."""
    words = text.split()
    if len(words) <= 1 and len(text.strip()) > 1:
        return list(text.strip()), ""
    return words, " "


def char_noise(text: str, rate: float, rng: np.random.Generator) -> str:
    chars = list(text)
    alphabet = [c for c in chars if not c.isspace()] or ["x"]
    out: list[str] = []
    i = 0
    while i < len(chars):
        c = chars[i]
        if c.isspace() or rng.random() >= rate:
            out.append(c)
            i += 1
            continue
        op = rng.integers(4)
        if op == 0:  # delete
            pass
        elif op == 1:  # substitute
            out.append(alphabet[rng.integers(len(alphabet))])
        elif op == 2:  # insert (double)
            out += [c, c]
        elif i + 1 < len(chars) and not chars[i + 1].isspace():  # swap with the right neighbour
            out += [chars[i + 1], c]
            i += 1
        else:
            out.append(alphabet[rng.integers(len(alphabet))])
        i += 1
    return "".join(out)


def word_drop(text: str, rate: float, rng: np.random.Generator) -> str:
    units, sep = split_units(text)
    if len(units) <= 1:
        return text
    keep = rng.random(len(units)) >= rate
    if keep.all():
        return text  # untouched, whitespace included
    if not keep.any():
        keep[rng.integers(len(units))] = True
    return sep.join(u for u, k in zip(units, keep) if k)


def word_swap(text: str, rate: float, rng: np.random.Generator) -> str:
    units, sep = split_units(text)
    n = len(units)
    pairs = stochastic_round(rate * n / 2, rng)
    if n < 2 or pairs == 0:
        return text
    free = np.ones(n, dtype=bool)
    for start in rng.permutation(n - 1):
        if pairs == 0:
            break
        if free[start] and free[start + 1]:
            units[start], units[start + 1] = units[start + 1], units[start]
            free[start] = free[start + 1] = False
            pairs -= 1
    return sep.join(units)


def code_switch(text: str, other: str, rate: float, rng: np.random.Generator) -> str:
    own, own_sep = split_units(text)
    foreign, foreign_sep = split_units(other)
    n_take = stochastic_round(rate * len(foreign), rng)
    n_drop = stochastic_round(rate * len(own), rng)
    if n_take == 0 and n_drop == 0:
        return text
    keep = own[: len(own) - n_drop]
    take = foreign[len(foreign) - n_take :] if n_take else []
    parts = [p for p in (own_sep.join(keep), foreign_sep.join(take)) if p]
    return " ".join(parts) if parts else text


def _rng(seed: int, kind: str, rate: float, lang: str, qid: str) -> np.random.Generator:
    key = zlib.crc32(f"{kind}|{rate:.6f}|{lang}|{qid}".encode())
    return np.random.default_rng([seed, key])


def perturb_text(
    text: str, kind: str, rate: float, rng: np.random.Generator, other: str | None = None
) -> str:
    if kind == "char_noise":
        return char_noise(text, rate, rng)
    if kind == "word_drop":
        return word_drop(text, rate, rng)
    if kind == "word_swap":
        return word_swap(text, rate, rng)
    if kind == "code_switch":
        return text if other is None else code_switch(text, other, rate, rng)
    raise InputError(f"unknown perturbation kind {kind!r} in eval.perturb; choose one of {KINDS}")


def check_perturbations(specs: list[dict]) -> list[tuple[str, float]]:
    """Validate ``eval.perturb`` entries (``{kind: ..., rate: ...}``) before any encoding."""
    out = []
    for spec in specs:
        kind, rate = spec.get("kind"), spec.get("rate")
        if kind not in KINDS:
            raise InputError(f"unknown perturbation kind {kind!r} in eval.perturb; choose one of {KINDS}")
        if rate is None or not 0.0 <= float(rate) <= 1.0:
            raise InputError(f"eval.perturb rate {rate!r} for {kind}: give a share in [0, 1]")
        out.append((kind, float(rate)))
    return out


def perturb_set(rs: RetrievalSet, kind: str, rate: float, seed: int = 0) -> tuple[RetrievalSet, int]:
    """A copy of ``rs`` with perturbed queries; also the number of queries left unchanged.

    Code-switching takes the other language at random among the languages that hold the same question.
    """
    by_id: dict[str, dict[str, str]] = {}
    for qid, lang, text in zip(rs.query_ids, rs.query_langs, rs.query_texts):
        by_id.setdefault(qid, {})[lang] = text
    texts = []
    for qid, lang, text in zip(rs.query_ids, rs.query_langs, rs.query_texts):
        rng = _rng(seed, kind, rate, lang, qid)
        other = None
        if kind == "code_switch":
            others = sorted(lg for lg in by_id[qid] if lg != lang)
            other = by_id[qid][others[rng.integers(len(others))]] if others else None
        texts.append(perturb_text(text, kind, rate, rng, other))
    unchanged = sum(a == b for a, b in zip(texts, rs.query_texts))
    return dataclasses.replace(rs, name=perturbed_name(rs.name, kind, rate), query_texts=texts), unchanged
