"""The fixed tie-break (score, then docid) of every exact search (issue #46): the same ranking whatever the
shard size, the chunking or where a document sits in the corpus file, checked against a plain Python sort."""

import numpy as np
import pytest
import torch

from mdr.eval.qrels import exact_top_k
from mdr.eval.shards import ShardLayout, encode_shards, search_shards
from mdr.eval.topk import docid_key, merge_top_k, top_k
from mdr.runtime.errors import InputError


def reference(scores: np.ndarray, k: int, key: np.ndarray) -> np.ndarray:
    """Each row's k best columns by (score descending, key ascending): Python's sort, nothing shared."""
    return np.array([sorted(range(len(row)), key=lambda j: (-row[j], key[j]))[:k] for row in scores])


def tied_vectors(n: int, dim: int, distinct: int, seed: int) -> np.ndarray:
    """``n`` vectors drawn from only ``distinct`` different ones, of small integers (every dot product exact in
    fp32, whatever the kernel): many exact score ties, also at the k-th place."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(-3, 4, (distinct, dim)).astype(np.float32)
    return pool[rng.integers(0, distinct, n)]


def test_docid_key_is_the_sorted_position():
    ids = ["d10", "d2", "a", "d1"]
    key = docid_key(ids)
    assert [ids[i] for i in np.argsort(key)] == sorted(ids)


@pytest.mark.parametrize("k", [1, 3, 10, 40])
def test_top_k_breaks_ties_by_key_at_the_cut_and_inside(k):
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, (30, 40)).astype(np.float32)  # four distinct scores: ties everywhere
    key = rng.permutation(40)
    idx, vals = top_k(torch.from_numpy(scores), k, torch.from_numpy(key))
    np.testing.assert_array_equal(idx.numpy(), reference(scores, k, key))
    np.testing.assert_array_equal(vals.numpy(), np.take_along_axis(scores, idx.numpy(), 1))
    plain, _ = top_k(torch.from_numpy(scores), k)  # no key: the corpus position
    np.testing.assert_array_equal(plain.numpy(), reference(scores, k, np.arange(40)))


def test_merging_two_halves_equals_one_search():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, (20, 50)).astype(np.float32)
    key = torch.from_numpy(rng.permutation(50))
    left = top_k(torch.from_numpy(scores[:, :23]), 8, key)
    right = top_k(torch.from_numpy(scores[:, 23:]), 8, key, offset=23)
    merged, _ = merge_top_k(left, right, 8, key)
    np.testing.assert_array_equal(merged.numpy(), reference(scores, 8, key.numpy()))


@pytest.mark.parametrize("shard_size", [7, 31, 200])
def test_sharded_and_in_memory_search_agree_on_ties(tmp_path, shard_size):
    """Duplicated documents score exactly alike: sharded search at any shard size, in-memory search and the
    reference pick the same documents in the same order, by docid."""
    docs = tied_vectors(200, 8, distinct=12, seed=1)
    queries = tied_vectors(9, 8, distinct=9, seed=2)
    doc_ids = [f"doc-{i * 7919 % 200:03d}" for i in range(200)]  # ids not in corpus order
    key = docid_key(doc_ids)
    texts = [str(i) for i in range(200)]
    by_text = dict(zip(texts, docs))  # the probe text (not a document) gets any fixed vector
    encode = lambda batch: np.stack([by_text.get(t, docs[0]) for t in batch])  # noqa: E731
    encode_shards(encode, texts, tmp_path, ShardLayout(200, shard_size, 8))
    sharded, _ = search_shards(queries, tmp_path, 25, query_chunk=4, tie_key=key)
    in_memory, _ = exact_top_k(queries, docs, 25, chunk=5, tie_key=key)
    want = reference(queries @ docs.T, 25, key)
    np.testing.assert_array_equal(sharded, want)
    np.testing.assert_array_equal(in_memory, want)


def test_faiss_results_are_ordered_by_the_same_rule():
    docs = tied_vectors(60, 8, distinct=5, seed=3)
    queries = tied_vectors(4, 8, distinct=4, seed=4)
    key = np.random.default_rng(5).permutation(60)
    idx, scores = exact_top_k(queries, docs, 60, "faiss", tie_key=key)  # the whole corpus: no cut to choose
    np.testing.assert_array_equal(idx, reference(queries @ docs.T, 60, key))


def test_nan_scores_are_refused():
    scores = torch.tensor([[0.5, float("nan"), 0.1]])
    with pytest.raises(InputError, match="NaN embeddings"):
        top_k(scores, 2)
