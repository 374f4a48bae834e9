"""Bad corpus-style inputs (topics, qrels, corpus JSONL): refused in one line, or counted when left out."""

import pytest

from mdr.runtime.errors import InputError

BAD_BYTES = b"\xff\xfe not utf-8"


# ---- topics / qrels / corpus ----
def qrels_files(tmp_path, topics=None, qrels=None, corpus=None):
    files = {
        "topics": topics if topics is not None else b"q1\twho is there?\nq2\twhat is it?\n",
        "qrels": qrels if qrels is not None else b"q1 Q0 d1 1\nq2 Q0 d2 1\n",
        "corpus": corpus
        if corpus is not None
        else b'{"docid": "d1", "text": "one"}\n{"docid": "d2", "text": "two"}\n',
    }
    for name, content in files.items():
        (tmp_path / f"{name}.tsv").write_bytes(content)
    return [tmp_path / f"{n}.tsv" for n in ("topics", "qrels", "corpus")]


QRELS_CASES = {
    "topics bad bytes": ({"topics": b"q1\twho\n" + BAD_BYTES}, r"topics.tsv:2: not UTF-8"),
    "qrels bad bytes": ({"qrels": b"q1 Q0 d1 1\n" + BAD_BYTES}, r"qrels.tsv:2: not UTF-8"),
    "corpus bad bytes": (
        {"corpus": b'{"docid": "d1", "text": "a"}\n' + BAD_BYTES},
        r"corpus.tsv:2: not UTF-8",
    ),
    "topics empty": ({"topics": b""}, r"topics file .*topics.tsv is empty; topics are 'query_id<TAB>text'"),
    "qrels empty": ({"qrels": b"\n"}, r"qrels file .*qrels.tsv is empty; qrels are TREC lines"),
    "corpus empty": ({"corpus": b""}, r"corpus file .*corpus.tsv is empty"),
    "corpus truncated": (
        {"corpus": b'{"docid": "d1", "text": "one"}\n{"docid": "d2", "te'},
        r"corpus.tsv:2: not valid JSON",
    ),
    "qrels given as topics": (
        {"topics": b"q1 Q0 d1 1\n"},
        r"topics.tsv:1: expected 'query_id<TAB>text' \(is this a topics file",
    ),
    "topics given as qrels": (
        {"qrels": b"q1\twho is there?\n"},
        r"qrels.tsv:1: .*expected 'query_id Q0 docid relevance' \(TREC qrels; is this a qrels file",
    ),
    "topics and qrels do not align": ({"qrels": b"x9 Q0 d1 1\n"}, r"share no query id .*same split"),
    "duplicate docids": (
        {"corpus": b'{"docid": "d1", "text": "a"}\n{"docid": "d1", "text": "b"}\n'},
        r"corpus.tsv:2: docid 'd1' repeats line 1",
    ),
    "duplicate query ids": (
        {"topics": b"q1\twho is there?\nq2\twhat?\nq1\tagain?\n"},
        r"topics.tsv:3: query id 'q1' repeats line 1; query ids must be unique",
    ),
    "judged documents all absent from the corpus": (
        {"qrels": b"q1 Q0 x1 1\nq2 Q0 x2 1\n"},
        r"mini: none of the 2 judged documents of .*qrels.tsv is in the corpus .*corpus.tsv",
    ),
}


@pytest.mark.parametrize("cached", [False, True], ids=["lists", "mapped corpus"])
def test_what_a_qrels_set_leaves_out_is_counted(tmp_path, cached):
    """Judged documents the corpus lacks and topics without judgements are counted, never dropped silently."""
    from mdr.data.qrels import load_qrels_set

    topics, qrels, corpus = qrels_files(
        tmp_path, topics=b"q1\twho?\nq2\twhat?\nq3\twhere?\n", qrels=b"q1 Q0 d1 1\nq2 Q0 d2 1\nq2 Q0 gone 1\n"
    )
    qs = load_qrels_set("mini", topics, qrels, corpus, tmp_path / "cache" if cached else None)
    assert qs.query_ids == ["q1", "q2"]
    assert qs.skipped == {"topics without judgements": 1, "judged documents absent from the corpus": 1}


@pytest.mark.parametrize("cached", [False, True], ids=["lists", "mapped corpus"])
@pytest.mark.parametrize("kind", QRELS_CASES)
def test_qrels_set_bad_file(kind, tmp_path, cached):
    from mdr.data.qrels import load_qrels_set

    contents, message = QRELS_CASES[kind]
    topics, qrels, corpus = qrels_files(tmp_path, **contents)
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match=message):
        load_qrels_set("mini", topics, qrels, corpus, cache if cached else None)
    left = [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] if cache.exists() else []
    corpus_sound = kind == "judged documents all absent from the corpus"  # its converted corpus is reusable
    assert corpus_sound or not left, f"a failed conversion left {left}"
