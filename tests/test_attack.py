"""The budgeted query attack (``eval.attack``): the greedy step, the budget, exact clean metrics at k = 0,
determinism, and that the search finds edits random noise of the same size does not."""

import json

import numpy as np
import pytest
import torch

from mdr.data.corpus import RetrievalSet
from mdr.data.edits import HOMOGLYPHS, KEYBOARD, Edit, Query, candidate_edits, counterpart
from mdr.data.sources import load_eval_set
from mdr.eval.attack import AttackSettings, margins, run_attack, sample_queries
from mdr.eval.lareqa import evaluate_lareqa
from mdr.eval.outputs.attack import ADVERSARIAL_FILE, summarise, write_attack_outputs
from mdr.eval.outputs.per_query import per_query_metric
from mdr.eval.plan import EvalPlan
from mdr.eval.suite import EvalSettings, run_eval
from mdr.modeling.baselines import HashingEncoder

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def bag_of_letters(texts, desc=None):
    """A toy model: L2-normalised counts of the letters a-z (nothing else counts)."""
    out = np.zeros((len(texts), len(LETTERS)), dtype=np.float32)
    for i, t in enumerate(texts):
        for c in t.lower():
            if c in LETTERS:
                out[i, LETTERS.index(c)] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def toy_set(
    queries: dict[str, str], candidates: list[tuple[str, str]], answers: dict[str, int]
) -> RetrievalSet:
    """One language ("en"): queries by id, candidates (uid, text), answer candidate index by id."""
    ids = list(queries)
    return RetrievalSet(
        name="toy",
        query_ids=ids,
        query_langs=["en"] * len(ids),
        query_texts=[queries[i] for i in ids],
        cand_uids=[u for u, _ in candidates],
        cand_langs=["en"] * len(candidates),
        cand_texts=[t for _, t in candidates],
        cand_contexts=[""] * len(candidates),
        answer_of={("en", i): a for i, a in answers.items()},
    )


def attack_of(rs, encode, **settings):
    q = encode(rs.query_texts)
    c = encode(rs.cand_texts)
    return run_attack(rs, q, c, AttackSettings(**settings), lambda texts, desc: encode(texts))


def test_greedy_keeps_the_edit_with_the_largest_margin_drop():
    """Hand-checked: query "a a b c", gold "a", distractor "b" (bag of letters).
    Clean: (2,1,1)/sqrt(6) -> margin 2/sqrt(6) - 1/sqrt(6) = 0.408.
    Dropping an "a" -> "a b c" = (1,1,1)/sqrt(3): margin 0 (a tie counts against the gold: success);
    dropping "b" -> "a a c": 2/sqrt(5) - 0 = 0.894; dropping "c" -> "a a b": 2/sqrt(5) - 1/sqrt(5) = 0.447."""
    rs = toy_set({"q": "a a b c"}, [("en:0:0", "a"), ("en:0:1", "b")], {"q": 0})
    result = attack_of(
        rs, bag_of_letters, ops=["drop"], settings=["mono"], budgets=[1, 2], queries_per_lang=1
    )
    (path,) = result.paths
    assert path.margins[0] == pytest.approx(1 / np.sqrt(6), abs=1e-6)
    assert path.edits == [Edit("drop", 0, "a", "")]
    assert path.margins[1] == pytest.approx(0.0, abs=1e-6)
    assert path.stop == "success"
    assert result.metrics[("clean", 0)]["p@1"].tolist() == [1.0]
    assert result.metrics[("greedy", 1)]["p@1"].tolist() == [0.0]


def test_greedy_picks_argmin_among_all_candidates_on_real_queries(data_dir):
    """Each kept edit's margin is the minimum over every candidate of that step, recomputed here independently
    (the toy model's margins by numpy), and it lowers the margin."""
    rs = load_eval_set("xquad_r", data_dir, langs=["de", "en"])
    rs = rs.subset(sorted(set(rs.query_ids))[:40])
    result = attack_of(
        rs, bag_of_letters, budgets=[3], queries_per_lang=8, max_candidates=10_000, settings=["mono"]
    )
    c = bag_of_letters(rs.cand_texts)
    checked = 0
    for p in result.paths:
        pool = [i for i, lang in enumerate(rs.cand_langs) if lang == p.target.pool]
        gold = p.target.relevant[p.target.relevant >= 0]
        for step, edit in enumerate(p.edits):
            before = p.queries[step]
            rng_cands = [before.apply(e).text for e in _candidates_of(result, p, step)]
            s = bag_of_letters(rng_cands) @ c[pool].T
            rel = s[:, gold].max(1)
            s[:, gold] = -np.inf
            expected = (rel - s.max(1)).min()
            assert p.margins[step + 1] == pytest.approx(expected, abs=1e-5)
            assert p.margins[step + 1] < p.margins[step]
            assert p.queries[step + 1] == before.apply(edit)
            checked += 1
    assert checked >= 5


