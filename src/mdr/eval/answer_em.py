"""Answer EM@k: does any of the top k retrieved sentences contain the gold answer text?

The retrieval side of "exact match across language pairs": for a query and a pool language y, a hit at
k when one of the top k sentences, normalised, contains the normalised answer text of the question in
the language of that sentence (y for mono / cross pools; each sentence's own language in the
multilingual pool). Normalisation follows the MLQA evaluation script's definition: lower-case, drop
Unicode punctuation, drop the language's articles (en, es, de, vi, ar; none in hi, zh), then whitespace
tokens — for Chinese (and Thai, which MLQA does not cover and writes without spaces) one token per
character. Containment is on whole tokens (in Turkish the answer's last token may carry a case suffix). Reader EM / F1 (extracting the span) needs a reader model,
which this project does not train.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

import numpy as np

EM_KS = (1, 5, 10)
NO_HIT = np.iinfo(np.int64).max

ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "ar": r"\sال^|ال",
}
CHARACTER_TOKEN_LANGS = ("zh", "th")
SUFFIXING_LANGS = (
    "tr",
)  # case suffixes attach to the answer ("Steelers" -> "Steelers'ı"): match token starts


@lru_cache(maxsize=1)
def _punctuation() -> frozenset[str]:
    return frozenset(
        chr(i) for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i)).startswith("P")
    )


def _tokens(text: str, lang: str) -> list[str]:
    if lang not in CHARACTER_TOKEN_LANGS:
        return text.split()
    out: list[str] = []
    for chunk in text.split():
        out.extend(ch for ch in chunk)  # one token per character: no word boundaries in the script
    return out


def normalize_answer(text: str, lang: str) -> str:
    """MLQA-style normalisation, as a space-joined token string."""
    punct = _punctuation()
    text = "".join(ch for ch in text.lower() if ch not in punct)
    if lang in ARTICLES:
        text = re.sub(ARTICLES[lang], " ", text)
    return " ".join(_tokens(text, lang))


def contains(sentence_norm: str, answer_norm: str, lang: str = "") -> bool:
    """Whole-token containment of a normalised answer in a normalised sentence (an empty answer never hits);
    in suffixing languages the answer's last token may continue (a case suffix)."""
    if not answer_norm:
        return False
    if lang in SUFFIXING_LANGS:
        return f" {answer_norm}" in f" {sentence_norm}"
    return f" {answer_norm} " in f" {sentence_norm} "


class AnswerMatcher:
    """EM@k for one retrieval set: candidate sentences and gold answers normalised once."""

    def __init__(self, cand_texts: list[str], cand_langs: list[str], answer_text: dict[tuple[str, str], str]):
        self.cand_langs = cand_langs
        self.cand_norm = [normalize_answer(t, lang) for t, lang in zip(cand_texts, cand_langs)]
        self.answer_norm = {key: normalize_answer(text, key[0]) for key, text in answer_text.items()}

    def first_hit(self, ids: list[str], top: np.ndarray) -> np.ndarray:
        """(Q,) 0-based position of the first top sentence holding the answer, :data:`NO_HIT` if none.
        ``top``: (Q, K) global candidate indices, best first."""
        out = np.full(len(ids), NO_HIT, dtype=np.int64)
        for q, qid in enumerate(ids):
            for j, g in enumerate(top[q]):
                answer = self.answer_norm.get((self.cand_langs[g], qid), "")
                if contains(self.cand_norm[g], answer, self.cand_langs[g]):
                    out[q] = j
                    break
        return out

    def row(self, ids: list[str], top: np.ndarray) -> dict[str, float]:
        """``em@k`` for each k of :data:`EM_KS` (a pool smaller than k: every sentence is in the top k)."""
        hit = self.first_hit(ids, top)
        return {f"em@{k}": float((hit < k).mean()) if len(ids) else None for k in EM_KS}
