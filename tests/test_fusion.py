"""Reciprocal-rank fusion of a dense model and BM25 (``eval.fusion``): RRF by hand and against ranx on real
ranked data, the fused ranks of XQuAD-R pools and Tatoeba pairs recomputed here from each model's own scores,
and eval.py's fused row as a user runs it (archived as its own cell, refused where it cannot rank)."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from helpers import compose_cfg, expect_failure, in_process, tiny_eval_overrides
from ranx import Run, fuse

from mdr.data.sources import load_eval_set
from mdr.eval.fusion import FusedRanker, best_ranks, rrf
from mdr.eval.lareqa import evaluate_lareqa
from mdr.eval.metrics import relevant_ranks
from mdr.eval.tatoeba import pair_scores
from mdr.modeling.baselines import HashingEncoder
from mdr.modeling.lexical import BM25
from mdr.runtime.errors import InputError


def by_hand_ranks(scores: np.ndarray) -> np.ndarray:
    """1 + the number of strictly higher scores: ties share their best rank."""
    return 1 + (scores[:, None, :] > scores[:, :, None]).sum(axis=2)


def by_hand_rrf(score_matrices: list[np.ndarray], k: int) -> np.ndarray:
    return sum(1.0 / (k + by_hand_ranks(s)) for s in score_matrices)


@pytest.fixture(scope="module")
def xquad_slice(data_dir):
    rs = load_eval_set("xquad_r", data_dir, langs=["de", "ru", "zh"])
    return rs.subset(sorted(set(rs.query_ids))[:40])


def test_ties_share_their_best_rank_and_rrf_sums_reciprocals():
    assert best_ranks(torch.tensor([[3.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])).tolist() == [
        [1, 2, 2, 4],
        [1, 1, 1, 1],
    ]
    dense, lexical = torch.tensor([[0.9, 0.5, 0.1]]), torch.tensor([[0.0, 2.0, 2.0]])  # ranks 1,2,3 and 3,1,1
    expected = [1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 61]
    np.testing.assert_allclose(rrf([dense, lexical], 60)[0].numpy(), expected, rtol=1e-6)
    with pytest.raises(InputError, match="cover different queries or candidates"):
        rrf([dense, torch.zeros(2, 3)], 60)


def test_rrf_equals_ranx_on_two_real_rankings(xquad_slice):
    """Two dense rankings of XQuAD-R German (hashing encoders of 2- and 3-grams), fused here and by ranx's RRF:
    the same fused scores, on the queries whose rankings have no ties."""
    rs = xquad_slice
    qi = [i for i, lang in enumerate(rs.query_langs) if lang == "de"]
    ci = [i for i, lang in enumerate(rs.cand_langs) if lang == "de"]
    queries, cands = [rs.query_texts[i] for i in qi], sorted({rs.cand_texts[i] for i in ci})  # distinct texts
    scores = []
    for n in (2, 3):
        enc = HashingEncoder(dim=4096, ngram=n)
        scores.append(torch.from_numpy(enc.encode(queries, "query") @ enc.encode(cands, "passage").T).float())
    tie_free = [i for i in range(len(queries)) if all(len(torch.unique(s[i])) == s.shape[1] for s in scores)]
    assert len(tie_free) >= 0.9 * len(queries)  # where ranx's order (ties broken by id) is the only order
    scores = [s[tie_free] for s in scores]

    def as_run(s: torch.Tensor, name: str) -> Run:
        return Run(
            {f"q{i}": {f"d{j}": float(s[i, j]) for j in range(s.shape[1])} for i in range(s.shape[0])}, name
        )

    reference = fuse([as_run(s, f"h{n}") for s, n in zip(scores, (2, 3))], method="rrf", params={"k": 60})
    ours = rrf(scores, 60)
    for i in range(ours.shape[0]):
        expected = reference.to_dict()[f"q{i}"]
        got = {f"d{j}": float(ours[i, j]) for j in range(ours.shape[1])}
        assert got.keys() == expected.keys()
        np.testing.assert_allclose([got[d] for d in expected], list(expected.values()), rtol=1e-6)


def test_fused_pool_ranks_equal_rrf_of_each_models_own_scores(xquad_slice):
    """x->y and x->all pools: the gold ranks of the fusion equal those recomputed here from the dense model's
    dot products and BM25's scores on that pool's own index."""
    rs, dense, bm25 = xquad_slice, HashingEncoder(dim=1024, ngram=3), BM25()
    ranker = FusedRanker(dense, bm25, k=60)
    result = evaluate_lareqa(rs, None, None, ranker=ranker, encode=lambda texts, kind, desc, contexts=None: dense.encode(texts, kind))  # fmt: skip
    q_emb, c_emb = dense.encode(rs.query_texts, "query"), dense.encode(rs.cand_texts, "passage")
    q_langs, cand_langs = np.asarray(rs.query_langs), np.asarray(rs.cand_langs)
    for x, y in (("zh", "zh"), ("de", "ru"), ("ru", "all")):
        qi = np.flatnonzero(q_langs == x)
        langs = rs.langs if y == "all" else [y]
        pool = np.concatenate([np.flatnonzero(cand_langs == lang) for lang in langs])
        index = bm25.index([bm25.analyze([rs.cand_texts[g]], rs.cand_langs[g])[0] for g in pool])
        lexical = bm25.score(index, bm25.analyze([rs.query_texts[i] for i in qi], x)).numpy()
        fused = by_hand_rrf([q_emb[qi] @ c_emb[pool].T, lexical], 60)
        assert (by_hand_ranks(lexical) > 1).any() and not np.array_equal(
            by_hand_ranks(fused), by_hand_ranks(lexical)
        )  # both models matter
        position = {int(g): j for j, g in enumerate(pool)}
        rel = [[position[rs.answer_of[(lang, rs.query_ids[i])]] for lang in langs] for i in qi]
        expected = relevant_ranks(torch.from_numpy(fused), torch.tensor(rel)).numpy()
        got = result.ranks[f"{x}->{y}"].astype(np.float64)
        np.testing.assert_array_equal(got if y == "all" else got[:, :1], expected)


def test_tatoeba_fused_ranks_each_direction(data_dir):
    ts = load_eval_set("tatoeba", data_dir, tatoeba_langs=["deu"])
    pair, dense, bm25 = ts.languages["deu"], HashingEncoder(dim=1024, ngram=3), BM25()
    ranks = FusedRanker(dense, bm25, k=10).bitext_ranks(
        ts, "deu", lambda texts, kind, desc: dense.encode(texts, kind)
    )
    # the dense model's cosines as the evaluation computes them (hashing counts tie often: another summation
    # order would reorder exact ties by rounding, which is not what this test is about)
    to_eng_dense, from_eng_dense = (s.numpy() for s in pair_scores(dense.encode(list(pair.texts), "query"), dense.encode(list(pair.english), "query")))  # fmt: skip
    src_tokens, eng_tokens = bm25.analyze(list(pair.texts), "deu"), bm25.analyze(list(pair.english), "eng")
    to_eng_lexical = bm25.score(bm25.index(eng_tokens), src_tokens).numpy()
    from_eng_lexical = bm25.score(bm25.index(src_tokens), eng_tokens).numpy()
    for direction, dense_scores, lexical in (
        ("to_eng", to_eng_dense, to_eng_lexical),
        ("from_eng", from_eng_dense, from_eng_lexical),
    ):
        rows = np.arange(0, len(pair.texts), 61)
        fused = by_hand_rrf([dense_scores[rows], lexical[rows]], 10)
        expected = relevant_ranks(torch.from_numpy(fused), torch.from_numpy(rows).view(-1, 1))[:, 0].numpy()
        np.testing.assert_array_equal(ranks[direction][rows].astype(np.float64), expected)


def test_eval_py_scores_and_archives_the_fused_row(tmp_path, tiny_model_dir, data_dir):
    """The base row and the fused row, each in its own folder and results cell; a second run skips both."""
    from mdr.cli.evaluate import evaluate

    out, results = tmp_path / "eval", tmp_path / "results"
    overrides = tiny_eval_overrides(
        out, tiny_model_dir, data_dir, "data=tatoeba", "eval.tatoeba_langs=[deu,spa]", "eval.fusion={k: 60}",
        f"results_dir={results}",
    )  # fmt: skip
    evaluate(compose_cfg("eval", in_process(overrides)))
    base = json.loads((out / "metrics.json").read_text())
    fused = json.loads((out / "fused" / "rrf" / "metrics.json").read_text())
    assert fused["ranker"]["kind"] == "fusion" and fused["ranker"]["k"] == 60
    assert fused["ranker"]["bm25"]["analyzer_per_language"]["deu"] == "pieces"
    assert "ranker" not in base
    accuracy = [m["datasets"]["tatoeba"]["per_language"]["deu"]["accuracy"] for m in (base, fused)]
    assert accuracy[0] != accuracy[1]
    assert sorted(p.name for p in results.iterdir()) == ["default", "fusion=rrf"]  # in-process: no overrides
    again = tmp_path / "again"
    assert (
        evaluate(compose_cfg("eval", in_process([o.replace(str(out), str(again)) for o in overrides]))) == {}
    )
    bm25 = [f"paths.output_dir={tmp_path / 'bm25'}", f"paths.data_dir={data_dir}", "model=bm25", "data=tatoeba",
            "eval.tatoeba_langs=[deu,spa]", f"results_dir={results / 'bm25'}"]  # fmt: skip
    evaluate(compose_cfg("eval", bm25))
    shutil.move(results / "bm25" / "default", results / "model=bm25")
    shutil.rmtree(results / "bm25")
    from mdr.report.collect import row_key

    keys = {
        c.name: row_key(json.loads((c / "metrics.json").read_text())["config"]) for c in results.iterdir()
    }
    assert {c: k[0] for c, k in keys.items()} == {  # three rows told apart: sampler=untrained is the dense one
        "default": "untrained", "fusion=rrf": "untrained rrf bm25", "model=bm25": "bm25",  # finetune "none" for bm25
    }  # fmt: skip
    assert keys["model=bm25"][2] == "none"  # BM25 is not fine-tuned


def test_a_fused_row_added_later_keeps_the_archived_base_cell(tmp_path, tiny_model_dir, data_dir):
    """A results folder that holds the base cell (scored earlier, perhaps on another CPU kind) gains the fused
    row; the base cell's numbers are kept as they were, and the base row is not scored again."""
    from mdr.cli.evaluate import evaluate

    results = tmp_path / "results"
    base = ("data=tatoeba", "eval.tatoeba_langs=[deu]", f"results_dir={results}")
    first = tiny_eval_overrides(tmp_path / "first", tiny_model_dir, data_dir, *base)
    evaluate(compose_cfg("eval", in_process(first)))
    archived = (results / "default" / "metrics.json").read_bytes()
    later = tiny_eval_overrides(tmp_path / "later", tiny_model_dir, data_dir, *base, "eval.fusion={k: 60}")
    evaluate(compose_cfg("eval", in_process(later)))
    assert (results / "default" / "metrics.json").read_bytes() == archived
    assert (results / "fusion=rrf" / "metrics.json").is_file()
    assert not (tmp_path / "later" / "metrics.json").exists()  # the base row was not scored again


