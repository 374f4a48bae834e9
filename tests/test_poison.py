"""Corpus poisoning (``eval.poison``, HotFlip after Zhong et al. 2023) on a tiny model and real XQuAD-R text:
the split keeps every language version of a question on one side, 0 passages leave the clean ranks exactly,
0 steps is the success curve's first point, the attacker similarity never decreases, and what cannot be
poisoned is refused in one line before any model loads."""

import json

import numpy as np
import pytest
import torch

from mdr.data.sources import load_eval_set
from mdr.eval.lareqa import evaluate_lareqa
from mdr.eval.plan import EvalPlan
from mdr.eval.poison import HotFlip, PoisonSettings, run_poison, split_ids
from mdr.eval.settings import EvalSettings
from mdr.eval.suite import run_eval
from mdr.modeling.baselines import HashingEncoder
from mdr.modeling.encoder import DualEncoder
from mdr.modeling.lexical import BM25
from mdr.runtime.errors import InputError


@pytest.fixture(scope="module")
def small_set(data_dir):
    rs = load_eval_set("xquad_r", data_dir, langs=["en", "de", "th"])
    return rs.subset(sorted(set(rs.query_ids))[:40])


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir), passage_prefix="passage: ", query_prefix="query: ")
    enc.eval()
    return enc


def embeddings(enc, rs):
    q = enc.encode(rs.query_texts, "query", show_progress=False)
    c = enc.encode(rs.cand_texts, "passage", contexts=rs.cand_contexts, show_progress=False)
    return q, c


def settings(**kw) -> PoisonSettings:
    base = {
        "passages": 2,
        "length": 8,
        "steps": 6,
        "candidates": 8,
        "attacker_langs": ["en"],
        "curve_every": 3,
    }
    return PoisonSettings(**{**base, **kw})


def test_the_split_keeps_each_question_on_one_side(small_set):
    attacker, evaluated = split_ids(small_set, settings())
    assert not set(attacker) & set(evaluated) and set(attacker) | set(evaluated) == set(small_set.query_ids)
    assert split_ids(small_set, settings())[0] == attacker  # drawn from the split seed alone
    assert split_ids(small_set, settings(split_seed=1))[0] != attacker


def test_zero_passages_leave_the_clean_ranks_bit_for_bit(small_set, tiny):
    q, c = embeddings(tiny, small_set)
    result = run_poison(small_set, q, c, tiny, settings(passages=0), lambda t: tiny.encode(t, "passage"), progress=lambda _: None)  # fmt: skip
    clean = evaluate_lareqa(small_set, q, c)
    attacker_ids = set(result.attacker_ids)
    assert not any(small_set.query_ids[r] in attacker_ids for r in result.rows)  # no evaluated id attacks
    for x in ("en", "de", "th"):
        rows = clean.query_rows[f"{x}->{x}"]
        mine = np.isin(rows, result.rows)
        expected = torch.from_numpy(clean.ranks[f"{x}->{x}"][mine, :1].astype(np.float64))
        got = result.gold_ranks["en"]["mono"][np.asarray(result.langs) == x][:, :1].double()
        assert torch.equal(got, expected)
        multi_rows = clean.query_rows[f"{x}->all"]
        expected = torch.from_numpy(
            clean.ranks[f"{x}->all"][np.isin(multi_rows, result.rows)].astype(np.float64)
        )
        got = result.gold_ranks["en"]["multi"][np.asarray(result.langs) == x].double()
        assert torch.equal(got[:, : expected.shape[1]], expected)
    assert not result.success["en"]["multi"].any()


def test_the_similarity_never_decreases_and_zero_steps_is_the_first_point(small_set, tiny):
    q, c = embeddings(tiny, small_set)
    encode = lambda t: tiny.encode(t, "passage")  # noqa: E731
    long = run_poison(small_set, q, c, tiny, settings(steps=12), encode, progress=lambda _: None)
    sims = [p["similarity"] for p in long.curve["en"]]
    assert [p["step"] for p in long.curve["en"]] == [0, 3, 6, 9, 12]
    assert all(b >= a for a, b in zip(sims, sims[1:])) and sims[-1] > sims[0]
    zero = run_poison(small_set, q, c, tiny, settings(steps=0), encode, progress=lambda _: None)
    assert zero.curve["en"] == long.curve["en"][:1]
    for p in long.passages["en"]:
        assert len(p["token_ids"]) == 8 and isinstance(p["text"], str)


