"""The corpus-style evaluator on MIRACL topics and qrels, with a small corpus built from the qrels' docids."""

import json

import numpy as np
import pytest

from mdr.data.errors import DataFormatError
from mdr.data.qrels import load_qrels_set, read_qrels
from mdr.eval.qrels import evaluate_qrels


@pytest.fixture(scope="module")
def miracl_de(data_dir, tmp_path_factory):
    """German MIRACL dev topics and qrels; corpus: one document per judged docid plus distractors."""
    d = data_dir / "miracl"
    qrels = read_qrels(d / "qrels.miracl-v1.0-de-dev.tsv")
    docids = sorted({doc for judged in qrels.values() for doc in judged})
    out = tmp_path_factory.mktemp("miracl") / "corpus.jsonl"
    with out.open("w") as fh:
        for doc in docids + [f"distractor#{i}" for i in range(300)]:
            fh.write(json.dumps({"docid": doc, "title": "t", "text": f"document {doc}"}) + "\n")
    return load_qrels_set(
        "miracl-de", d / "topics.miracl-v1.0-de-dev.tsv", d / "qrels.miracl-v1.0-de-dev.tsv", out
    )


def test_counts(miracl_de):
    assert len(miracl_de.query_ids) == 305
    assert len(miracl_de.doc_ids) == len({d for j in miracl_de.qrels.values() for d in j}) + 300


def test_perfect_and_random_rankers(miracl_de):
    qs = miracl_de
    # an oracle: a query's embedding points at its relevant documents
    dim = len(qs.query_ids)
    doc_index = {d: i for i, d in enumerate(qs.doc_ids)}
    q = np.eye(dim, dtype=np.float32)
    docs = np.zeros((len(qs.doc_ids), dim), dtype=np.float32)
    for i, qid in enumerate(qs.query_ids):
        for d, rel in qs.qrels[qid].items():
            if rel > 0:
                docs[doc_index[d], i] = 1.0
    r = evaluate_qrels(qs, q, docs)
    assert r["ndcg@10"] == pytest.approx(1.0) and r["r@100"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    r = evaluate_qrels(qs, rng.standard_normal((dim, 16)), rng.standard_normal((len(qs.doc_ids), 16)))
    assert r["ndcg@10"] < 0.2


def test_equal_ranx(miracl_de):
    from ranx import Qrels, Run, evaluate

    qs = miracl_de
    rng = np.random.default_rng(1)
    # documents near their queries with noise: a realistic, imperfect ranking
    q = rng.standard_normal((len(qs.query_ids), 32)).astype(np.float32)
    doc_index = {d: i for i, d in enumerate(qs.doc_ids)}
    docs = rng.standard_normal((len(qs.doc_ids), 32)).astype(np.float32)
    for i, qid in enumerate(qs.query_ids):
        for d in qs.qrels[qid]:
            docs[doc_index[d]] += 0.8 * q[i]
    r = evaluate_qrels(qs, q, docs)
    qrels = {qid: {d: rel for d, rel in j.items()} for qid, j in qs.qrels.items()}
    ref = evaluate(Qrels(qrels), Run(r["run"]), ["ndcg@10", "recall@100"])
    assert 0.1 < r["ndcg@10"] < 0.99
    assert r["ndcg@10"] == pytest.approx(ref["ndcg@10"], abs=1e-6)
    assert r["r@100"] == pytest.approx(ref["recall@100"], abs=1e-6)


def test_bad_qrels_line(tmp_path):
    p = tmp_path / "q.tsv"
    p.write_text("1 Q0 d1 1\n1 Q0 d2\n")
    with pytest.raises(DataFormatError, match="q.tsv:2: expected 'query_id Q0 docid relevance'"):
        read_qrels(p)


def test_miracl_hub_path_with_a_stand_in_hub(tmp_path, monkeypatch, data_dir):
    """``{hub: miracl, lang: sw}`` without network: hf_hub_download and load_dataset answer from local files
    (the real MIRACL-sw topics/qrels, a corpus dataset on their docids). The corpus is streamed into the cache
    once, titles go before texts, and the set equals the local-files reader's."""
    import datasets
    import huggingface_hub

    from mdr.data.qrels import load_qrels_spec

    d = data_dir / "miracl"
    files = {"topics": d / "topics.miracl-v1.0-sw-dev.tsv", "qrels": d / "qrels.miracl-v1.0-sw-dev.tsv"}
    monkeypatch.setattr(
        huggingface_hub,
        "hf_hub_download",
        lambda repo, name, repo_type: str(files["topics" if "/topics/" in name else "qrels"]),
    )
    docids = sorted({line.split()[2] for line in files["qrels"].read_text().splitlines() if line})
    rows = {"docid": docids, "title": ["Kichwa" if i % 2 else "" for i in range(len(docids))]}
    rows["text"] = [f"makala {x}" for x in docids]
    loads = []
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: loads.append(k) or datasets.Dataset.from_dict(rows)
    )
    hub = load_qrels_spec({"name": "miracl-sw", "hub": "miracl", "lang": "sw"}, tmp_path / "cache")
    again = load_qrels_spec({"name": "miracl-sw", "hub": "miracl", "lang": "sw"}, tmp_path / "cache")
    assert len(loads) == 1, "the second load streamed the hub corpus again instead of mapping the cache"
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"docid": x, "title": t, "text": y}) + "\n" for x, t, y in zip(*rows.values()))
    )
    local = load_qrels_spec(
        {"name": "miracl-sw", **{k: str(v) for k, v in files.items()}, "corpus": str(corpus)}
    )
    assert (
        hub.name == local.name == "miracl-sw"
        and hub.query_ids == local.query_ids
        and hub.qrels == local.qrels
    )
    assert list(hub.doc_ids) == list(local.doc_ids) == list(again.doc_ids)
    assert list(hub.doc_texts) == list(local.doc_texts) and hub.doc_texts[1] == f"Kichwa makala {docids[1]}"


def test_faiss_padding_is_no_document():
    """An IVF search that finds fewer than k documents pads with -1 (issue #46): that is not the corpus's last
    document, so a query whose relevant document is the last one does not count it as found."""
    from mdr.data.qrels import QrelsSet
    from mdr.eval.qrels import score_ranking

    docs = [f"d{i}" for i in range(5)]
    qs = QrelsSet("toy", ["q"], ["text"], docs, ["t"] * 5, {"q": {"d4": 1}})
    padded = score_ranking(
        qs, np.array([[0, 1, -1, -1]]), np.array([[0.9, 0.5, -3.4e38, -3.4e38]], np.float32)
    )
    assert padded["r@100"] == 0.0 and padded["ndcg@10"] == 0.0
    assert padded["run"]["q"] == {"d0": pytest.approx(0.9), "d1": pytest.approx(0.5)}
    found = score_ranking(qs, np.array([[4, 0, 1, -1]]), np.array([[0.9, 0.5, 0.4, -3.4e38]], np.float32))
    assert found["r@100"] == 1.0 and found["ndcg@10"] == 1.0
