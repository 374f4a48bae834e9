"""The cosine gap between translation pairs and same-language non-pairs (issue #44): a test of the explanation
that a per-language objective (MLM on the target paragraphs) pulls a contrastively trained backbone back
toward language identity.

On held-out Tatoeba sentences (no training set reads Tatoeba), for each language x with English side e:
``pair`` is the mean cosine of a sentence and its translation (x_i, e_i); ``same_language`` the mean cosine of
two different sentences of one language (x_i, x_j and e_i, e_j, i != j); ``cross_language`` that of non-pairs
across the two languages (x_i, e_j). ``gap = pair - same_language``: how much closer a sentence is to its
translation than to an unrelated sentence of its own language. A model organised by language identity has a
small or negative gap; a language-agnostic one a large gap. A language-ID probe would say nothing here: it sits
near 100% for any multilingual model.

Measured in ``train.py`` (``eval.cosine_gap``) on the backbone, after the adaptive stage (``pretrain``) and after
training, into ``metrics.json`` under ``train.cosine_gap``; sentences are a seeded sample, both sides encoded
with the query prefix as the Tatoeba evaluation does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from mdr.data.tatoeba import read_tatoeba
from mdr.runtime.errors import InputError

log = logging.getLogger(__name__)

# XQuAD-R's ten non-English languages, as Tatoeba codes: the languages the adaptive stage reads passages of
XQUAD_LANGS = ["ara", "cmn", "deu", "ell", "hin", "rus", "spa", "tha", "tur", "vie"]


@dataclass
class CosineGapSettings:
    """``eval.cosine_gap``: which Tatoeba languages, how many sentence pairs each, the sample's seed."""

    langs: list[str] = field(default_factory=lambda: list(XQUAD_LANGS))
    n: int = 200
    seed: int = 0

    TYPES = {"n": int, "seed": int}

    def __post_init__(self) -> None:
        if self.n < 2:
            raise InputError(f"eval.cosine_gap.n={self.n}: give at least 2 sentence pairs per language")
        if not self.langs:
            raise InputError("eval.cosine_gap.langs is empty: name Tatoeba languages (e.g. [deu, tha])")


def _mean_off_diagonal(a: np.ndarray, b: np.ndarray) -> float:
    sims = a @ b.T
    n = len(a)
    return float((sims.sum() - np.trace(sims)) / (n * n - n))


def gap_of(x: np.ndarray, e: np.ndarray) -> dict[str, float]:
    """The three means and the gap for one language's sentences ``x`` and their translations ``e`` (row i of
    each is one pair), from unit vectors."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    pair = float(np.mean(np.sum(x * e, axis=1)))
    same = (_mean_off_diagonal(x, x) + _mean_off_diagonal(e, e)) / 2
    return {
        "pair": pair,
        "same_language": same,
        "cross_language": _mean_off_diagonal(x, e),
        "gap": pair - same,
    }


def measure_cosine_gap(encode, data_dir: str, settings: CosineGapSettings) -> dict:
    """``encode(texts) -> (n, d)`` vectors; per-language numbers and their means over the languages."""
    ts = read_tatoeba(data_dir, list(settings.langs))
    rng = np.random.default_rng(settings.seed)
    per_language = {}
    for code, lang in ts.languages.items():
        n = min(settings.n, len(lang.texts))
        idx = np.sort(rng.choice(len(lang.texts), size=n, replace=False))
        vectors = np.asarray(encode([lang.texts[i] for i in idx] + [lang.english[i] for i in idx]))
        per_language[code] = {**gap_of(vectors[:n], vectors[n:]), "n": n}
    keys = ("pair", "same_language", "cross_language", "gap")
    mean = {k: float(np.mean([row[k] for row in per_language.values()])) for k in keys}
    return {"mean": mean, "per_language": per_language, "seed": settings.seed}


def encoder_measure(encoder, data_dir: str, settings: CosineGapSettings, precision: str = "fp32"):
    """The measurement with a dense encoder's query-side encoding (what the Tatoeba evaluation uses)."""

    def encode(texts: list[str]) -> np.ndarray:
        return encoder.encode(texts, "query", show_progress=False, precision=precision)

    result = measure_cosine_gap(encode, data_dir, settings)
    m = result["mean"]
    log.info(
        "cosine gap (%d languages): pair %.3f, same-language non-pair %.3f, gap %.3f",
        len(result["per_language"]),
        m["pair"],
        m["same_language"],
        m["gap"],
    )
    return result


class CosineGaps:
    """``eval.cosine_gap``: the translation-pair gap measured at each stage of the run (``mdr.eval.cosine_gap``),
    on its own RNG stream so the run's seeded draws are those of a run without it."""

    def __init__(self, settings: CosineGapSettings | None, data_dir: str):
        self.settings, self.data_dir = settings, data_dir
        self.values: dict | None = {} if settings is not None else None

    def measure(self, stage: str, encoder, skip: bool = False) -> None:
        if self.values is None or skip:
            return
        import torch

        with torch.random.fork_rng(devices=[]):
            self.values[stage] = encoder_measure(encoder, self.data_dir, self.settings)
