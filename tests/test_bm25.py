"""BM25 (``model=bm25``, bm25s) against independent references on real XQuAD-R and Tatoeba text: Lucene's formula
written out here, and rank_bm25's BM25+; the evaluation ranks each pool with that pool's own index."""

import math
from collections import Counter

import numpy as np
import pytest
import rank_bm25
import torch

from mdr.data.sources import load_eval_set
from mdr.eval.lareqa import evaluate_lareqa
from mdr.eval.metrics import relevant_ranks
from mdr.eval.plan import EvalPlan
from mdr.eval.scoring import LexicalRanker
from mdr.eval.settings import EvalSettings
from mdr.eval.suite import run_eval
from mdr.modeling.lexical import BM25
from mdr.runtime.errors import InputError


@pytest.fixture(scope="module")
def model():
    return BM25()


@pytest.fixture(scope="module")
def xquad_slice(data_dir):
    """XQuAD-R in three languages and scripts (de, ru, zh), 60 questions."""
    rs = load_eval_set("xquad_r", data_dir, langs=["de", "ru", "zh"])
    return rs.subset(sorted(set(rs.query_ids))[:60])


def lucene_scores(docs: list[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """Lucene's BM25 (8.0 and later: no (k1 + 1) factor, which does not change a ranking), written out:
    idf = ln(1 + (N - df + 0.5) / (df + 0.5)); every query token counts, repeats included."""
    n, avgdl = len(docs), sum(map(len, docs)) / len(docs)
    df = Counter(t for d in docs for t in set(d))
    out = np.zeros(n)
    for i, d in enumerate(docs):
        tf = Counter(d)
        for t in query:
            if tf[t]:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                out[i] += idf * tf[t] / (tf[t] + k1 * (1 - b + b * len(d) / avgdl))
    return out


def test_scores_equal_lucenes_formula_on_real_text(model, xquad_slice):
    rs = xquad_slice
    de = [i for i, lang in enumerate(rs.cand_langs) if lang == "de"]
    docs = model.analyze([rs.cand_texts[i] for i in de], "de")
    queries = model.analyze([t for t, lang in zip(rs.query_texts, rs.query_langs) if lang == "de"][:15], "de")
    ours = model.score(model.index(docs), queries).numpy()
    reference = np.stack([lucene_scores(docs, q) for q in queries])
    assert reference.max() > 1.0  # real matches, not an all-zero comparison
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)


def test_bm25_plus_equals_rank_bm25(xquad_slice):
    rs = xquad_slice
    plus = BM25(method="bm25+", delta=1.0)
    ru = [i for i, lang in enumerate(rs.cand_langs) if lang == "ru"]
    docs = plus.analyze([rs.cand_texts[i] for i in ru], "ru")
    queries = plus.analyze([t for t, lang in zip(rs.query_texts, rs.query_langs) if lang == "ru"][:15], "ru")
    reference = rank_bm25.BM25Plus(docs, k1=1.2, b=0.75, delta=1.0)
    np.testing.assert_allclose(
        plus.score(plus.index(docs), queries).numpy(),
        np.stack([reference.get_scores(q) for q in queries]),
        rtol=1e-4,
        atol=1e-4,
    )


def test_each_pool_is_ranked_with_its_own_index(model, xquad_slice):
    """x->y ranks against an index of y's candidates alone, x->all against every language's: the gold ranks
    equal those of rank_bm25 built on the same pool (Lucene idf and the tie rule of mdr.eval.metrics)."""
    rs = xquad_slice
    result = evaluate_lareqa(rs, None, None, ranker=LexicalRanker(model))
    q_langs = np.asarray(rs.query_langs)
    cand_langs = np.asarray(rs.cand_langs)
    for x, y in (("zh", "zh"), ("de", "ru"), ("ru", "all")):
        qi = np.flatnonzero(q_langs == x)
        pool = np.flatnonzero(cand_langs == y) if y != "all" else np.concatenate(
            [np.flatnonzero(cand_langs == lang) for lang in rs.langs]
        )  # fmt: skip
        docs = [model.analyze([rs.cand_texts[g]], rs.cand_langs[g])[0] for g in pool]
        queries = model.analyze([rs.query_texts[i] for i in qi], x)
        scores = torch.tensor(np.stack([lucene_scores(docs, q) for q in queries]), dtype=torch.float32)
        position = {int(g): j for j, g in enumerate(pool)}
        if y == "all":
            rel = [[position[rs.answer_of[(lang, rs.query_ids[i])]] for lang in rs.langs] for i in qi]
        else:
            rel = [[position[rs.answer_of[(y, rs.query_ids[i])]]] for i in qi]
        expected = relevant_ranks(scores, torch.tensor(rel))
        name = f"{x}->{y}"
        assert np.array_equal(result.query_rows[name], qi)
        got = torch.from_numpy(result.ranks[name].astype(np.float64))
        if y == "all":
            assert torch.equal(got, expected.to(got.dtype))
        else:
            assert torch.equal(got[:, 0], expected[:, 0].to(got.dtype))


def test_tatoeba_ranks_each_side_against_the_other_sides_index(model, data_dir):
    ts = load_eval_set("tatoeba", data_dir, tatoeba_langs=["deu"])
    pair = ts.languages["deu"]
    ranks = LexicalRanker(model).bitext_ranks(ts, "deu")
    src, eng = model.analyze(list(pair.texts), "deu"), model.analyze(list(pair.english), "eng")
    rows = range(0, len(src), 97)  # a spread of sentences
    for i in rows:
        to_eng = torch.tensor(lucene_scores(eng, src[i]), dtype=torch.float32).view(1, -1)
        from_eng = torch.tensor(lucene_scores(src, eng[i]), dtype=torch.float32).view(1, -1)
        assert ranks["to_eng"][i] == relevant_ranks(to_eng, torch.tensor([[i]]))[0, 0]
        assert ranks["from_eng"][i] == relevant_ranks(from_eng, torch.tensor([[i]]))[0, 0]
    assert (ranks["to_eng"] == 1).mean() > 0.02  # German and English share pieces: some pairs are found


def test_analyzers_per_language():
    snowball = BM25(analyzer="snowball", analyzer_per_language={"xx": "words"})
    assert snowball.check_languages(["de", "deu", "zh", "tha", "vi", "swh", "xx"]) == {
        "de": "snowball:german", "deu": "snowball:german", "zh": "pieces", "tha": "pieces", "vi": "words",
        "swh": "words", "xx": "words",
    }  # fmt: skip
    assert snowball.analyze(["Die Häuser standen"], "de") == [["die", "haus", "stand"]]
    pieces = BM25()
    (zh,) = pieces.analyze(["特斯拉在1886年"], "zh")
    assert len(zh) > 1  # no spaces, still several tokens


def test_an_unknown_language_is_refused_before_any_scoring(data_dir, tmp_path):
    with pytest.raises(
        InputError, match="no analyzer for language 'qqq'.*analyzer_per_language=\\{qqq: words\\}"
    ):
        BM25(analyzer="snowball").check_languages(["de", "qqq"])
    plan = EvalPlan.build(EvalSettings(datasets=["xquad_r"], show_progress=False, run_files="none"), data_dir)
    plan.sets[0].langs.append("qqq")  # a set whose languages the analyzer does not all know
    with pytest.raises(InputError, match="'qqq'"):
        run_eval(BM25(analyzer="snowball"), plan, tmp_path)
    assert not any(tmp_path.iterdir())


def test_what_bm25_cannot_do_is_refused_in_one_line(data_dir, tmp_path):
    settings = EvalSettings(datasets=["xquad_r"], show_progress=False, attack={"budgets": [1]})
    with pytest.raises(InputError, match="eval.attack: bm25 \\(pieces\\) ranks without vectors"):
        run_eval(BM25(), EvalPlan.build(settings, data_dir), tmp_path)
