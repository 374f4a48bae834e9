"""`eval.py` as a user runs it: bad inputs fail clearly without writing metrics; saved embeddings rescore."""

import json
import re

import numpy as np
import pytest
import torch
from helpers import compose_cfg, expect_failure, in_process, run
from helpers import tiny_eval_overrides as eval_overrides

from mdr.eval.qrels import exact_top_k


def fails_in_process(out, overrides, message, exc=Exception):
    expect_failure("eval", "eval", in_process(overrides), out, exc, message)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["ckpt=/nonexistent/best.ckpt", "data=mlqa_r"], "checkpoint /nonexistent/best.ckpt does not exist"),
        (["eval.datasets=[squad]"], "unknown evaluation dataset 'squad'"),
        (["paths.data_dir=/nonexistent"], "does not exist: set paths.data_dir"),
        (["embeddings=/nonexistent/emb.npz", "data=mlqa_r"], "embeddings file .* does not exist"),
        (["data=xquad_r", "eval.perturb=[{kind:typo,rate:0.1}]"], "unknown perturbation kind 'typo'"),
    ],
)
def test_bad_inputs(tmp_path, tiny_model_dir, data_dir, extra, message):
    out = tmp_path / "eval"
    fails_in_process(out, eval_overrides(out, tiny_model_dir, data_dir, *extra), message)


@pytest.mark.slow
def test_bad_input_message_reaches_the_user(tmp_path, tiny_model_dir, data_dir):
    """Through eval.py itself: the error names the fix, no metrics, a FAILED marker."""
    out = tmp_path / "eval"
    extra = ["eval.datasets=[squad]"]
    proc = run("eval.py", *eval_overrides(out, tiny_model_dir, data_dir, *extra), check=False)
    assert proc.returncode != 0
    assert re.search("unknown evaluation dataset 'squad'", proc.stdout + proc.stderr), (
        proc.stdout + proc.stderr
    )[-3000:]
    assert not (out / "metrics.json").exists()
    assert (out / "FAILED").exists()


def test_checkpoint_of_another_model(tmp_path, tiny_model_dir, data_dir):
    ckpt = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"encoder.model.embeddings.word_embeddings.weight": torch.zeros(10, 48)}}, ckpt)
    out = tmp_path / "eval"
    fails_in_process(
        out,
        eval_overrides(out, tiny_model_dir, data_dir, f"ckpt={ckpt}", "data=mlqa_r"),
        "does not match model config",
    )


def test_empty_data_dir(tmp_path, tiny_model_dir):
    (tmp_path / "data" / "xquad-r").mkdir(parents=True)
    out = tmp_path / "eval"
    fails_in_process(
        out,
        eval_overrides(out, tiny_model_dir, tmp_path / "data", "data=xquad_r"),
        "holds no <lang>.json files",
    )


def test_embeddings_of_wrong_shape(tmp_path, tiny_model_dir, data_dir):
    emb = tmp_path / "emb.npz"
    np.savez(
        emb,
        query_emb=np.zeros((10, 4)),
        cand_emb=np.zeros((7, 4)),
        query_ids=np.arange(10),
        cand_uids=np.arange(7).astype(str),
    )
    out = tmp_path / "eval"
    fails_in_process(
        out,
        eval_overrides(out, tiny_model_dir, data_dir, f"embeddings={emb}", "data=mlqa_r"),
        "do not match mlqa_r",
    )


@pytest.mark.slow
def test_saved_embeddings_rescore_identically(tiny_reeval, tmp_path, tiny_model_dir, data_dir):
    """The shared eval.py run of the tiny checkpoint saved its embeddings; scoring them again, without a
    model, gives the same numbers for every setting."""
    from mdr.cli.evaluate import evaluate

    first = tiny_reeval
    again = tmp_path / "again"
    overrides = eval_overrides(
        again,
        tiny_model_dir,
        data_dir,
        "data=mlqa_r",
        "eval.run_files=none",
        f"embeddings={first / 'embeddings.npz'}",
        "seen_langs=[de,en,es]",  # as the checkpoint told the first run
    )
    evaluate(compose_cfg("eval", in_process(overrides)))
    a = json.loads((first / "metrics.json").read_text())["datasets"]["mlqa_r"]
    b = json.loads((again / "metrics.json").read_text())["datasets"]["mlqa_r"]
    assert a["pairs"] == b["pairs"] and a["summary"] == b["summary"]


def test_faiss_search_equals_torch():
    rng = np.random.default_rng(0)
    q, d = rng.standard_normal((50, 16)).astype(np.float32), rng.standard_normal((700, 16)).astype(np.float32)
    i_t, s_t = exact_top_k(q, d, 100, "torch")
    i_f, s_f = exact_top_k(q, d, 100, "faiss")
    np.testing.assert_array_equal(i_t, i_f)
    np.testing.assert_allclose(s_t, s_f, atol=1e-4)