@pytest.mark.parametrize(
    "extra, message",
    [
        (["eval.fusion={k: 0}"], "eval.fusion.k=0: RRF's constant is an integer >= 1"),
        (["eval.fusion={k: 60, weights: [1, 2]}"], "eval.fusion.*weights"),
        (["eval.fusion={bm25: {analyser: words}}"], "eval.fusion.bm25: .*analyser.*conf/model/bm25.yaml"),
    ],
)
def test_impossible_fusion_settings_fail_before_any_scoring(
    tmp_path, tiny_model_dir, data_dir, extra, message
):
    out = tmp_path / "eval"
    overrides = tiny_eval_overrides(out, tiny_model_dir, data_dir, "data=tatoeba", *extra)
    expect_failure("eval", "eval", in_process(overrides), out, InputError, message)


def test_bm25_cannot_be_fused_with_itself(tmp_path, data_dir):
    out = tmp_path / "eval"
    overrides = [f"paths.output_dir={out}", f"paths.data_dir={data_dir}", "model=bm25", "data=tatoeba",
                 "eval.tatoeba_langs=[deu]", "eval.fusion={k: 60}"]  # fmt: skip
    expect_failure(
        "eval", "eval", overrides, out, InputError, "ranks without vectors itself.*drop eval.fusion"
    )
    assert not (out / "eval").exists()  # refused before the base row was scored