def _candidates_of(result, path, step):
    """The candidates the attack drew at ``step`` (regenerated with its own seeded generator)."""
    from mdr.eval.attack import _rng

    rs_uid = result.uids[result.paths.index(path)]
    s = result.settings
    rng = _rng(s.seed, "greedy", rs_uid, step, path.queries[step].text)
    edits = candidate_edits(path.queries[step], tuple(s.ops), rng, result.translations[path.target.row])
    assert len(edits) <= s.max_candidates
    return edits


@pytest.fixture(scope="module")
def xquad_hashing(data_dir):
    """A slice of XQuAD-R (4 languages and scripts, 300 questions) scored by the weightless hashing model."""
    rs = load_eval_set("xquad_r", data_dir, langs=["de", "en", "ru", "zh"])
    rs = rs.subset(sorted(set(rs.query_ids))[:300])
    enc = HashingEncoder(dim=1024, ngram=3)
    return rs, enc, enc.embed_texts(rs.query_texts), enc.embed_texts(rs.cand_texts)


def hashing_attack(xquad_hashing, **settings):
    rs, enc, q, c = xquad_hashing
    return run_attack(rs, q, c, AttackSettings(**settings), lambda texts, desc: enc.embed_texts(texts))


def test_budget_is_never_exceeded(xquad_hashing, tmp_path):
    result = hashing_attack(xquad_hashing, budgets=[1, 2], queries_per_lang=3)
    assert all(len(p.edits) <= 2 for p in result.paths)
    assert all(len(qs) - 1 <= 2 for qs in result.random.values())
    write_attack_outputs(result, summarise(result), xquad_hashing[0].query_texts, tmp_path)
    records = [json.loads(line) for line in (tmp_path / ADVERSARIAL_FILE).read_text().splitlines()]
    assert len(records) == len(result.paths) == 3 * 4 * 3
    for rec in records:
        assert len(rec["edits"]) <= 2 and len(rec["random"]) <= 2
        if rec["stop"] == "success":
            assert rec["edits"][-1]["margin"] <= 0 and rec["p@1"]["2"] == 0.0
    # the query after k edits is what the budget-k metrics scored: a success within 1 edit has P@1 0 at k=1
    for p, rec in zip(result.paths, records):
        if p.success_edits == 1:
            assert rec["p@1"]["1"] == 0.0


def test_budget_zero_reproduces_the_clean_metrics_exactly(xquad_hashing):
    rs, _, q, c = xquad_hashing
    result = hashing_attack(xquad_hashing, budgets=[0], queries_per_lang=15)
    clean = evaluate_lareqa(rs, q, c)
    assert all(not p.edits for p in result.paths)
    for i, p in enumerate(result.paths):
        name = f"{rs.query_langs[p.target.row]}->{p.target.pool}"
        j = int(np.flatnonzero(clean.query_rows[name] == p.target.row)[0])
        for metric in ("map", "p@1", "mrr@5"):
            expected = per_query_metric(clean.ranks[name][j : j + 1], metric)[0]
            assert result.metrics[("greedy", 0)][metric][i] == expected  # exact, ties included
            assert result.metrics[("clean", 0)][metric][i] == expected


