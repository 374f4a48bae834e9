"""Tatoeba bitext retrieval: the reader, the language groups, and the metric against independent computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import compose_cfg, in_process

from mdr.data.errors import DataFormatError
from mdr.data.lareqa import DATASET_LANGS
from mdr.data.tatoeba import (
    FULL_SIZE,
    ISO3_TO_TRAINING,
    XTREME36,
    available_langs,
    read_tatoeba,
    select_langs,
)
from mdr.eval.outputs.per_query import tatoeba_units
from mdr.eval.tatoeba import evaluate_tatoeba, score_language
from mdr.modeling.baselines import HashingEncoder


def test_all_112_languages_and_the_named_selections(data_dir):
    langs = available_langs(data_dir)
    assert len(langs) == 112 and "eng" not in langs
    assert set(XTREME36) <= set(langs) and len(XTREME36) == 36
    both = select_langs(data_dir, "xtreme36+low_resource")
    ts = read_tatoeba(data_dir, "all")
    low = [x for x, lang in ts.languages.items() if len(lang.texts) < FULL_SIZE]
    assert len(low) == 40  # PROVENANCE.md lists 40 languages with fewer than 1000 pairs
    assert set(both) == set(XTREME36) | set(low)
    assert {"jav", "kaz", "tel", "tha"} <= set(low) & set(XTREME36)  # low-resource XTREME languages


def test_iso_codes_map_to_the_training_sets_codes(data_dir):
    langs = set(available_langs(data_dir))
    lareqa = set(DATASET_LANGS["xquad_r"]) | set(DATASET_LANGS["mlqa_r"])
    assert set(ISO3_TO_TRAINING.values()) == lareqa  # every training language has its Tatoeba code
    assert set(ISO3_TO_TRAINING) - {"eng"} <= langs
    ts = read_tatoeba(data_dir, ["deu", "cmn", "jav", "yue"])
    groups = ts.groups(["de", "en", "zh"])
    assert groups["seen"] == ["cmn", "deu"] and groups["unseen"] == ["jav", "yue"]  # Cantonese is not zh


def test_bad_languages_and_files_fail_with_the_fix(data_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown Tatoeba language.*ISO 639-3"):
        read_tatoeba(data_dir, ["de"])
    with pytest.raises(ValueError, match="choose one of"):
        read_tatoeba(data_dir, "xtreme")
    root = tmp_path / "tatoeba"
    root.mkdir()
    (root / "tatoeba.abc-eng.abc").write_text("eins\nzwei\n")
    (root / "tatoeba.abc-eng.eng").write_text("one\n")
    with pytest.raises(DataFormatError, match="1 English lines.*line-aligned"):
        read_tatoeba(tmp_path, ["abc"])
    (root / "tatoeba.abc-eng.eng").write_text("one\n\n")
    with pytest.raises(DataFormatError, match="tatoeba.abc-eng.eng:2: empty line"):
        read_tatoeba(tmp_path, ["abc"])
    with pytest.raises(FileNotFoundError, match="paths.data_dir"):
        read_tatoeba(tmp_path / "nowhere")


def test_hand_built_case():
    # normalised: s1 = (.994, .110) is closer to e0 = (1, 0) (cos .994) than to its own e1 = (.707, .707) (.781)
    src = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    eng = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    ranks = score_language(src, eng)
    assert ranks["to_eng"].tolist() == [1, 2, 1]
    assert ranks["from_eng"].tolist() == [1, 1, 1]  # e1 is closest to s1 (.781 vs .707 for s0 and s2)
    from mdr.eval.tatoeba import language_row

    row = language_row(ranks)
    assert row["accuracy_to_eng"] == pytest.approx(2 / 3) and row["accuracy_from_eng"] == 1.0
    assert row["accuracy"] == pytest.approx(5 / 6)
    assert row["map"] == pytest.approx(((1 + 0.5 + 1) / 3 + 1) / 2)
    assert row["mrr@5"] == pytest.approx(row["map"])  # every rank <= 5
    # a tie with a wrong line counts against the model (the suite's pessimistic rule)
    tied = score_language(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert tied["to_eng"].tolist() == [2, 2]


def _embed(lang):
    """Hashed n-grams plus a little noise: no exact ties, where tie rules would differ between libraries."""
    enc, rng = HashingEncoder(dim=512), np.random.default_rng(0)
    src, eng = enc.embed_texts(lang.texts), enc.embed_texts(lang.english)
    return src + 1e-4 * rng.standard_normal(src.shape), eng + 1e-4 * rng.standard_normal(eng.shape)


def test_accuracy_and_mrr_match_independent_computations(data_dir):
    """On real Tatoeba text (hashed n-grams): accuracy against sklearn's nearest neighbours, MRR against ranx."""
    from ranx import Qrels, Run, evaluate
    from sklearn.neighbors import NearestNeighbors

    ts = read_tatoeba(data_dir, ["afr", "jav", "ukr"])
    embeddings = {x: _embed(lang) for x, lang in ts.languages.items()}
    result = evaluate_tatoeba(ts, embeddings)
    for x, (src, eng) in embeddings.items():
        n = len(src)
        for direction, (queries, pool) in {"to_eng": (src, eng), "from_eng": (eng, src)}.items():
            nn = NearestNeighbors(n_neighbors=1, metric="cosine").fit(pool).kneighbors(queries)[1][:, 0]
            acc = float(np.mean(nn == np.arange(n)))
            assert result.per_language[x][f"accuracy_{direction}"] == pytest.approx(acc, abs=1e-12)
            unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
            scores = unit(queries) @ unit(pool).T
            run = Run(
                {
                    f"q{i}": {f"d{j}": float(scores[i, j]) for j in np.argsort(-scores[i])[:50]}
                    for i in range(n)
                }
            )
            qrels = Qrels({f"q{i}": {f"d{i}": 1} for i in range(n)})
            mrr5 = float(
                np.mean(1.0 / result.ranks[f"{direction}/{x}"] * (result.ranks[f"{direction}/{x}"] <= 5))
            )
            assert mrr5 == pytest.approx(evaluate(qrels, run, "mrr@5"), abs=1e-9)
    # lexical overlap finds Afrikaans translations of English, hardly any Cyrillic ones
    assert result.per_language["afr"]["accuracy"] > 0.1 > 0.01 > result.per_language["ukr"]["accuracy"]
    assert result.summary["all"]["accuracy"] == pytest.approx(
        np.mean([result.per_language[x]["accuracy"] for x in ts.langs])
    )
    assert result.summary["low_resource"]["n_languages"] == 1  # jav: 205 pairs
    for metric in ("accuracy", "map", "mrr@5"):
        for group, langs in {"all": ts.langs, "xtreme36": ["afr", "jav"], "low_resource": ["jav"]}.items():
            per_query = {
                k[len("ranks/") :] if k.startswith("ranks/") else k: v for k, v in result.ranks.items()
            }
            data = {f"ranks/{k}": v for k, v in per_query.items()}
            keys, contrib = tatoeba_units(_Npz(data), langs, metric)
            assert contrib.sum() == pytest.approx(result.summary[group][metric], abs=1e-9)
            assert len(set(keys)) == len(keys) == sum(len(ts.languages[x].texts) for x in langs)