@pytest.mark.slow
def test_a_training_run_fuses_the_model_it_trained(tmp_path, tiny_model_dir, data_dir):
    """``train.py ... eval.fusion={k: 60}``: the run that trains a model fuses it (checkpoints are not kept in
    a sweep); the cell and its ``fusion=rrf`` twin are archived, and a rerun of the cell is skipped."""
    from helpers import quick_tiny_overrides, run

    results = tmp_path / "results"
    train = quick_tiny_overrides(
        tiny_model_dir, tmp_path / "run", data_dir, "eval.fusion={k: 60}", f"results_dir={results}", "seed=3"
    )
    run("train.py", *train)
    from mdr.runtime.run_folder import cell_name

    without = [o for o in train if not o.startswith("eval.fusion")]
    assert sorted(p.name for p in results.iterdir()) == sorted(
        [cell_name(without), cell_name([*without, "fusion=rrf"])]
    )
    assert cell_name(train) == cell_name(
        without
    )  # the run's own cell is the same with or without eval.fusion
    metrics = [json.loads(p.read_text()) for p in sorted(results.glob("*/metrics.json"))]
    assert len(metrics) == 2, "the cell and its fused row"
    base, fused = sorted(metrics, key=lambda m: "ranker" in m)
    assert fused["ranker"]["kind"] == "fusion" and fused["ranker"]["dense"] == base["model"]
    assert fused["config"]["fused"] == {
        "kind": "fusion",
        "method": "rrf",
        "k": 60,
        "of": str(tmp_path / "run"),
    }
    assert fused["datasets"]["tatoeba"]["summary"] != base["datasets"]["tatoeba"]["summary"]
    rerun = run("train.py", *[o.replace(str(tmp_path / "run"), str(tmp_path / "again")) for o in train])
    assert "skipped" in (rerun.stdout + rerun.stderr).lower()