def test_same_seed_same_adversarial_queries(xquad_hashing, tmp_path):
    texts = []
    for run, seed in enumerate((0, 0, 1)):
        result = hashing_attack(xquad_hashing, budgets=[2], queries_per_lang=2, seed=seed)
        write_attack_outputs(result, summarise(result), xquad_hashing[0].query_texts, tmp_path / str(run))
        texts.append((tmp_path / str(run) / ADVERSARIAL_FILE).read_text())
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_search_succeeds_where_random_noise_of_the_same_size_does_not(data_dir):
    rs = load_eval_set("xquad_r", data_dir, langs=["en"])
    rs = rs.subset(sorted(set(rs.query_ids))[:60])  # 60 questions on 20 sentences
    result = attack_of(rs, bag_of_letters, budgets=[1, 2], queries_per_lang=60, settings=["mono"])
    row = summarise(result)["all"]["mono"]
    assert row["n_correct_clean"] >= 15
    for k in ("1", "2"):
        greedy, random = row["greedy"][k]["success_rate"], row["random"][k]["success_rate"]
        assert greedy >= 0.6, (k, greedy)
        assert greedy >= 3 * random, (k, greedy, random)
        assert row["greedy"][k]["p@1"] < row["random"][k]["p@1"]


def test_sample_is_seeded_per_language_and_model_free(xquad_hashing):
    rs = xquad_hashing[0]
    rows = sample_queries(rs, AttackSettings(queries_per_lang=5))
    assert rows == sample_queries(rs, AttackSettings(queries_per_lang=5))
    assert rows != sample_queries(rs, AttackSettings(queries_per_lang=5, seed=1))
    langs = [rs.query_langs[r] for r in rows]
    assert {lang: langs.count(lang) for lang in set(langs)} == {lang: 5 for lang in rs.langs}


def test_margin_is_best_relevant_minus_best_other():
    scores = torch.tensor([[0.5, 0.9, 0.1, 0.7], [0.2, 0.1, 0.1, 0.3]])
    rel = np.array([1, 2, -1])
    assert margins(scores, rel) == pytest.approx([0.9 - 0.7, 0.1 - 0.3])


def test_candidate_edits():
    rng = np.random.default_rng(0)
    q = Query.of("Where is Paris")
    edits = candidate_edits(
        q, ("neighbour", "homoglyph", "drop", "translate"), rng, Query.of("Wo liegt Paris")
    )
    texts = [q.apply(e).text for e in edits]
    assert len(texts) == len(set(texts)) and q.text not in texts
    for e in edits:
        if e.op == "neighbour":
            (pos,) = [i for i, (a, b) in enumerate(zip(e.before, e.after)) if a != b]
            assert e.after[pos].lower() in KEYBOARD[e.before[pos].lower()]
        if e.op == "homoglyph":
            (pos,) = [i for i, (a, b) in enumerate(zip(e.before, e.after)) if a != b]
            assert HOMOGLYPHS[e.before[pos]] == e.after[pos] and e.after[pos] != e.before[pos]
    assert {e.after for e in edits if e.op == "translate"} == {"Wo", "liegt"}  # "Paris" -> "Paris": no change
    last = Query.of("a b").apply(Edit("drop", 0, "a", ""))
    assert last.text == "b" and candidate_edits(last, ("drop",), rng) == []  # never drops the last word
    assert Query.of("巴黎在哪").units == (
        "巴",
        "黎",
        "在",
        "哪",
    )  # unspaced scripts: characters are the units
    assert counterpart(Query.of("a b c d e"), 4, Query.of("x y z")) == "z"
    with pytest.raises(ValueError, match="does not match"):
        q.apply(Edit("drop", 0, "Paris", ""))


@pytest.mark.parametrize(
    "attack, message",
    [
        ({"name": "hotflip"}, "unknown attack eval.attack.name='hotflip'"),
        ({"budgets": [1, -2]}, "integers >= 0"),
        ({"ops": ["typo"]}, "unknown operations \\['typo'\\]"),
        ({"queries_per_lang": 5000}, "larger than the 1190 queries of 'ar' in xquad_r; lower it"),
        ({"langs": ["xx"]}, "languages without queries in xquad_r: \\['xx'\\]"),
        ({"budget": 3}, "unknown key\\(s\\) \\['budget'\\]"),
    ],
)
def test_bad_attack_config_fails_before_anything_is_written(data_dir, tmp_path, attack, message):
    settings = EvalSettings(datasets=["xquad_r"], attack=attack, show_progress=False)
    with pytest.raises(ValueError, match=message):
        run_eval(HashingEncoder(dim=64), EvalPlan.build(settings, data_dir), tmp_path)
    assert not any(tmp_path.iterdir())