class _Npz(dict):
    """The mapping interface of a loaded ``per_query.npz``."""

    @property
    def files(self):
        return list(self)


def test_eval_cli_scores_tatoeba_with_seen_and_unseen_groups(tmp_path, data_dir):
    from mdr.cli.evaluate import evaluate

    out = tmp_path / "tato"
    cfg = compose_cfg(
        "eval",
        in_process(
            [
                "model=hashing",
                "data=tatoeba",
                "eval.tatoeba_langs=[deu,cmn,jav,tel]",
                "seen_langs=[de,en,zh]",
                f"paths.data_dir={data_dir}",
                f"hydra.run.dir={out}",
            ]
        ),
    )
    evaluate(cfg)
    m = json.loads((out / "metrics.json").read_text())
    t = m["datasets"]["tatoeba"]
    assert t["kind"] == "bitext" and t["languages"] == ["cmn", "deu", "jav", "tel"]
    assert t["n_pairs"] == 1000 + 1000 + 205 + 234
    assert (
        t["summary"]["seen"]["all"]["n_languages"] == 2 and t["summary"]["unseen"]["all"]["n_languages"] == 2
    )
    assert t["summary"]["low_resource"]["n_languages"] == 2
    assert m["headline"]["tatoeba"]["accuracy"] == t["summary"]["all"]["accuracy"]
    rows = (out / "eval" / "tatoeba" / "per_language.csv").read_text().splitlines()
    assert rows[0].startswith("lang,n_pairs,accuracy") and len(rows) == 5
    assert rows[1].split(",")[-1] == "1" and rows[3].split(",")[-1] == "0"  # cmn seen, jav unseen
    data = np.load(out / "eval" / "tatoeba" / "per_query.npz")
    assert sorted(data.files) == sorted(
        f"ranks/{d}/{x}" for d in ("to_eng", "from_eng") for x in t["languages"]
    )
    keys, contrib = tatoeba_units(data, ["jav", "tel"], "accuracy")
    assert contrib.sum() == pytest.approx(t["summary"]["unseen"]["all"]["accuracy"])
    assert (out / "eval" / "tatoeba" / "accuracy.png").stat().st_size > 1000
    (tmp_path / "plain.txt").write_text("x")  # atomic writes get the permissions of any other new file
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert (
        mode(out / "eval" / "tatoeba" / "summary.md")
        == mode(out / "metrics.json")
        == mode(tmp_path / "plain.txt")
    )


def test_training_runs_score_68_languages_and_eval_py_all(data_dir):
    train_cfg = compose_cfg("train", ["data.eval_datasets=[xquad_r,tatoeba]"])
    eval_cfg = compose_cfg("eval", ["data=xquad_r", "data.eval_datasets=[tatoeba]"])
    assert train_cfg.eval.tatoeba_langs == "xtreme36+low_resource" and eval_cfg.eval.tatoeba_langs == "all"
    assert len(select_langs(data_dir, train_cfg.eval.tatoeba_langs)) == 68
    decisive = compose_cfg("train", ["experiment=decisive"])
    assert decisive.eval.tatoeba_langs == "all" and list(decisive.data.eval_datasets) == [
        "xquad_r",
        "tatoeba",
    ]
    assert decisive.compute.cpu_fp32_max_steps is None and decisive.results_dir.endswith("results/decisive")