def test_trec_runs_fuse_like_ranx_and_by_hand(tmp_path, xquad_slice):
    """``python -m mdr.eval.fuse_runs``: two real rankings of XQuAD-R German written as TREC runs and fused;
    the fused scores equal ranx's RRF on the tie-free queries, and a hand case with a tie and a document
    only one run retrieved."""
    from mdr.eval.fuse_runs import fuse_runs, main, read_run, write_run

    a = {"q1": {"d1": 3.0, "d2": 1.0, "d3": 1.0}}
    b = {"q1": {"d3": 0.9, "d4": 0.5}}
    fused = fuse_runs({"a": a, "b": b}, k=60)["q1"]
    expected = {"d3": 1 / 62 + 1 / 61, "d1": 1 / 61, "d2": 1 / 62, "d4": 1 / 62}
    assert list(fused) == ["d3", "d1", "d2", "d4"] and fused == pytest.approx(expected)

    rs = xquad_slice
    qi = [i for i, lang in enumerate(rs.query_langs) if lang == "de"]
    ci = sorted({rs.cand_texts[i] for i in range(len(rs.cand_texts)) if rs.cand_langs[i] == "de"})
    paths = []
    for n in (2, 3):
        enc = HashingEncoder(dim=4096, ngram=n)
        s = enc.encode([rs.query_texts[i] for i in qi], "query") @ enc.encode(ci, "passage").T
        run = {f"q{i}": {f"d{j}": float(s[i, j]) for j in range(s.shape[1])} for i in range(s.shape[0])}
        paths.append(tmp_path / f"h{n}.trec.gz")
        write_run(run, paths[-1])
    out = tmp_path / "fused.trec"
    assert main([str(p) for p in paths] + ["--out", str(out), "--depth", "1000"]) == 0
    ours = read_run(out)
    runs = [read_run(p) for p in paths]
    reference = fuse(
        [Run(r, f"h{n}") for r, n in zip(runs, (2, 3))], method="rrf", params={"k": 60}
    ).to_dict()
    tie_free = [q for q in ours if all(len(set(r[q].values())) == len(r[q]) for r in runs)]
    assert len(tie_free) >= 0.9 * len(ours)
    for q in tie_free:
        assert ours[q].keys() == reference[q].keys()
        np.testing.assert_allclose([ours[q][d] for d in reference[q]], list(reference[q].values()), atol=2e-6)


