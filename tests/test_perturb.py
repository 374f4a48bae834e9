"""Query perturbations: deterministic for a seed, and changing the expected share of units."""

import numpy as np
import pytest

from mdr.data.perturb import check_perturbations, perturb_set, perturb_text, split_units
from mdr.data.sources import load_eval_set


def osa_distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment), the reference for char noise."""
    d = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    d[:, 0], d[0, :] = np.arange(len(a) + 1), np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i, j] = min(d[i, j], d[i - 2, j - 2] + 1)
    return int(d[-1, -1])


@pytest.fixture(scope="module")
def xquad(data_dir):
    rs = load_eval_set("xquad_r", data_dir, ["en", "de", "zh"])
    keep = sorted(set(rs.query_ids))[:150]
    return rs.subset(keep)


@pytest.mark.parametrize("kind", ["char_noise", "word_drop", "word_swap", "code_switch"])
def test_same_seed_same_queries_other_seed_other_queries(xquad, kind):
    a, _ = perturb_set(xquad, kind, 0.3, seed=1)
    b, _ = perturb_set(xquad, kind, 0.3, seed=1)
    c, _ = perturb_set(xquad, kind, 0.3, seed=2)
    assert a.query_texts == b.query_texts and a.query_texts != c.query_texts
    assert a.name == "xquad_r~" + kind + "@0.3" and a.query_ids == xquad.query_ids
    assert a.cand_texts == xquad.cand_texts  # only queries change
    # the order of the queries does not matter: each query's perturbation depends on (lang, id) only
    rev = xquad.subset(sorted(set(xquad.query_ids))[:20])
    small, _ = perturb_set(rev, kind, 0.3, seed=1)
    full = dict(zip(zip(a.query_langs, a.query_ids), a.query_texts))
    assert all(full[(lg, q)] == t for lg, q, t in zip(small.query_langs, small.query_ids, small.query_texts))


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_char_noise_edits_the_expected_share_of_characters(xquad, rate):
    en = [t for t, lg in zip(xquad.query_texts, xquad.query_langs) if lg == "en"]
    rng = np.random.default_rng(0)
    edits = sum(osa_distance(t, perturb_text(t, "char_noise", rate, rng)) for t in en)
    chars = sum(len(t.replace(" ", "")) for t in en)
    # a swap uses up its neighbour and a substitution may draw the same character: a little under rate
    assert 0.8 * rate <= edits / chars <= 1.02 * rate


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_word_drop_and_swap_change_the_expected_share_of_words(rate):
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{i}_{j}" for j in range(n)) for i, n in enumerate(rng.integers(4, 20, size=600))]
    words = sum(len(t.split()) for t in texts)
    dropped = sum(len(t.split()) - len(perturb_text(t, "word_drop", rate, rng).split()) for t in texts)
    assert abs(dropped / words - rate) < 0.025
    moved = sum(
        sum(a != b for a, b in zip(t.split(), perturb_text(t, "word_swap", rate, rng).split())) for t in texts
    )
    assert abs(moved / words - rate) < 0.03  # disjoint adjacent pairs: no word moves twice


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_code_switch_mixes_the_expected_share_from_another_translation(xquad, rate):
    out, _ = perturb_set(xquad, "code_switch", rate, seed=0)
    by_id = {}
    for qid, lg, t in zip(xquad.query_ids, xquad.query_langs, xquad.query_texts):
        by_id.setdefault(qid, {})[lg] = t
    own_units = foreign_units = 0
    for qid, lg, before, after in zip(xquad.query_ids, xquad.query_langs, xquad.query_texts, out.query_texts):
        own, own_sep = split_units(before)
        others = [t for other, t in by_id[qid].items() if other != lg]
        # the result is a prefix of the query followed by a suffix of a translation of the same question
        matches = []
        for k in range(len(own) + 1):
            head = own_sep.join(own[:k])
            if after == head or after.startswith(head + " ") or (not head and after):
                tail = after[len(head) :].strip()
                for other in others:
                    units, sep = split_units(other)
                    if not tail or any(sep.join(units[m:]) == tail for m in range(len(units))):
                        matches.append((k, tail, units, sep))
        assert matches, (before, after)
        k, tail, units, _ = max(matches, key=lambda m: m[0])
        own_units += len(own) - k
        foreign_units += len(units)
    assert abs(own_units / sum(len(split_units(t)[0]) for t in xquad.query_texts) - rate) < 0.05


def test_unspaced_scripts_are_perturbed_by_character():
    assert split_units("列车中午出发") == (list("列车中午出发"), "")
    out = perturb_text("列车中午出发了吗", "word_drop", 0.5, np.random.default_rng(0))
    assert 0 < len(out) < 8 and " " not in out


def test_bad_perturbation_specs():
    with pytest.raises(ValueError, match="unknown perturbation kind 'typo'.*choose one of"):
        check_perturbations([{"kind": "typo", "rate": 0.1}])
    with pytest.raises(ValueError, match=r"rate 1.5 for word_drop: give a share in \[0, 1\]"):
        check_perturbations([{"kind": "word_drop", "rate": 1.5}])


@pytest.mark.slow
def test_run_eval_scores_perturbed_queries_against_the_same_candidates(tmp_path, tiny_model_dir, data_dir):
    import json

    from mdr.eval.plan import EvalPlan
    from mdr.eval.suite import EvalSettings, run_eval
    from mdr.modeling.encoder import DualEncoder

    enc = DualEncoder(str(tiny_model_dir))
    perturb = [{"kind": "word_drop", "rate": 0.0}, {"kind": "char_noise", "rate": 0.5}]
    settings = EvalSettings(
        datasets=["xquad_r"],
        run_files="none",
        show_progress=False,
        precision="fp32",
        batch_size=256,
        perturb=perturb,
        perturb_seed=3,
    )
    report = run_eval(enc, EvalPlan.build(settings, data_dir), tmp_path)
    clean, same, noisy = (
        report["datasets"][k] for k in ("xquad_r", "xquad_r~word_drop@0", "xquad_r~char_noise@0.5")
    )
    assert same["summary"] == clean["summary"]  # rate 0: the queries are untouched, so are the metrics
    assert same["perturbation"]["queries_unchanged"] == clean["n_queries"]
    assert {k: noisy["perturbation"][k] for k in ("kind", "rate", "seed")} == {
        "kind": "char_noise",
        "rate": 0.5,
        "seed": 3,
    }
    assert noisy["perturbation"]["queries_unchanged"] < 0.01 * clean["n_queries"]
    assert noisy["summary"]["mono"]["map"] != clean["summary"]["mono"]["map"]
    assert noisy["n_candidates"] == clean["n_candidates"]
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert set(on_disk["headline"]) == {"xquad_r", "xquad_r~word_drop@0", "xquad_r~char_noise@0.5"}
    assert (tmp_path / "eval" / "xquad_r~char_noise@0.5" / "pairs.csv").exists()


def test_variant_names_tell_perturbed_attacked_and_clean_sets_apart():
    from mdr.data.names import (
        attacked_name,
        clean_name,
        is_attacked,
        is_perturbed,
        is_variant,
        perturbed_name,
    )

    noisy, attacked = perturbed_name("xquad_r", "char_noise", 0.10), attacked_name("xquad_r")
    assert (noisy, attacked) == ("xquad_r~char_noise@0.1", "xquad_r~attack")
    assert clean_name(noisy) == clean_name(attacked) == clean_name("xquad_r") == "xquad_r"
    assert is_perturbed(noisy) and not is_attacked(noisy)
    assert is_attacked(attacked) and not is_perturbed(attacked)
    assert is_variant(noisy) and is_variant(attacked) and not is_variant("xquad_r")