def fake_attack_run(run_dir, sampler_class, encoder, rs, seed=0):
    """A run folder holding only an attack evaluation (metrics.json + per-query file), as eval.py writes it."""
    import yaml

    from mdr.eval.outputs.attack import entry
    from mdr.runtime.files import atomic_write_json

    q, c = encoder.embed_texts(rs.query_texts), encoder.embed_texts(rs.cand_texts)
    result = run_attack(
        rs, q, c, AttackSettings(budgets=[1, 2], queries_per_lang=6), lambda t, d: encoder.embed_texts(t)
    )
    summary = summarise(result)
    write_attack_outputs(result, summary, rs.query_texts, run_dir / "eval" / "xquad_r~attack")
    config = {
        "sampler": {"_target_": f"mdr.training.samplers.{sampler_class}"},
        "model": {"name": "hashing"},
        "finetune": {"mode": "full"},
        "seed": seed,
    }
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {"datasets": {"xquad_r~attack": entry(result, summary)}, "headline": {}, "config": config}
    atomic_write_json(run_dir / "metrics.json", metrics)
    return result, summary


def test_report_adversarial_table_and_paired_test(xquad_hashing, tmp_path):
    """report.py's adversarial table shows each run's summary; its p-value is the paired test over the same
    (query, setting) targets, recomputed here from the per-query files."""
    import csv

    from mdr.report.significance import paired_randomization_test
    from mdr.report.write import write_report

    rs = xquad_hashing[0]
    _, base = fake_attack_run(tmp_path / "runs" / "a", "XXSampler", HashingEncoder(dim=1024, ngram=3), rs)
    other, summary = fake_attack_run(
        tmp_path / "runs" / "b", "HybridSampler", HashingEncoder(dim=512, ngram=2), rs
    )
    write_report(tmp_path / "runs", tmp_path / "out", baseline="sampler=xx", permutations=2000)
    md = (tmp_path / "out" / "adversarial.md").read_text()
    assert (tmp_path / "out" / "adversarial.png").stat().st_size > 0
    table = [[c.strip(" |†") for c in line.split(" | ")] for line in md.splitlines() if line.startswith("| ")]
    rows = [dict(zip(table[0], cells)) for cells in table[1:]]
    (row,) = [r for r in rows if r["sampler"] == "hybrid" and r["setting"] == "multi"]
    assert float(row["clean P@1"]) == pytest.approx(summary["all"]["multi"]["clean"]["p@1"], abs=5e-4)
    assert float(row["P@1 k=2"]) == pytest.approx(summary["all"]["multi"]["greedy"]["2"]["p@1"], abs=5e-4)
    assert float(row["success k=2"]) == pytest.approx(
        summary["all"]["multi"]["greedy"]["2"]["success_rate"], abs=5e-4
    )
    assert float(row["random P@1 k=1"]) == pytest.approx(
        summary["all"]["multi"]["random"]["1"]["p@1"], abs=5e-4
    )
    assert {r["sampler"] for r in rows} == {"xx", "hybrid"}
    # a run may hold several attack sets (xquad_r~attack, xquad_r~attack_chars): each row names its own
    assert {r["attack set"] for r in rows} == {"xquad_r~attack"}
    with (tmp_path / "out" / "adversarial.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["sampler"] == "hybrid" and r["column"] == "P@1 k=2"]
    by_setting = {r["setting"]: r for r in rows}
    a = np.load(tmp_path / "runs" / "b" / "eval" / "xquad_r~attack" / "per_query.npz")
    b = np.load(tmp_path / "runs" / "a" / "eval" / "xquad_r~attack" / "per_query.npz")
    assert list(a["uids"]) == list(b["uids"]) and list(a["settings"]) == list(b["settings"])  # same targets
    for setting in ("mono", "cross", "multi"):
        sel = a["settings"] == setting
        x, y = a["greedy/k2/p@1"][sel], b["greedy/k2/p@1"][sel]
        assert float(by_setting[setting]["diff_vs_baseline"]) == pytest.approx(x.mean() - y.mean())
        assert float(by_setting[setting]["p_value"]) == pytest.approx(paired_randomization_test(x, y, 2000))


@pytest.mark.slow
def test_eval_multirun_adversarial_to_report(tmp_path, tiny_run, tiny_model_dir, data_dir):
    """As a user runs it: ``eval.py -m experiment=adversarial ckpt=null,<best.ckpt>``, then report.py."""
    from helpers import run, tiny_model_overrides

    sweep = tmp_path / "sweep"
    best = tiny_run.dir / "checkpoints" / "best.ckpt"
    proc = run(
        "eval.py",
        "-m",
        "experiment=adversarial",
        f"ckpt=null,{best}",
        f"hydra.sweep.dir={sweep}",
        *tiny_model_overrides(tiny_model_dir, data_dir),
        "eval.batch_size=256",
        "eval.precision=fp32",
        "eval.attack.queries_per_lang=2",
        "eval.attack.budgets=[1,2]",
        f"results_dir={tmp_path / 'results'}",
    )
    assert "greedy attack success rate: mono k=1" in proc.stdout
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        attack = metrics["datasets"]["xquad_r~attack"]
        assert attack["n_sampled_queries"] == 2 * 11 and attack["n_targets"] == 3 * 2 * 11
        lines = (sweep / job / "eval" / "xquad_r~attack" / ADVERSARIAL_FILE).read_text().splitlines()
        assert len(lines) == attack["n_targets"]
    cells = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert (
        len(cells) == 2 and "ckpt=null,eval.attack.budgets=[1,2]" in cells[-1]
    )  # the checkpoint's cell: its training overrides
    assert cells[0].startswith("ckpt.data.datamodule.batch_size=16,") and len(cells[0]) <= 160
    assert (tmp_path / "results" / cells[0] / "eval" / "xquad_r~attack" / ADVERSARIAL_FILE).exists()
    report = run("report.py", str(sweep), "--baseline", "sampler=untrained", "--permutations", "1000")
    assert "Greedy query attack" in report.stdout
    table = (sweep / "adversarial.md").read_text()
    assert "| untrained |" in table and "| hybrid |" in table


def test_attack_on_a_checkpoint_without_training_languages_names_the_fix(tmp_path, tiny_model_dir, data_dir):
    from helpers import compose_cfg, expect_failure, in_process, tiny_eval_overrides

    from mdr.cli.common import make

    cfg = compose_cfg("eval", in_process(tiny_eval_overrides(tmp_path / "x", tiny_model_dir, data_dir)))
    encoder = make(cfg.model.encoder)
    ckpt = tmp_path / "foreign.ckpt"  # encoder weights, but no record of the training languages
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()}}, ckpt)
    out = tmp_path / "eval"
    overrides = tiny_eval_overrides(out, tiny_model_dir, data_dir, "experiment=adversarial", f"ckpt={ckpt}")
    expect_failure(
        "eval",
        "eval",
        in_process([*overrides, "results_dir=null"]),
        out,
        ValueError,
        "pass seen_langs=\\[...\\]",
    )