@pytest.mark.parametrize(
    "content, message",
    [
        ("q1 Q0 d1 1 0.5\n", r"a.trec:1: 5 fields; a TREC run line is 'qid Q0 docid rank score tag'"),
        ("q1 Q0 d1 1 high mdr\n", r"a.trec:1: score 'high' is not a number"),
        ("q1 Q0 d1 1 0.5 mdr\nq1 Q0 d1 2 0.4 mdr\n", r"a.trec:2: document 'd1' ranked twice for query 'q1'"),
        ("", r"a.trec: no run lines; the file is empty"),
        (
            "q1 Q0 d1 1 0.5 mdr\nq2 Q0 d1 1 0.5 mdr\n",
            r"b.trec has no ranking for query 'q2' of .*a.trec \(1 such",
        ),
    ],
)
def test_bad_run_files_fail_in_one_line(tmp_path, capsys, content, message):
    from mdr.eval.fuse_runs import main

    (tmp_path / "a.trec").write_text(content)
    (tmp_path / "b.trec").write_text("q1 Q0 d9 1 0.7 bm25\n")
    out = tmp_path / "fused.trec"
    assert main([str(tmp_path / "a.trec"), str(tmp_path / "b.trec"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.exists()


class CountingEncoder(HashingEncoder):
    """A hashing encoder that counts the texts it embeds."""

    def __init__(self):
        super().__init__(dim=512, ngram=3)
        self.embedded = 0

    def embed_texts(self, texts):
        self.embedded += len(texts)
        return super().embed_texts(texts)


def test_the_fused_row_reuses_the_base_rows_embeddings(tmp_path, data_dir):
    """One model scored as two rows (its own, then fused): every text is encoded once, and the fused row's
    numbers equal those of a fusion that encodes for itself."""
    from mdr.eval.plan import EvalPlan
    from mdr.eval.settings import EvalSettings
    from mdr.eval.suite import run_eval

    settings = EvalSettings(
        datasets=["xquad_r", "tatoeba"], tatoeba_langs=["deu", "spa"], show_progress=False, run_files="none",
        fusion={"k": 60},
    )  # fmt: skip
    plan = EvalPlan.build(settings, data_dir)
    plan.sets[0] = plan.sets[0].subset(sorted(set(plan.sets[0].query_ids))[:30])
    shared, alone, cache = CountingEncoder(), CountingEncoder(), {}
    base = run_eval(shared, plan, tmp_path / "base", encode_cache=cache)
    plain = run_eval(CountingEncoder(), plan, tmp_path / "plain")  # the cache does not move the base row
    assert all(
        base["datasets"][ds]["summary"] == plain["datasets"][ds]["summary"] for ds in ("xquad_r", "tatoeba")
    )
    encoded_once = shared.embedded
    fused = run_eval(
        FusedRanker(shared, BM25(), 60), plan.for_fused_row(), tmp_path / "fused", encode_cache=cache
    )
    assert shared.embedded == encoded_once > 0
    again = run_eval(FusedRanker(alone, BM25(), 60), plan.for_fused_row(), tmp_path / "alone")
    assert alone.embedded == encoded_once
    for ds in ("xquad_r", "tatoeba"):
        assert fused["datasets"][ds]["summary"] == again["datasets"][ds]["summary"]
