"""Cache keys by content (issue #46): a same-size rewrite whose mtime was put back gets a new cache; digests
are remembered between processes while the file is untouched, and a damaged memo only costs a re-hash."""

import os

import pytest

from mdr.data import content_hash
from mdr.data.corpus_texts import read_corpus_texts


@pytest.fixture()
def memo(tmp_path, monkeypatch):
    path = tmp_path / "memo.json"
    monkeypatch.setenv("MDR_HASH_MEMO", str(path))
    content_hash.forget_memo()
    yield path
    content_hash.forget_memo()


def rewrite_keeping_mtime(path, text: str) -> None:
    """What cp -p / rsync -a / a restore do: new bytes, same size, the old modification time."""
    st = path.stat()
    assert len(text.encode()) == st.st_size
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_same_size_rewrite_with_the_old_mtime_gets_a_new_cache(tmp_path, memo):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"docid": "d1", "text": "first version"}\n')
    _, texts = read_corpus_texts(corpus, tmp_path / "cache")
    assert list(texts) == ["first version"]
    rewrite_keeping_mtime(corpus, '{"docid": "d1", "text": "fixed version"}\n')
    _, texts = read_corpus_texts(corpus, tmp_path / "cache")
    assert list(texts) == ["fixed version"], "the stale cache was served"
    assert len([p for p in (tmp_path / "cache").glob("corpus-corpus-*") if p.is_dir()]) == 2


def test_digests_are_remembered_between_processes_until_the_file_changes(tmp_path, memo, monkeypatch):
    path = tmp_path / "f.txt"
    path.write_text("some bytes")
    first = content_hash.content_digest(path)
    assert first == content_hash.hash_file(path) and memo.is_file()
    calls = []
    real = content_hash.hash_file
    monkeypatch.setattr(content_hash, "hash_file", lambda p: calls.append(p) or real(p))
    content_hash.forget_memo()  # another process: reads the memo from disk
    assert content_hash.content_digest(path) == first and calls == []
    rewrite_keeping_mtime(path, "other bytes"[:10])
    assert content_hash.content_digest(path) != first and len(calls) == 1


def test_a_damaged_memo_costs_only_a_re_hash(tmp_path, memo):
    path = tmp_path / "f.txt"
    path.write_text("bytes")
    memo.write_text("{not json")
    assert content_hash.content_digest(path) == content_hash.hash_file(path)


def test_an_edited_mmarco_collection_gets_a_new_cache(tmp_path, memo):
    """The cache key covers every file the rows come from, not only the triples (it did not: an edited
    collection was served from the old cache)."""
    from mdr.data.mmarco import read_mmarco

    root = tmp_path / "mmarco"
    (root / "data/google/queries/train").mkdir(parents=True)
    (root / "data/google/collections").mkdir(parents=True)
    (root / "data/triples.train.ids.small.tsv").write_text("10\t100\t101\n")
    (root / "data/google/queries/train/english_queries.train.tsv").write_text("10\twhat is a\n")
    collection = root / "data/google/collections/english_collection.tsv"
    collection.write_text("100\told passage\n101\tnegative\n")
    read = lambda: read_mmarco(["en"], root=str(root), cache_dir=str(tmp_path / "cache"))  # noqa: E731
    assert read().get("10", "en").positive == "old passage"
    rewrite_keeping_mtime(collection, "100\tnew passage\n101\tnegative\n")
    assert read().get("10", "en").positive == "new passage"
