"""The IVF index saved beside the shards (issue #46): built once and reused, rebuilt when the shards change,
SQ8 / PQ / on-disk kinds, its size as predicted, and bad settings refused in one line."""

import numpy as np
import pytest

from mdr.eval.ivf_index import IVFSpec, index_bytes, ivf_search, load_or_build
from mdr.eval.qrels import exact_top_k
from mdr.eval.settings import CorpusShards, typed_from_mapping
from mdr.eval.shards import ShardLayout, corpus_fingerprint, encode_shards
from mdr.runtime.errors import InputError

DIM = 32


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).standard_normal((16, DIM))
    return (centers[rng.integers(0, 16, n)] + 0.3 * rng.standard_normal((n, DIM))).astype(np.float32)


def write_shards(folder, docs: np.ndarray, shard_size: int = 400) -> None:
    texts = [f"t{i}" for i in range(len(docs))]
    layout = ShardLayout(len(docs), shard_size, DIM, corpus=corpus_fingerprint(texts, texts))
    by_text = dict(zip(texts, docs))  # the probe text (not a document) gets any fixed vector
    encode_shards(lambda batch: np.stack([by_text.get(t, docs[0]) for t in batch]), texts, folder, layout)


@pytest.fixture()
def corpus(tmp_path):
    docs = clustered(3000, seed=1)
    write_shards(tmp_path, docs)
    return tmp_path, docs, clustered(40, seed=2)


def test_the_index_is_built_once_and_read_back(corpus):
    folder, docs, queries = corpus
    first = ivf_search(queries, folder, 10, IVFSpec(nlist=16), nprobe=16, recall_queries=40)
    again = ivf_search(queries, folder, 10, IVFSpec(nlist=16), nprobe=16, recall_queries=40)
    assert first[2]["built"] and not again[2]["built"] and again[2]["build_s"] == 0.0
    np.testing.assert_array_equal(first[0], again[0])
    assert again[2]["recall@10_vs_exact"] == pytest.approx(1.0)  # every list probed
    assert (folder / "ivf-flat-16" / "meta.json").is_file()
    assert again[2]["end_to_end_s"] >= again[2]["search_s"]


def test_changed_shards_rebuild_the_index(corpus):
    folder, docs, queries = corpus
    ivf_search(queries, folder, 10, IVFSpec(nlist=16), nprobe=16, recall_queries=0)
    for p in folder.iterdir():  # the shards encoded again (another corpus), the index folder left behind
        if p.is_file():
            p.unlink()
    moved = docs[::-1].copy()
    write_shards(folder, moved, shard_size=500)  # other shards, same folder and index settings
    idx, _, info = ivf_search(queries, folder, 10, IVFSpec(nlist=16), nprobe=16, recall_queries=0)
    assert info["built"], "an index built from other shards was served"
    exact, _ = exact_top_k(queries, moved, 10)
    np.testing.assert_array_equal(np.sort(idx, 1), np.sort(exact, 1))


@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_compressed_kinds_find_most_of_the_exact_top_k(corpus, kind):
    folder, docs, queries = corpus
    _, _, info = ivf_search(
        queries, folder, 10, IVFSpec(kind, nlist=16, pq_m=8), nprobe=16, recall_queries=40
    )
    floor = 0.9 if kind == "sq8" else 0.4  # 8 bytes a vector for PQ against 32 for SQ8: coarser
    assert floor <= info["recall@10_vs_exact"] <= 1.0
    assert (folder / IVFSpec(kind, 16, 8).name() / "index.faiss").is_file()


def test_on_disk_lists_give_the_in_memory_result(corpus):
    folder, docs, queries = corpus
    in_memory = ivf_search(queries, folder, 10, IVFSpec(nlist=16), nprobe=4, recall_queries=0)
    on_disk = ivf_search(queries, folder, 10, IVFSpec(nlist=16, on_disk=True), nprobe=4, recall_queries=0)
    np.testing.assert_array_equal(in_memory[0], on_disk[0])
    np.testing.assert_allclose(in_memory[1], on_disk[1], rtol=1e-6)
    assert (folder / "ivf-flat-16-disk" / "index.ivfdata").stat().st_size >= len(docs) * DIM * 4
    assert not list(folder.glob("**/part_*.faiss")), "the per-shard parts are removed after the merge"


@pytest.mark.parametrize("kind", ["flat", "sq8", "pq"])
def test_index_bytes_predicts_the_saved_size(corpus, kind):
    folder, docs, _ = corpus
    spec = IVFSpec(kind, nlist=16, pq_m=8)
    load_or_build(folder, spec)
    saved = (folder / spec.name() / "index.faiss").stat().st_size
    assert saved == pytest.approx(index_bytes(len(docs), DIM, spec), rel=0.1)


def test_bad_index_settings_are_refused_in_one_line(corpus):
    folder, _, queries = corpus
    with pytest.raises(InputError, match="pq_m=7 does not divide the embedding dimension 32"):
        load_or_build(folder, IVFSpec("pq", nlist=16, pq_m=7))
    with pytest.raises(InputError, match=r"index='hnsw'; choose one of \('flat', 'sq8', 'pq'\)"):
        typed_from_mapping(CorpusShards, {"index": "hnsw"}, "eval.corpus_shards")
    with pytest.raises(InputError, match="on_disk='yes': expected true or false"):
        typed_from_mapping(CorpusShards, {"on_disk": "yes"}, "eval.corpus_shards")


def test_reranking_a_compressed_index_recovers_exact_scores(corpus):
    """PQ's own scores are approximations; rescored exactly from the shards, its top-k is mostly exact's and
    every returned score is the true inner product."""
    folder, docs, queries = corpus
    spec = IVFSpec("pq", nlist=16, pq_m=4)
    _, _, plain = ivf_search(queries, folder, 10, spec, nprobe=16, recall_queries=40)
    idx, scores, again = ivf_search(queries, folder, 10, spec, nprobe=16, recall_queries=40, rerank=10)
    assert again["rerank"] == 10 and again["recall@10_vs_exact"] > plain["recall@10_vs_exact"]
    assert again["recall@10_vs_exact"] >= 0.95
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, docs[idx]), rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
