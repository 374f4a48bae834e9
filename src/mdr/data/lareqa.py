"""Reader for the LAReQA retrieval sets (XQuAD-R, MLQA-R): SQuAD v1.1 files plus sentence breaks.

Candidates are sentences identified by (language, paragraph, sentence index), cut from ``context``
with ``sentence_breaks`` (two Turkish XQuAD-R sentences disagree with ``sentences`` by one offset;
LAReQA's own code uses the breaks). A question's answer is the sentence holding
``answers[0].answer_start``, even where the answer span runs past that sentence's end.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from mdr.data.corpus import ParallelCorpus, ParallelExample, RetrievalSet
from mdr.data.errors import DataFormatError
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.inputs import read_text

log = logging.getLogger(__name__)

DATASET_DIRS = {"xquad_r": "xquad-r", "mlqa_r": "mlqa-r"}
DATASET_LANGS = {
    "xquad_r": ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"],
    "mlqa_r": ["ar", "de", "en", "es", "hi", "vi", "zh"],
}


@dataclass
class LareqaQuestion:
    id: str
    lang: str
    question: str
    article: int
    paragraph: int
    answer_sentence: int
    answer_text: str = ""


@dataclass
class LareqaLanguage:
    """One language file: its candidates (paragraph, sentence) and questions."""

    lang: str
    sentences: list[tuple[int, int, str]]  # (paragraph, sentence index, text)
    contexts: list[str]  # paragraph text, by paragraph number
    paragraph_article: list[int]
    questions: list[LareqaQuestion]

    def paragraph_sentences(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for p, _, text in self.sentences:
            out.setdefault(p, []).append(text)
        return out


def resolve_dataset_dir(data_dir: str | Path, dataset: str) -> Path:
    if dataset not in DATASET_DIRS:
        raise InputError(f"unknown LAReQA dataset {dataset!r}; choose one of {sorted(DATASET_DIRS)}")
    root = Path(data_dir)
    if not root.is_dir():
        raise MissingInputError(
            f"data dir {root} does not exist: set paths.data_dir=... or the MDR_DATA_DIR environment variable "
            "to the folder holding xquad-r/ and mlqa-r/"
        )
    path = root / DATASET_DIRS[dataset]
    if not path.is_dir():
        raise MissingInputError(
            f"{path} does not exist: paths.data_dir={root} must hold {DATASET_DIRS[dataset]}/"
        )
    return path


def check_langs(dataset: str, langs: list[str] | None, path: Path) -> list[str]:
    available = sorted(p.stem for p in path.glob("*.json"))
    if not available:
        raise MissingInputError(f"{path} holds no <lang>.json files; is paths.data_dir right?")
    if langs is None:
        return available
    unknown = [lang for lang in langs if lang not in available]
    if unknown:
        raise InputError(
            f"unknown language(s) {unknown} for {dataset}: available are {available}; fix the data langs list"
        )
    return list(langs)


def read_language_file(path: Path, lang: str) -> LareqaLanguage:
    fix = "re-fetch the file (LAReQA layout: ../shared/README.md)"
    try:
        doc = json.loads(read_text(path, "LAReQA file", fix))
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}:{e.lineno}: {path.name} is not valid JSON ({e.msg}); {fix}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataFormatError(
            f"{path}: not a LAReQA file (expected a SQuAD-format object with a 'data' list); {fix}"
        )
    sentences: list[tuple[int, int, str]] = []
    contexts: list[str] = []
    paragraph_article: list[int] = []
    questions: list[LareqaQuestion] = []
    for a, article in enumerate(doc["data"]):
        for paragraph in article.get("paragraphs", []):
            p = len(contexts)
            where = f"{path} article {a} ({article.get('title', '?')!r}) paragraph {p}"
            if "context" not in paragraph or "sentence_breaks" not in paragraph:
                raise DataFormatError(
                    f"{where}: missing 'context' or 'sentence_breaks'; LAReQA files need both"
                )
            context, breaks = paragraph["context"], paragraph["sentence_breaks"]
            if "sentences" in paragraph and len(paragraph["sentences"]) != len(breaks):
                raise DataFormatError(
                    f"{where}: {len(breaks)} sentence_breaks but {len(paragraph['sentences'])} sentences; the two "
                    f"lists must align one to one; {fix}"
                )
            contexts.append(context)
            paragraph_article.append(a)
            for s, (start, end) in enumerate(breaks):
                sentences.append((p, s, context[start:end]))
            for qa in paragraph.get("qas", []):
                try:
                    start = qa["answers"][0]["answer_start"]
                    qid, question = qa["id"], qa["question"]
                except (KeyError, IndexError, TypeError) as e:
                    raise DataFormatError(
                        f"{where}: question without id/question/answers[0].answer_start ({e!r})"
                    ) from e
                if isinstance(start, bool) or not isinstance(start, int):
                    raise DataFormatError(
                        f"{where}: question {qid!r}: answers[0].answer_start={start!r} is not an integer "
                        f"character offset into the context; {fix}"
                    )
                holding = [s for s, (b0, b1) in enumerate(breaks) if b0 <= start < b1]
                if len(holding) != 1:
                    raise DataFormatError(
                        f"{where}: answer start {start} of question {qid!r} lies in {len(holding)} sentences "
                        "(must be exactly one); the file is corrupt"
                    )
                text = str(qa["answers"][0].get("text", ""))
                questions.append(LareqaQuestion(qid, lang, question, a, p, holding[0], text))
    if not questions:
        raise DataFormatError(f"{path}: no questions; a language with no data cannot be used")
    return LareqaLanguage(lang, sentences, contexts, paragraph_article, questions)


def read_lareqa(
    data_dir: str | Path, dataset: str, langs: list[str] | None = None
) -> dict[str, LareqaLanguage]:
    path = resolve_dataset_dir(data_dir, dataset)
    langs = check_langs(dataset, langs, path)
    return {lang: read_language_file(path / f"{lang}.json", lang) for lang in langs}


def retrieval_set(files: dict[str, LareqaLanguage], name: str) -> RetrievalSet:
    """The LAReQA evaluation set: every sentence of every language is a candidate."""
    uids, c_langs, texts, contexts = [], [], [], []
    index: dict[tuple[str, int, int], int] = {}
    for lang, f in files.items():
        for p, s, text in f.sentences:
            index[(lang, p, s)] = len(uids)
            uids.append(f"{lang}:{p}:{s}")
            c_langs.append(lang)
            texts.append(text)
            contexts.append(f.contexts[p])
    q_ids, q_langs, q_texts, answer_of, answer_text = [], [], [], {}, {}
    for lang, f in files.items():
        for q in f.questions:
            q_ids.append(q.id)
            q_langs.append(lang)
            q_texts.append(q.question)
            answer_of[(lang, q.id)] = index[(lang, q.paragraph, q.answer_sentence)]
            answer_text[(lang, q.id)] = q.answer_text
    return RetrievalSet(
        name,
        q_ids,
        q_langs,
        q_texts,
        uids,
        c_langs,
        texts,
        contexts,
        answer_of,
        langs=list(files),
        answer_text=answer_text,
    )


def group_ids_by_article(files: dict[str, LareqaLanguage]) -> dict[str, str]:
    """Map each id to a group shared by every id that meets it in some language's article.

    MLQA-R articles differ per language, so an article in one language is not an article in another:
    the groups are the connected components of "appear in the same article in some language".
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for f in files.values():
        first_in_article: dict[int, str] = {}
        for q in f.questions:
            root = first_in_article.setdefault(q.article, q.id)
            ra, rb = find(root), find(q.id)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return {qid: find(qid) for qid in parent}


def parallel_corpus(files: dict[str, LareqaLanguage], name: str) -> ParallelCorpus:
    """Training view: (id, lang) -> question, answer sentence, the paragraph's other sentences."""
    groups = group_ids_by_article(files)
    examples = []
    for lang, f in files.items():
        by_paragraph = f.paragraph_sentences()
        answers: dict[tuple[int, int], list[str]] = {}
        for q in f.questions:
            answers.setdefault((q.paragraph, q.answer_sentence), []).append(q.id)
        for q in f.questions:
            sents = by_paragraph[q.paragraph]
            others = [i for i in range(len(sents)) if i != q.answer_sentence]
            negatives = tuple(sents[i] for i in others)
            examples.append(
                ParallelExample(
                    id=q.id,
                    lang=lang,
                    query=q.question,
                    positive=sents[q.answer_sentence],
                    negatives=negatives,
                    group=groups[q.id],
                    positive_context=f.contexts[q.paragraph],
                    positive_ids=tuple(answers[(q.paragraph, q.answer_sentence)]),
                    negative_ids=tuple(tuple(answers.get((q.paragraph, i), ())) for i in others),
                )
            )
    return ParallelCorpus(examples, name)