def miracl_sw(data_dir, tmp_path, distractors=0):
    """MIRACL-sw dev topics and qrels with a synthetic corpus on the qrels' docids (+ distractors): the qrels
    rows, the docids, and the data.qrels_sets entry for eval.py."""
    d = data_dir / "miracl"
    qrels = [line.split() for line in (d / "qrels.miracl-v1.0-sw-dev.tsv").read_text().splitlines() if line]
    docids = sorted({row[2] for row in qrels}) + [f"distractor#{i}" for i in range(distractors)]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"docid": x, "title": "", "text": f"makala {x}"}) + "\n" for x in docids)
    )
    spec = (
        f"{{name: miracl-sw, topics: {d / 'topics.miracl-v1.0-sw-dev.tsv'}, qrels: {d / 'qrels.miracl-v1.0-sw-dev.tsv'},"
        f" corpus: {corpus}}}"
    )
    return qrels, docids, spec


@pytest.mark.slow
def test_miracl_files_through_eval_py(tmp_path, tiny_model_dir, data_dir):
    qrels, docids, spec = miracl_sw(data_dir, tmp_path)
    out = tmp_path / "eval"
    run(
        "eval.py",
        *eval_overrides(
            out, tiny_model_dir, data_dir, "data=miracl", f"data.qrels_sets=[{spec}]", "eval.search=faiss"
        ),
    )
    m = json.loads((out / "metrics.json").read_text())
    r = m["datasets"]["miracl-sw"]
    assert r["n_queries"] + r["n_skipped"] == len({row[0] for row in qrels}) and r["n_docs"] == len(docids)
    assert 0 <= r["ndcg@10"] <= 1 and 0 < r["r@100"] <= 1
    assert (out / "eval" / "miracl-sw" / "run.trec.gz").exists()


