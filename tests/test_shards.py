"""Sharded, resumable corpus encoding and exact search over the shards (issue #31, part 2-3)."""

import zlib

import numpy as np
import pytest

from mdr.eval.qrels import exact_top_k
from mdr.eval.shards import (
    PROBE_TEXT,
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
        if texts[0] == PROBE_TEXT:  # the encoder's identity check, before any shard
            return fake_encoder([])(texts)
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


def test_ivf_search_reports_its_recall_against_exact(tmp_path):
    """Clustered data: IVF with enough probes finds (nearly) what exact search finds, and says how much."""
    from mdr.eval.ivf_index import IVFSpec, ivf_search

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((20, DIM))
    docs = (centers[rng.integers(0, 20, 2000)] + 0.3 * rng.standard_normal((2000, DIM))).astype(np.float32)
    texts = [str(i) for i in range(len(docs))]
    layout = ShardLayout(len(docs), shard_size=300, dim=DIM)
    by_id = {t: v for t, v in zip(texts, docs)}
    encode_shards(lambda batch: np.stack([by_id.get(t, docs[0]) for t in batch]), texts, tmp_path, layout)
    queries = (centers[rng.integers(0, 20, 50)] + 0.3 * rng.standard_normal((50, DIM))).astype(np.float32)
    exact_idx, _ = exact_top_k(queries, docs, 10)
    idx, scores, info = ivf_search(queries, tmp_path, 10, IVFSpec(nlist=20), nprobe=20, recall_queries=50)
    assert info["recall@10_vs_exact"] == pytest.approx(1.0)  # every list probed: exact
    np.testing.assert_array_equal(np.sort(idx, 1), np.sort(exact_idx, 1))
    _, _, few = ivf_search(queries, tmp_path, 10, IVFSpec(nlist=20), nprobe=1, recall_queries=50)
    measured = np.mean(
        [
            len(set(a) & set(b)) / 10
            for a, b in zip(ivf_search(queries, tmp_path, 10, IVFSpec(nlist=20), 1)[0], exact_idx)
        ]
    )
    assert few["recall@10_vs_exact"] == pytest.approx(measured) and few["nprobe"] == 1


def test_bad_shard_folders_are_refused_and_keep_their_finished_shards(tmp_path):
    """Another model (probe vector), another dimension, a changed corpus: one clear error, nothing deleted.
    A truncated shard: search names it; the next encoding re-encodes that shard alone."""
    from mdr.eval.shards import corpus_fingerprint

    ids = [f"d{i}" for i in range(len(TEXTS))]
    layout = ShardLayout(len(TEXTS), shard_size=10, dim=DIM, corpus=corpus_fingerprint(ids, TEXTS))
    encode_shards(fake_encoder([]), TEXTS, tmp_path, layout, rank=0, world=2)
    done = sorted(p.name for p in tmp_path.glob("*.done"))

    def other_model(texts):
        return -fake_encoder([])(texts)

    with pytest.raises(InputError, match="written by another encoder"):
        encode_shards(other_model, TEXTS, tmp_path, layout, rank=1, world=2)
    wider = ShardLayout(len(TEXTS), shard_size=10, dim=DIM * 2, corpus=layout.corpus)
    with pytest.raises(
        InputError, match="32-dimensional.*16.*another model|16-dimensional.*32.*another model"
    ):
        encode_shards(fake_encoder([]), TEXTS, tmp_path, wider, rank=1, world=2)
    changed = [*TEXTS[:-1], "a document edited since"]
    moved = ShardLayout(len(TEXTS), shard_size=10, dim=DIM, corpus=corpus_fingerprint(ids, changed))
    with pytest.raises(InputError, match="the corpus changed since these shards were written"):
        encode_shards(fake_encoder([]), changed, tmp_path, moved, rank=1, world=2)
    assert sorted(p.name for p in tmp_path.glob("*.done")) == done, "a refused job removed finished shards"

    encode_shards(fake_encoder([]), TEXTS, tmp_path, layout, rank=1, world=2)
    path = shard_path(tmp_path, 4)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match="shard_00004.npy is empty, truncated or damaged"):
        search_shards(np.zeros((1, DIM), np.float32), tmp_path, k=5)
    calls = []
    assert encode_shards(fake_encoder(calls), TEXTS, tmp_path, layout) == [4]
    shard_path(tmp_path, 3).write_bytes(b"")  # a zero-byte shard: named, then re-encoded like a truncated one
    with pytest.raises(InputError, match="shard_00003.npy is empty, truncated or damaged"):
        search_shards(np.zeros((1, DIM), np.float32), tmp_path, k=5)
    assert encode_shards(fake_encoder([]), TEXTS, tmp_path, layout) == [3]
    assert not list(tmp_path.glob(".probe.*")), "no temporary probe file is left"
    clean = tmp_path / "clean"
    encode_shards(fake_encoder([]), TEXTS, clean, layout)
    q = np.random.default_rng(1).standard_normal((7, DIM)).astype(np.float32)
    for a, b in zip(search_shards(q, tmp_path, k=20), search_shards(q, clean, k=20)):
        np.testing.assert_array_equal(a, b)


