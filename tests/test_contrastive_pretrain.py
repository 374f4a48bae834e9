"""The contrastive domain-adaptive stage (issue #44, pretrain=contrastive): one-language batches of two crops
per paragraph, seeded, learning, refusing impossible settings, and the config group that selects it."""

import pytest
import torch
from helpers import compose_cfg

from mdr.modeling.encoder import DualEncoder
from mdr.runtime.errors import InputError
from mdr.training.contrastive_pretrain import (
    MIN_CROP_TOKENS,
    ContrastivePretraining,
    CroppedViews,
    contrastive_pretrain,
    passages_by_language,
)

BY_LANG = {
    "en": [
        f"The river number {i} flows through the old town into the sea near the castle." for i in range(12)
    ],
    "de": [f"Der Fluss Nummer {i} fließt durch die Altstadt ins Meer bei der Burg." for i in range(12)],
}


def test_every_batch_is_one_language_of_contiguous_crops(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir))
    views = CroppedViews(enc.tokenizer, BY_LANG, batch_size=4, crop=(0.2, 0.5), seed=3)
    langs = []
    for _ in range(6):
        lang, first, second = views.next()
        langs.append(lang)
        assert len(first) == len(second) == 4
        for view in first + second:  # a piece of one paragraph of the batch's language (spacing aside)
            flat = view.replace(" ", "").lower()
            assert any(flat in p.replace(" ", "").lower() for p in BY_LANG[lang]), view
    assert set(langs) == {"en", "de"}  # both languages come round
    ids = enc.tokenizer(BY_LANG["en"][0], add_special_tokens=False)["input_ids"]
    for _ in range(50):
        crop = views.crop_of(ids)
        n = len(crop)
        assert max(MIN_CROP_TOKENS, round(0.2 * len(ids))) <= n <= max(MIN_CROP_TOKENS, round(0.5 * len(ids)))
        starts = [i for i in range(len(ids) - n + 1) if ids[i : i + n] == crop]
        assert starts, "a crop is a contiguous span of the paragraph"


def test_views_are_seeded(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir))
    a = [CroppedViews(enc.tokenizer, BY_LANG, 4, (0.1, 0.5), seed=1).next() for _ in range(2)]
    b = CroppedViews(enc.tokenizer, BY_LANG, 4, (0.1, 0.5), seed=2).next()
    assert a[0] == a[1] and a[0] != b


def test_the_stage_learns_and_leaves_the_callers_rng_alone(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir), freeze_embeddings=False)
    settings = ContrastivePretraining(steps=40, batch_size=8, lr=1e-3, crop_min=0.3, crop_max=0.6)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    before = {k: v.clone() for k, v in enc.model.state_dict().items()}
    stats = contrastive_pretrain(enc, BY_LANG, settings, seed=0, show_progress=False)
    assert torch.equal(torch.rand(3), expected)
    assert stats["steps"] == 40 and stats["loss_last"] < stats["loss_first"]
    assert any(not torch.equal(before[k], v) for k, v in enc.model.state_dict().items())


def test_impossible_settings_are_refused():
    with pytest.raises(InputError, match="batch_size=1 >= 2"):
        ContrastivePretraining(batch_size=1)
    with pytest.raises(InputError, match="0 < crop_min <= crop_max <= 1"):
        ContrastivePretraining(crop_min=0.6, crop_max=0.5)
    with pytest.raises(InputError, match="Tatoeba has none"):
        ContrastivePretraining(datasets=["tatoeba"]).run(None, "/nonexistent", 0, "32-true")


def test_paragraphs_by_language(data_dir):
    by_lang = passages_by_language(["xquad_r"], str(data_dir))
    assert len(by_lang) == 11 and all(len(texts) == 240 for texts in by_lang.values())


def test_the_pretrain_group_selects_each_declared_arm():
    """The arms of conf/claims/domain_adaptive_44.yaml, as declared: 100 steps of 16 paragraphs at lr 5e-5."""
    none = compose_cfg("train", ["experiment=decisive"]).pretrain
    mlm = compose_cfg("train", ["experiment=decisive", "pretrain=mlm"]).pretrain
    crops = compose_cfg(
        "train", ["experiment=decisive", "pretrain=contrastive", "loss.temperature=0.07"]
    ).pretrain
    assert not none.enabled and none._target_.endswith("MLMPretraining")
    assert mlm.enabled and (mlm.steps, mlm.batch_size, mlm.lr, mlm.head_warmup_steps) == (100, 16, 5e-5, 50)
    assert crops.enabled and crops._target_.endswith("ContrastivePretraining")
    assert (crops.steps, crops.batch_size, crops.lr, crops.temperature) == (100, 16, 5e-5, 0.07)
    assert (crops.crop_min, crops.crop_max) == (0.1, 0.5)
