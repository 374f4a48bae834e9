"""One rule for text encodings across every reader: a UTF-8 byte-order mark at the start of a file is dropped,
CRLF line ends read as LF, and a missing final newline changes nothing. Each reader reads the three variants of
one file to the same result (a topics file with a BOM used to lose its first query id's match with the qrels)."""

import json

import pytest

from mdr.data.corpus_texts import corpus_rows
from mdr.data.jsonl import parallel_rows
from mdr.data.lareqa import read_language_file
from mdr.data.qrels import read_corpus_jsonl, read_qrels, read_topics
from mdr.data.tatoeba import _read_lines

LAREQA = {"data": [{"title": "t", "paragraphs": [{
    "context": "Der Hund schläft. Die Katze läuft.", "sentence_breaks": [[0, 17], [18, 34]],
    "qas": [{"id": "q1", "question": "Wer läuft?", "answers": [{"answer_start": 18, "text": "Die Katze"}]}],
}]}]}  # fmt: skip
FILES = {
    "topics": "q1\tWer schläft?\nq2\tWer läuft?\n",
    "qrels": "q1 Q0 d1 1\nq2 Q0 d2 1\nq2 Q0 d1 0\n",
    "corpus": '{"docid": "d1", "text": "Der Hund schläft."}\n{"_id": "d2", "title": "Katze", "text": "läuft"}\n',
    "parallel": '{"id": "1", "lang": "de", "query": "Wer?", "positive": "Er."}\n'
    '{"id": "1", "lang": "en", "query": "Who?", "positive": "He."}\n',
    "tatoeba": "Der Hund schläft.\nDie Katze läuft.\n",
    "lareqa": json.dumps(LAREQA, ensure_ascii=False, indent=1) + "\n",
}
READERS = {
    "topics": read_topics,
    "qrels": read_qrels,
    "corpus": read_corpus_jsonl,
    "parallel": lambda p: list(parallel_rows(p)),
    "tatoeba": _read_lines,
    "lareqa": lambda p: (lambda x: (x.sentences, x.contexts, x.questions))(read_language_file(p, "de")),
}


def variants(text: str) -> dict[str, bytes]:
    plain = text.encode("utf-8")
    return {
        "LF": plain,
        "BOM + CRLF": b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"),
        "no final newline": text.rstrip("\n").encode("utf-8"),
    }


@pytest.mark.parametrize("kind", list(FILES))
def test_bom_crlf_and_a_missing_final_newline_read_the_same(tmp_path, kind):
    results = {}
    for name, data in variants(FILES[kind]).items():
        path = tmp_path / f"{name.replace(' ', '_').replace('+', '')}.{kind}"
        path.write_bytes(data)
        results[name] = READERS[kind](path)
    assert results["BOM + CRLF"] == results["LF"] == results["no final newline"], kind
    if kind == "topics":  # the first query id keeps its name, so it still matches the qrels
        assert list(results["BOM + CRLF"]) == ["q1", "q2"]
    if kind == "corpus":
        assert [r["docid"] for r in corpus_rows(tmp_path / "BOM__CRLF.corpus")] == ["d1", "d2"]
