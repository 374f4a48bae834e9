"""Metrics: hand-computed cases (ties, several relevant, none) and ranx on real ranked XQuAD-R data."""

import math

import numpy as np
import pytest
import torch

from mdr.eval.metrics import metrics_from_ranks, ndcg, rank_distance, relevant_ranks


def one(scores, relevant):
    s = torch.tensor([scores], dtype=torch.float64)
    r = torch.tensor([relevant + [-1] * (3 - len(relevant))])
    ranks = relevant_ranks(s, r)
    return {k: float(v[0]) for k, v in metrics_from_ranks(ranks).items()}, ranks[0].tolist()


def test_single_relevant_at_rank_three():
    m, ranks = one([0.9, 0.8, 0.7, 0.1], [2])
    assert ranks[0] == 3
    assert m["map"] == pytest.approx(1 / 3)
    assert m["p@1"] == 0 and m["mrr@5"] == pytest.approx(1 / 3) and m["r@10"] == 1
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(4))


def test_two_relevant_at_ranks_one_and_three():
    m, ranks = one([0.9, 0.8, 0.7, 0.1], [0, 2])
    assert ranks[:2] == [1, 3]
    assert m["map"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert m["p@1"] == 1 and m["mrr@5"] == 1
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))


def test_graded_ndcg_by_hand_and_equal_to_the_binary_ranks_version():
    # gains 3 at rank 1, 0 at rank 2, 1 at rank 3; the ideal puts 3, 2, 1 first (the judged 2 was not retrieved)
    assert ndcg([3, 0, 1], [3, 2, 1, 0], k=10) == pytest.approx((3 + 1 / 2) / (3 + 2 / math.log2(3) + 1 / 2))
    rng = np.random.default_rng(0)
    for _ in range(20):  # binary relevance: the vectorised nDCG@10 of metrics_from_ranks is the same function
        n, rel = 40, sorted(rng.choice(40, size=rng.integers(1, 12), replace=False).tolist())
        ranked_gains = [1 if i in rel else 0 for i in range(n)]
        ranks = torch.tensor([[r + 1.0 for r in rel]], dtype=torch.float64)
        assert metrics_from_ranks(ranks)["ndcg@10"].item() == pytest.approx(
            ndcg(ranked_gains, [1] * len(rel))
        )


def test_relevant_beyond_cutoffs():
    scores = list(np.linspace(1, 0, 30))
    m, ranks = one(scores, [4, 24])  # ranks 5 and 25
    assert ranks[:2] == [5, 25]
    assert m["mrr@5"] == pytest.approx(1 / 5)
    assert m["r@10"] == pytest.approx(0.5)
    assert m["map"] == pytest.approx((1 / 5 + 2 / 25) / 2)
    assert m["map@20"] == pytest.approx((1 / 5) / 2)  # divided by all relevant (trec_eval / ranx convention)


