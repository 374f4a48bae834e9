"""The cosine gap between translation pairs and same-language non-pairs (issue #44): hand-computed, its sign on
an aligned and on a language-identity encoder, the settings refused in one line, the RNG stream kept."""

import numpy as np
import pytest
import torch

from mdr.data.tatoeba import read_tatoeba
from mdr.eval.cosine_gap import CosineGapSettings, gap_of, measure_cosine_gap
from mdr.eval.settings import EvalSettings
from mdr.runtime.errors import InputError


def test_gap_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    e = np.array([[1.0, 0.0], [1.0, 1.0]])  # the second pair's cosine: 1/sqrt(2)
    out = gap_of(x, e)
    assert out["pair"] == pytest.approx((1 + 2**-0.5) / 2)
    assert out["same_language"] == pytest.approx((0.0 + 2**-0.5) / 2)  # x: orthogonal; e: 1/sqrt(2)
    assert out["cross_language"] == pytest.approx((0.0 + 2**-0.5) / 2)  # (x0, e1), (x1, e0)
    assert out["gap"] == pytest.approx(out["pair"] - out["same_language"])


def fake_encoders(data_dir, langs):
    """Two encoders of one language's sentences followed by their translations (how the measurement calls
    it): one gives a sentence and its translation one random vector (aligned), the other gives every sentence
    its language's vector plus noise (language identity)."""
    ts = read_tatoeba(data_dir, langs)
    rng = np.random.default_rng(0)
    lang_of = {x: code for code, lang in ts.languages.items() for x in lang.texts}
    centres = {c: rng.standard_normal(16) * 5 for c in [*langs, "eng"]}

    def aligned(texts):
        v = rng.standard_normal((len(texts) // 2, 16))
        return np.concatenate([v, v])

    def by_language(texts):
        half = len(texts) // 2
        codes = [lang_of[t] for t in texts[:half]] + ["eng"] * half
        return np.stack([centres[c] + rng.standard_normal(16) for c in codes])

    return aligned, by_language


def test_the_gap_separates_aligned_from_language_identity(data_dir):
    settings = CosineGapSettings(langs=["deu", "tha"], n=50)
    aligned, by_language = fake_encoders(data_dir, ["deu", "tha"])
    a = measure_cosine_gap(aligned, str(data_dir), settings)
    b = measure_cosine_gap(by_language, str(data_dir), settings)
    assert a["mean"]["pair"] == pytest.approx(1.0) and a["mean"]["gap"] > 0.8
    assert b["mean"]["gap"] < -0.5  # a sentence is nearer its own language than its translation
    assert set(a["per_language"]) == {"deu", "tha"} and a["per_language"]["deu"]["n"] == 50


def test_settings_are_typed_and_checked():
    assert EvalSettings(cosine_gap={"n": "30"}).cosine_gap.n == 30
    with pytest.raises(InputError, match="eval.cosine_gap.n=1"):
        EvalSettings(cosine_gap={"n": 1})
    with pytest.raises(InputError, match=r"eval.cosine_gap has unknown key\(s\) \['pairs'\]"):
        EvalSettings(cosine_gap={"pairs": 3})


def test_measuring_keeps_the_runs_rng_stream(tiny_model_dir, data_dir):
    from mdr.eval.cosine_gap import CosineGaps
    from mdr.modeling.encoder import DualEncoder

    gaps = CosineGaps(CosineGapSettings(langs=["deu"], n=8), str(data_dir))
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    gaps.measure("backbone", DualEncoder(str(tiny_model_dir)))
    assert torch.equal(torch.rand(2), expected)
    assert set(gaps.values) == {"backbone"} and -2 <= gaps.values["backbone"]["mean"]["gap"] <= 2
    assert CosineGaps(None, str(data_dir)).values is None  # not asked for: nothing measured or recorded