@pytest.mark.slow
def test_miracl_in_corpus_shards_equals_in_memory_and_resumes(tmp_path, tiny_model_dir, data_dir):
    """eval.corpus_shards: the corpus (real MIRACL-sw docids + distractors) is encoded into 5 shards and searched
    shard by shard; nDCG@10, R@100 and the TREC run equal the in-memory search's; a second run on the same
    shard folder encodes nothing and gives the same numbers."""
    import gzip

    _, docids, spec = miracl_sw(data_dir, tmp_path, distractors=200)
    shards = tmp_path / "shards"
    size = -(-len(docids) // 5)
    outs = {name: tmp_path / name for name in ("memory", "sharded", "resumed", "ivf")}
    for name, out in outs.items():
        extra = (
            []
            if name == "memory"
            else [f"eval.corpus_shards={{shard_size: {size}, dir: {shards}, nlist: 8}}"]
        )
        extra += ["eval.search=ivf"] if name == "ivf" else []
        proc = run(
            "eval.py",
            *eval_overrides(
                out, tiny_model_dir, data_dir, "data=miracl", f"data.qrels_sets=[{spec}]", *extra
            ),
        )
        if name == "resumed":
            assert "5 of its 5 shards already done" in proc.stdout + proc.stderr
    results = {
        n: json.loads((o / "metrics.json").read_text())["datasets"]["miracl-sw"] for n, o in outs.items()
    }
    for key in ("ndcg@10", "r@100", "n_queries", "n_docs"):
        assert results["sharded"][key] == pytest.approx(results["memory"][key], abs=1e-9), key
        assert results["resumed"][key] == results["sharded"][key], key
    assert (
        results["sharded"]["shards"]["n_docs"] == len(docids)
        and len(list((shards / "miracl-sw").glob("*.done"))) == 5
    )
    assert results["sharded"]["shards"]["dir"] == str(shards / "miracl-sw")  # one folder per set (issue #46)
    ivf = results["ivf"]["shards"]["ivf"]  # approximate search over the same shards, its recall reported
    assert ivf["nlist"] == 8 and 0 < ivf["recall@100_vs_exact"] <= 1 and "ndcg@10" in results["ivf"]

    def ranking(out):
        with gzip.open(out / "eval" / "miracl-sw" / "run.trec.gz", "rt") as fh:
            return [(row[0], row[2], row[4]) for row in map(str.split, fh)]

    sharded, memory = ranking(outs["sharded"]), ranking(outs["memory"])
    assert [q for q, _, _ in sharded] == [q for q, _, _ in memory]
    # fp32 sums in another block order differ by an ulp: scores agree to 2e-6, and a document sits at another
    # rank only among documents whose scores agree to 2e-6 (a tie, broken either way)
    assert max(abs(float(a[2]) - float(b[2])) for a, b in zip(sharded, memory)) <= 2e-6
    score_in_memory = {(q, d): float(sc) for q, d, sc in memory}
    moved = [(q, d, float(sc)) for (q, d, sc), (_, d2, _) in zip(sharded, memory) if d != d2]
    assert all(abs(score_in_memory.get((q, d), -9) - sc) <= 2e-6 for q, d, sc in moved)
    assert len(moved) < len(memory) // 10


@pytest.mark.slow
def test_submitit_local_array_encodes_in_two_jobs_and_rank_0_searches(tmp_path, tiny_model_dir, data_dir):
    """The README's multi-process recipe, run: Hydra's submitit_local launcher starts two jobs (ranks 0 and 1 of
    2) on one shard folder; each encodes its own shards, rank 0 waits for rank 1's and searches. The numbers
    equal one process's; rank 1's job records no ranking."""
    _, docids, spec = miracl_sw(data_dir, tmp_path, distractors=200)
    size = -(-len(docids) // 6)
    common = ["data=miracl", f"data.qrels_sets=[{spec}]"]
    one = tmp_path / "one"
    run(
        "eval.py",
        *eval_overrides(one, tiny_model_dir, data_dir, *common),
        f"eval.corpus_shards={{shard_size: {size}, dir: {tmp_path / 'one_shards'}}}",
    )
    shards, sweep = tmp_path / "shards", tmp_path / "sweep"
    overrides = eval_overrides(sweep, tiny_model_dir, data_dir, *common)[1:]  # a sweep: no hydra.run.dir
    run(
        "eval.py",
        "-m",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={sweep}",
        "hydra.launcher.timeout_min=20",
        *overrides,
        f"eval.corpus_shards={{shard_size: {size}, dir: {shards}, rank: null, world_size: 2, wait_s: 600}}",
        "eval.corpus_shards.rank=0,1",
    )
    jobs = [
        json.loads((sweep / str(n) / "metrics.json").read_text())["datasets"]["miracl-sw"] for n in (0, 1)
    ]
    alone = json.loads((one / "metrics.json").read_text())["datasets"]["miracl-sw"]
    assert jobs[0]["shards"]["rank"] == 0 and jobs[1]["shards"]["rank"] == 1
    assert (
        jobs[0]["ndcg@10"] == pytest.approx(alone["ndcg@10"], abs=1e-9) and jobs[0]["r@100"] == alone["r@100"]
    )
    assert jobs[1]["ndcg@10"] is None and not (sweep / "1" / "eval" / "miracl-sw" / "run.trec.gz").exists()
    encoded = {
        n: len(re.findall(rf"rank {n}: shard \d+ done", (sweep / str(n) / "eval.log").read_text()))
        for n in (0, 1)
    }
    assert encoded == {0: 3, 1: 3}, encoded


@pytest.mark.slow
def test_evaluation_only_encoder_through_eval_py(tmp_path, data_dir):
    """A non-torch baseline (hashed character n-grams) is scored like any model: lexical overlap wins
    monolingually and collapses across languages."""
    out = tmp_path / "eval"
    run(
        "eval.py",
        f"hydra.run.dir={out}",
        f"paths.data_dir={data_dir}",
        "model=hashing",
        "data=mlqa_r",
        "eval.run_files=none",
    )
    m = json.loads((out / "metrics.json").read_text())
    h = m["headline"]["mlqa_r"]
    assert m["model"].startswith("hashing-3gram") and m["encode_precision"] == "float32"
    assert h["mono_map"] > 0.2 and h["mono_map"] > 2 * h["cross_map"]


@pytest.mark.slow
def test_two_corpus_sets_share_one_shard_dir(tmp_path, tiny_model_dir, data_dir):
    """Issue #46: with eval.corpus_shards.dir set, the second corpus of a run (data=miracl's de and sw) was
    refused as 'the corpus changed'; each set now has its own folder under dir."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _, docs_a, spec_a = miracl_sw(data_dir, tmp_path / "a", distractors=50)
    _, docs_b, spec_b = miracl_sw(data_dir, tmp_path / "b", distractors=120)
    spec_b = spec_b.replace("name: miracl-sw,", "name: miracl-sw-more,")
    out, shards = tmp_path / "eval", tmp_path / "shards"
    run("eval.py", *eval_overrides(out, tiny_model_dir, data_dir, "data=miracl", f"data.qrels_sets=[{spec_a},{spec_b}]",
                                   f"eval.corpus_shards={{shard_size: 100, dir: {shards}}}"))  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())["datasets"]
    assert m["miracl-sw"]["n_docs"] == len(docs_a) and m["miracl-sw-more"]["n_docs"] == len(docs_b)
    assert sorted(p.name for p in shards.iterdir()) == ["miracl-sw", "miracl-sw-more"]