CHAR_OPS = ["delete", "swap", "insert", "neighbour", "homoglyph"]


def test_an_attack_variant_is_the_base_with_its_keys_changed():
    from mdr.eval.attack import parse_attacks

    base = {"budgets": [1, 2], "queries_per_lang": 7, "seed": 3}
    (name0, a), (name1, b) = parse_attacks(base, {"chars": {"ops": CHAR_OPS}})
    assert (name0, name1) == ("", "chars")
    assert b.ops == CHAR_OPS and a.ops != CHAR_OPS
    assert (
        (b.budgets, b.queries_per_lang, b.seed) == (a.budgets, a.queries_per_lang, a.seed) == ([1, 2], 7, 3)
    )
    assert parse_attacks(None, None) == []


@pytest.mark.parametrize(
    "base, variants, message",
    [
        (
            None,
            {"chars": {"ops": CHAR_OPS}},
            "eval.attack_variants changes keys of eval.attack, which is not set",
        ),
        (
            {},
            {"chars": {"ops": CHAR_OPS}},
            "eval.attack_variants changes keys of eval.attack, which is not set",
        ),
        ({"budgets": [1]}, {"Chars!": {"ops": CHAR_OPS}}, "eval.attack_variants.Chars!: a variant's name"),
        ({"budgets": [1]}, {"chars": {}}, "eval.attack_variants.chars: give the keys this variant changes"),
        ({"budgets": [1]}, {"chars": {"opz": CHAR_OPS}}, "eval.attack_variants.chars.*unknown key"),
        ({"budgets": [1]}, {"chars": {"ops": ["typo"]}}, "unknown operations \\['typo'\\]"),
    ],
)
def test_bad_attack_variants_name_the_key(base, variants, message):
    from mdr.eval.attack import parse_attacks

    with pytest.raises(ValueError, match=message):
        parse_attacks(base, variants)