def test_hotflip_never_flips_the_prefix_or_special_tokens(tiny):
    flip = HotFlip(tiny, length=8, candidates=4)
    tokens = flip.initial(np.random.default_rng(0))
    ids = flip.full_ids(tokens.view(1, -1))[0].tolist()
    prefix = tiny.tokenizer("passage: ", add_special_tokens=False)["input_ids"]
    assert ids[flip.front : flip.start] == prefix and ids[flip.start : flip.start + 8] == tokens.tolist()
    assert not set(tokens.tolist()) & set(tiny.tokenizer.all_special_ids)
    target = torch.nn.functional.normalize(torch.randn(tiny.model.config.hidden_size), dim=0)
    current = float(flip.similarity(tokens.view(1, -1), target)[0])
    after, sim = flip.step(tokens, target, 3, current)
    assert sim >= current and torch.equal(after[:3], tokens[:3]) and torch.equal(after[4:], tokens[4:])


@pytest.mark.parametrize(
    "poison, message",
    [
        ({"passages": 0.5}, r"eval.poison.passages=0.5: give an integer >= 0"),
        ({"length": 0}, r"eval.poison.length=0: give an integer >= 1"),
        ({"steps": -1}, r"eval.poison.steps=-1"),
        (
            {"attacker_langs": ["xx"]},
            r"eval.poison.attacker_langs has languages without queries in xquad_r: \['xx'\]",
        ),
        ({"lenght": 50}, r"eval.poison.*lenght"),
        ({"passages": 5000}, r"eval.poison.passages=5000 is more than the .* attacker questions"),
    ],
)
def test_impossible_settings_fail_before_any_model_loads(data_dir, poison, message):
    with pytest.raises(InputError, match=message):
        EvalPlan.build(EvalSettings(datasets=["xquad_r"], show_progress=False, poison=poison), data_dir)


@pytest.mark.parametrize("model", [BM25(), HashingEncoder(dim=64)], ids=["bm25", "hashing"])
def test_a_model_without_gradients_is_refused(data_dir, tmp_path, model):
    plan = EvalPlan.build(
        EvalSettings(datasets=["xquad_r"], show_progress=False, poison={"steps": 1}), data_dir
    )
    with pytest.raises(InputError, match="eval.poison"):
        run_eval(model, plan, tmp_path)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.slow
def test_eval_py_poisons_a_model_and_writes_every_output(tmp_path, tiny_model_dir, data_dir):
    from helpers import run, tiny_eval_overrides

    out = tmp_path / "eval"
    poison = "eval.poison={passages: 2, length: 6, steps: 4, candidates: 4, attacker_langs: [en, th], curve_every: 2}"
    run(
        "eval.py",
        *tiny_eval_overrides(out, tiny_model_dir, data_dir, "data=xquad_r", "eval.run_files=none", poison),
    )
    metrics = json.loads((out / "metrics.json").read_text())
    entry = metrics["datasets"]["xquad_r~poison"]
    assert entry["kind"] == "poison" and set(entry["attacker_langs"]) == {"en", "th"}
    assert len(entry["attacker_langs"]["th"]["transfer"]["multi"]) == 11  # every query language
    folder = out / "eval" / "xquad_r~poison"
    split = json.loads((folder / "split.json").read_text())
    assert not set(split["attacker_ids"]) & set(split["evaluated_ids"])
    passages = json.loads((folder / "passages.json").read_text())
    assert len(passages["en"]) == 2 and all(len(p["token_ids"]) == 6 for p in passages["en"])
    assert (folder / "transfer.png").stat().st_size > 5_000 and (folder / "transfer.csv").is_file()
    clean = metrics["datasets"]["xquad_r"]["summary"]["mono"]["map"]
    assert 0 < entry["clean"]["mono"]["map"] <= 1 and abs(entry["clean"]["mono"]["map"] - clean) < 0.1