def test_ties_are_pessimistic():
    # relevant item tied with two non-relevant ones: ranked after both
    m, ranks = one([0.5, 0.5, 0.9, 0.5, 0.1], [3])
    assert ranks[0] == 4
    assert m["map"] == pytest.approx(1 / 4) and m["p@1"] == 0
    # two relevant tied with each other and one non-relevant: ranks 2 and 3
    m, ranks = one([0.5, 0.5, 0.5, 0.1], [0, 2])
    assert ranks[:2] == [2, 3]
    assert m["map"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # a constant scorer never gets credit for luck
    m, ranks = one([0.0] * 10, [0])
    assert ranks[0] == 10


def test_rank_distance():
    s = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    r = relevant_ranks(s, torch.tensor([[0, 3, -1]]))
    assert float(rank_distance(r)[0]) == 3.0  # ranks 1 and 4
    r = relevant_ranks(s, torch.tensor([[2, -1, -1]]))
    assert float(rank_distance(r)[0]) == 0.0


def test_query_without_relevant_is_rejected():
    with pytest.raises(ValueError, match="at least one relevant"):
        metrics_from_ranks(torch.tensor([[math.inf]], dtype=torch.float64))


def test_lareqa_skips_and_counts_queries_without_answer(data_dir):
    from mdr.data.lareqa import read_lareqa, retrieval_set
    from mdr.eval.lareqa import evaluate_lareqa

    rs = retrieval_set(read_lareqa(data_dir, "mlqa_r", ["en", "de"]), "mlqa_r")
    rng = np.random.default_rng(0)
    r = evaluate_lareqa(
        rs, rng.standard_normal((len(rs.query_ids), 8)), rng.standard_normal((len(rs.cand_uids), 8))
    )
    de_ids = {i for lang, i in zip(rs.query_langs, rs.query_ids) if lang == "de"}
    en_only = sum(1 for lang, i in zip(rs.query_langs, rs.query_ids) if lang == "en" and i not in de_ids)
    assert r.pairs["en->de"]["n_skipped"] == en_only == 1148 - 512
    assert r.pairs["en->de"]["n_queries"] == 512
    assert r.pairs["de->en"]["n_skipped"] == 0
    assert r.skipped["total"] == en_only


def test_xquad_counts_and_settings(data_dir):
    from mdr.data.lareqa import read_lareqa, retrieval_set
    from mdr.eval.lareqa import evaluate_lareqa

    rs = retrieval_set(read_lareqa(data_dir, "xquad_r"), "xquad_r")
    assert len(rs.cand_uids) == 13014
    assert {lang: rs.query_langs.count(lang) for lang in rs.langs} == {lang: 1190 for lang in rs.langs}
    rng = np.random.default_rng(0)
    r = evaluate_lareqa(
        rs,
        rng.standard_normal((len(rs.query_ids), 16)).astype(np.float32),
        rng.standard_normal((len(rs.cand_uids), 16)).astype(np.float32),
        seen_langs=["en", "de"],
    )
    d = r.to_dict()
    assert d["n_settings"] == {"mono": 11, "cross": 110, "multi": 11}
    assert len(d["pairs"]) == 132
    assert (
        d["summary"]["seen"]["cross"]["n_settings"] == 2
        and d["summary"]["unseen"]["cross"]["n_settings"] == 108
    )
    assert d["skipped"]["total"] == 0
    assert all(p["n_queries"] == 1190 for p in d["pairs"].values())
    # multilingual pool: each query has 11 relevant candidates; random scores give a large rank distance
    assert d["pairs"]["en->all"]["pool_size"] == 13014
    assert sum(d["pairs"]["en->all"]["top10_lang_share"].values()) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def small_xquad_run(tmp_path_factory, data_dir, tiny_model_dir):
    """Real ranked data: a tiny random encoder over 3 XQuAD-R languages, 150 ids, full-depth TREC runs."""
    from mdr.data.lareqa import read_lareqa, retrieval_set
    from mdr.eval.lareqa import evaluate_lareqa
    from mdr.eval.outputs.trec import TrecWriter
    from mdr.modeling.encoder import DualEncoder

    full = retrieval_set(read_lareqa(data_dir, "xquad_r", ["de", "en", "th"]), "xquad_r")
    rs = full.subset(sorted(set(full.query_ids))[:150])
    # 128-token passages, as this fixture was built with. In de->th, 3 relevant sentences tie with a non-relevant
    # one at the TREC file's 6 decimals (at 128 and at 256 tokens alike); ranx, reading the file, breaks those
    # ties its own way, ours by the full-precision score: at 128 the two orders agree, at 256 one does not
    enc = DualEncoder(str(tiny_model_dir), passage_max_length=128)
    q = enc.encode(rs.query_texts, "query", show_progress=False, precision="fp32")
    c = enc.encode(rs.cand_texts, "passage", show_progress=False, precision="fp32")
    out = tmp_path_factory.mktemp("runs")
    result = evaluate_lareqa(rs, q, c, run_writer=TrecWriter(out), run_depth=0)
    return result, out


@pytest.mark.parametrize("setting", ["en->en", "de->th", "th->en", "en->all", "th->all"])
def test_metrics_equal_ranx_on_real_ranked_data(small_xquad_run, setting):
    import gzip

    from ranx import Qrels, Run, evaluate

    result, out = small_xquad_run
    name = setting.replace("->", "-")
    qrels: dict = {}
    for line in (out / "qrels" / f"{name}.qrels").read_text().split("\n"):
        if line:
            q, _, d, rel = line.split()
            qrels.setdefault(q, {})[d] = int(rel)
    run: dict = {}
    with gzip.open(out / "runs" / f"{name}.trec.gz", "rt") as fh:
        for line in fh:
            q, _, d, _, score, _ = line.split()
            run.setdefault(q, {})[d] = float(score)
    ref = evaluate(Qrels(qrels), Run(run), ["map", "precision@1", "mrr@5", "recall@10", "map@20", "ndcg@10"])
    ours = result.pairs[setting]
    assert ours["n_queries"] == len(qrels) > 100
    for mine, theirs in [
        ("map", "map"),
        ("p@1", "precision@1"),
        ("mrr@5", "mrr@5"),
        ("r@10", "recall@10"),
        ("map@20", "map@20"),
        ("ndcg@10", "ndcg@10"),
    ]:
        assert ours[mine] == pytest.approx(ref[theirs], abs=1e-6), mine
    assert 0.0 < ours["map"] < 1.0
