"""Sharded, resumable corpus encoding and exact search over the shards (issue #31, part 2-3)."""

import zlib

import numpy as np
import pytest

from mdr.eval.qrels import exact_top_k
from mdr.eval.shards import (
    ShardLayout,
    check_complete,
    done_path,
    encode_shards,
    search_shards,
    shard_path,
)
from mdr.runtime.errors import InputError

DIM = 16


def fake_encoder(calls: list):
    """A deterministic text -> vector map (a hash-seeded random vector per text), recording each call."""

    def encode(texts):
        calls.append(len(texts))
        return np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(DIM) for t in texts])

    return encode


TEXTS = [f"document number {i}" for i in range(103)]


def test_sharded_search_equals_single_array_search(tmp_path):
    calls = []
    layout = ShardLayout(len(TEXTS), shard_size=10, dim=DIM)
    assert encode_shards(fake_encoder(calls), TEXTS, tmp_path, layout) == list(range(11))
    full = fake_encoder([])(TEXTS).astype(np.float32)
    queries = np.random.default_rng(0).standard_normal((7, DIM)).astype(np.float32)
    idx, scores = search_shards(queries, tmp_path, k=20, query_chunk=3)
    ref_idx, ref_scores = exact_top_k(queries, full, 20)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-6)  # fp32 sums in another order
    assert search_shards(queries, tmp_path, k=500)[0].shape == (7, 103)  # k capped at the corpus size


def test_fp16_shards_keep_the_ranking_close(tmp_path):
    layout = ShardLayout(len(TEXTS), shard_size=25, dim=DIM, dtype="float16")
    encode_shards(fake_encoder([]), TEXTS, tmp_path, layout)
    assert np.load(shard_path(tmp_path, 0)).dtype == np.float16
    queries = np.random.default_rng(1).standard_normal((5, DIM)).astype(np.float32)
    _, scores = search_shards(queries, tmp_path, k=10)
    _, ref = exact_top_k(queries, fake_encoder([])(TEXTS).astype(np.float32), 10)
    np.testing.assert_allclose(scores, ref, atol=2e-2)


def test_two_ranks_split_the_shards_and_together_cover_the_corpus(tmp_path):
    layout = ShardLayout(len(TEXTS), shard_size=10, dim=DIM)
    a = encode_shards(fake_encoder([]), TEXTS, tmp_path, layout, rank=0, world=2)
    with pytest.raises(FileNotFoundError, match="5 of 11 shards are not done"):
        check_complete(tmp_path)
    b = encode_shards(fake_encoder([]), TEXTS, tmp_path, layout, rank=1, world=2)
    assert sorted(a + b) == list(range(11)) and not set(a) & set(b) and abs(len(a) - len(b)) <= 1
    assert check_complete(tmp_path) == layout


def test_a_killed_job_re_encodes_only_the_shard_it_was_writing(tmp_path):
    """The encoder dies inside the 4th shard; the relaunch encodes that shard and the rest, nothing done twice,
    and the shards equal an uninterrupted run's."""
    layout = ShardLayout(len(TEXTS), shard_size=10, dim=DIM)
    calls, seen = [], []

    def dies_in_the_fourth_shard(texts):
        seen.append(texts[0])
        if len(seen) == 4:
            raise KeyboardInterrupt  # as a kill would stop it: no shard file, no done marker for shard 3
        return fake_encoder(calls)(texts)

    with pytest.raises(KeyboardInterrupt):
        encode_shards(dies_in_the_fourth_shard, TEXTS, tmp_path / "run", layout)
    assert [done_path(tmp_path / "run", s).exists() for s in range(5)] == [True, True, True, False, False]
    resumed = encode_shards(fake_encoder(calls), TEXTS, tmp_path / "run", layout)
    assert resumed == list(range(3, 11))  # the interrupted shard and the ones after it, once
    encode_shards(fake_encoder([]), TEXTS, tmp_path / "clean", layout)
    for s in range(11):
        np.testing.assert_array_equal(
            np.load(shard_path(tmp_path / "run", s)), np.load(shard_path(tmp_path / "clean", s))
        )


def test_a_folder_serves_one_layout(tmp_path):
    encode_shards(fake_encoder([]), TEXTS, tmp_path, ShardLayout(len(TEXTS), shard_size=10, dim=DIM))
    with pytest.raises(InputError, match="manifest.json records .* encode into a new folder"):
        encode_shards(fake_encoder([]), TEXTS, tmp_path, ShardLayout(len(TEXTS), shard_size=20, dim=DIM))
    with pytest.raises(InputError, match="shard dtype 'int8'"):
        ShardLayout(10, 5, DIM, dtype="int8")
    with pytest.raises(InputError, match="103 texts for a layout of 50"):
        encode_shards(fake_encoder([]), TEXTS, tmp_path / "x", ShardLayout(50, 10, DIM))
    with pytest.raises(FileNotFoundError, match="holds no manifest.json"):
        search_shards(np.zeros((1, DIM), np.float32), tmp_path / "empty", k=5)
