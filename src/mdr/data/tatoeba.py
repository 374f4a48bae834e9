"""Reader for LASER's Tatoeba test set: 112 languages, each line-aligned with its own English side.

Files ``tatoeba/tatoeba.<L>-eng.<L>`` and ``tatoeba.<L>-eng.eng``: line i of one translates line i of the
other. Codes are ISO 639-3; :data:`ISO3_TO_TRAINING` maps those that the LAReQA training sets use to
their two-letter codes, so a run's training languages split Tatoeba into seen and unseen.

Language groups (reported apart, as the LAReQA sets report seen / unseen):

- ``xtreme36``: the 36 languages of XTREME's Tatoeba task (Hu et al. 2020, arXiv 2003.11080).
- ``low_resource``: the 40 languages with fewer than 1000 pairs (LASER kept every pair Tatoeba had for
  them; 1000 is the cap for all others), which are also the languages with little training data.
- ``seen`` / ``unseen``: languages of the run's training set vs the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mdr.data.errors import DataFormatError
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.inputs import read_text

TATOEBA_DIR = "tatoeba"
FULL_SIZE = 1000  # pairs per language where Tatoeba had enough; fewer marks a low-resource language

XTREME36 = (
    "afr ara ben bul cmn deu ell est eus fin fra heb hin hun ind ita jav jpn "
    "kat kaz kor mal mar nld pes por rus spa swh tam tel tgl tha tur urd vie"
).split()

# ISO 639-3 (Tatoeba) -> the two-letter codes of the LAReQA sets (XQuAD-R, MLQA-R) and their training runs.
ISO3_TO_TRAINING = {
    "ara": "ar",
    "cmn": "zh",
    "deu": "de",
    "ell": "el",
    "eng": "en",
    "hin": "hi",
    "rus": "ru",
    "spa": "es",
    "tha": "th",
    "tur": "tr",
    "vie": "vi",
}

LANG_SELECTIONS = ("all", "xtreme36", "xtreme36+low_resource")


@dataclass
class TatoebaLanguage:
    """One language file pair: ``texts[i]`` translates ``english[i]``."""

    lang: str
    texts: list[str]
    english: list[str]

    @property
    def low_resource(self) -> bool:
        return len(self.texts) < FULL_SIZE


@dataclass
class TatoebaSet:
    """Every selected language, sorted by code."""

    name: str
    languages: dict[str, TatoebaLanguage]

    @property
    def langs(self) -> list[str]:
        return list(self.languages)

    def groups(self, seen_langs: list[str] | None) -> dict[str, list[str]]:
        """Group name -> member languages (only groups with members)."""
        low = {x for x, lang in self.languages.items() if lang.low_resource}
        return language_groups(self.langs, low, seen_langs)


def language_groups(
    langs: list[str], low_resource: set[str], seen_langs: list[str] | None
) -> dict[str, list[str]]:
    """all / xtreme36 / low_resource, and seen / unseen when the training languages (two-letter) are known."""
    out = {
        "all": list(langs),
        "xtreme36": [x for x in langs if x in XTREME36],
        "low_resource": [x for x in langs if x in low_resource],
    }
    if seen_langs is not None:
        seen = set(seen_langs)
        out["seen"] = [x for x in langs if ISO3_TO_TRAINING.get(x, x) in seen]
        out["unseen"] = [x for x in langs if ISO3_TO_TRAINING.get(x, x) not in seen]
    return {k: v for k, v in out.items() if v}


def available_langs(data_dir: str | Path) -> list[str]:
    root = Path(data_dir) / TATOEBA_DIR
    if not root.is_dir():
        raise MissingInputError(
            f"Tatoeba folder {root} not found; set paths.data_dir (or MDR_DATA_DIR) to the folder that holds "
            f"{TATOEBA_DIR}/tatoeba.<lang>-eng.<lang> files"
        )
    langs = sorted(p.name.split(".")[1].removesuffix("-eng") for p in root.glob("tatoeba.*-eng.eng"))
    if not langs:
        raise MissingInputError(f"{root} holds no tatoeba.<lang>-eng.eng files")
    return langs


def select_langs(data_dir: str | Path, langs: str | list[str]) -> list[str]:
    """A named selection (:data:`LANG_SELECTIONS`) or an explicit list of ISO 639-3 codes."""
    have = available_langs(data_dir)
    if isinstance(langs, str):
        if langs not in LANG_SELECTIONS:
            raise InputError(
                f"tatoeba languages {langs!r}: choose one of {LANG_SELECTIONS} or a list of codes"
            )
        if langs == "all":
            return have
        wanted = set(XTREME36)
        if langs == "xtreme36+low_resource":
            root = Path(data_dir) / TATOEBA_DIR
            wanted |= {x for x in have if _count_lines(root / f"tatoeba.{x}-eng.eng") < FULL_SIZE}
        return sorted(x for x in have if x in wanted)
    unknown = sorted(set(langs) - set(have))
    if unknown:
        raise InputError(
            f"unknown Tatoeba language(s) {unknown}; codes are ISO 639-3 (deu, cmn, ...), available: {' '.join(have)}"
        )
    return sorted(set(langs))


def read_tatoeba(data_dir: str | Path, langs: str | list[str] = "all") -> TatoebaSet:
    """Read the selected languages; a file pair with different line counts or an empty line fails."""
    root = Path(data_dir) / TATOEBA_DIR
    out = {}
    for lang in select_langs(data_dir, langs):
        texts = _read_lines(root / f"tatoeba.{lang}-eng.{lang}")
        english = _read_lines(root / f"tatoeba.{lang}-eng.eng")
        if len(texts) != len(english):
            raise DataFormatError(
                f"{root}/tatoeba.{lang}-eng.*: {len(texts)} {lang} lines but {len(english)} English lines; "
                "the two files must be line-aligned translations"
            )
        out[lang] = TatoebaLanguage(lang, texts, english)
    return TatoebaSet("tatoeba", out)


def _read_lines(path: Path) -> list[str]:
    text = read_text(
        path, "Tatoeba file", "each language needs both sides of its file pair, one UTF-8 sentence a line"
    )
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise DataFormatError(f"{path}:{i}: empty line; every line must hold one sentence")
    return lines


def _count_lines(path: Path) -> int:
    return len(_read_lines(path))