def test_a_variant_attacks_the_same_queries_under_its_own_dataset_name(xquad_hashing, tmp_path):
    """eval.attack plus a character-only variant: two datasets with the same (query, setting) units, and the
    variant's edits use only its operations."""
    from mdr.eval.attack import parse_attacks

    rs, enc, _, _ = xquad_hashing
    settings = EvalSettings(datasets=["xquad_r"], run_files="none", show_progress=False)
    attacks = parse_attacks({"budgets": [1, 2], "queries_per_lang": 4}, {"chars": {"ops": CHAR_OPS}})
    report = run_eval(enc, EvalPlan(settings, sets=[rs], attacks=attacks), tmp_path)
    assert {"xquad_r~attack", "xquad_r~attack_chars"} <= set(report["datasets"])
    every, chars = (
        np.load(tmp_path / "eval" / d / "per_query.npz") for d in ("xquad_r~attack", "xquad_r~attack_chars")
    )
    assert np.array_equal(every["uids"], chars["uids"]) and np.array_equal(
        every["settings"], chars["settings"]
    )
    assert np.array_equal(every["clean/k0/p@1"], chars["clean/k0/p@1"])  # same queries, same clean scores
    ops = {
        e["op"]
        for line in (tmp_path / "eval" / "xquad_r~attack_chars" / ADVERSARIAL_FILE).read_text().splitlines()
        for e in json.loads(line)["edits"]
    }
    assert ops and ops <= set(CHAR_OPS)


def test_a_training_run_attacks_its_own_checkpoint_and_a_claim_reads_it(tmp_path, tiny_model_dir, data_dir):
    """As issue #45's sweep runs it: ``train.py experiment=retrained`` attacks the model it trained (two attack
    sets, one cell), ``eval.py experiment=retrained_attack ckpt=null`` attacks the untrained backbone on the
    same queries, and a claim on ``xquad_r~attack_chars`` at k = 1 reads the per-query files of both cells."""
    from helpers import quick_tiny_overrides, run, tiny_eval_overrides, with_overrides

    results = tmp_path / "results"
    small_attack = ("eval.attack.queries_per_lang=2", "eval.attack.budgets=[1,2]", f"results_dir={results}")
    train = with_overrides(
        quick_tiny_overrides(tiny_model_dir, tmp_path / "run", data_dir),
        "experiment=retrained",
        "sampler=hybrid",
        "seed=0",
        "eval.datasets=[xquad_r]",
        "data.eval_datasets=[xquad_r]",
        *small_attack,
    )
    run("train.py", *train)
    run("eval.py", *tiny_eval_overrides(tmp_path / "eval", tiny_model_dir, data_dir, "experiment=retrained_attack",
                                        "ckpt=null", *small_attack))  # fmt: skip
    cells = sorted(p.name for p in results.iterdir())
    assert len(cells) == 2 and cells[0].startswith(
        "ckpt=null,"
    )  # the untrained reference, and the trained cell
    trained = results / cells[1]
    metrics = json.loads((trained / "metrics.json").read_text())
    assert {"xquad_r", "xquad_r~attack", "xquad_r~attack_chars"} <= set(metrics["datasets"])
    assert metrics["datasets"]["xquad_r~attack"]["seen_languages"]  # the run's own training languages
    claims = tmp_path / "claims.yaml"
    claims.write_text(
        "claims:\n- {claim: trained vs untrained, a: sampler=hybrid, b: sampler=untrained, "
        "dataset: 'xquad_r~attack_chars', kind: cross, metric: 'p@1', budget: 1, expect: '>='}\n"
    )
    run(
        "report.py",
        str(results),
        "--claims",
        str(claims),
        "--out",
        str(tmp_path / "report"),
        "--permutations",
        "100",
    )
    import csv

    (row,) = list(csv.DictReader((tmp_path / "report" / "claims.csv").open()))
    for cell, column in (
        (trained, "a_value"),
        (next(results / c for c in cells if c != trained.name), "b_value"),
    ):
        data = np.load(cell / "eval" / "xquad_r~attack_chars" / "per_query.npz")
        assert float(row[column]) == pytest.approx(data["greedy/k1/p@1"][data["settings"] == "cross"].mean())