def test_ranks_come_from_config_or_a_named_launcher_never_from_the_environment_alone(monkeypatch):
    """Issue #46: a Hydra submitit sweep's cells are SLURM array tasks; taken as shard ranks, each would encode a
    share of one corpus and exit without metrics."""
    from mdr.eval.shards import shard_rank

    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert shard_rank() == (0, 1)
    assert shard_rank(ranks_from="slurm_array") == (3, 4)
    assert shard_rank(ranks_from="torchrun") == (1, 2)
    assert shard_rank(2, 5, ranks_from="slurm_array") == (2, 5)  # explicit settings win
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    with pytest.raises(InputError, match="ranks_from=slurm_array, but this job is not a SLURM array task"):
        shard_rank(ranks_from="slurm_array")


def test_the_manifest_is_atomic_records_the_encoder_and_refuses_another(tmp_path):
    from mdr.eval.shards import read_manifest

    layout = ShardLayout(
        len(TEXTS), shard_size=50, dim=DIM, encoder="model=a, prefix=passage: , max_length=256"
    )
    encode_shards(fake_encoder([]), TEXTS, tmp_path, layout)
    assert read_manifest(tmp_path / "manifest.json")["encoder"] == layout.encoder
    assert not list(tmp_path.glob(".manifest.*")) and not list(tmp_path.glob("*.partial.npy"))
    other = ShardLayout(
        len(TEXTS), shard_size=50, dim=DIM, encoder="model=a, prefix=passage: , max_length=128"
    )
    with pytest.raises(
        InputError, match="encoded with model=a.*max_length=256, this job encodes with .*max_length=128"
    ):
        encode_shards(fake_encoder([]), TEXTS, tmp_path, other)
    (tmp_path / "manifest.json").write_text("")  # what a killed non-atomic writer used to leave
    with pytest.raises(InputError, match="manifest.json: not a readable shard manifest .*delete it"):
        check_complete(tmp_path)
    assert all(shard_path(tmp_path, s).exists() for s in range(3))  # no finished shard lost


def test_a_job_counting_another_world_is_refused_while_shards_are_missing(tmp_path):
    """ranks 0 of 2 and 1 of 3 would leave shards 3 and 5 to no one (issue #46): the folder records the world
    of its first job; a complete folder accepts any world."""
    layout = ShardLayout(len(TEXTS), shard_size=10, dim=DIM)
    encode_shards(fake_encoder([]), TEXTS, tmp_path, layout, rank=0, world=2)
    with pytest.raises(InputError, match=r"shared by world_size=2 jobs and this one counts 3, with 5 shards"):
        encode_shards(fake_encoder([]), TEXTS, tmp_path, layout, rank=1, world=3)
    assert encode_shards(fake_encoder([]), TEXTS, tmp_path, layout, rank=1, world=2) == [1, 3, 5, 7, 9]
    assert encode_shards(fake_encoder([]), TEXTS, tmp_path, layout, rank=0, world=1) == []  # done: any world
