"""Domain-adaptive MLM pretraining: it learns, it is deterministic, it touches only what it should."""

import json

import numpy as np
import pytest
import torch
from helpers import quick_tiny_overrides, run

from mdr.modeling.encoder import DualEncoder
from mdr.training.pretrain import mlm_pretrain, passages_of

TEXTS = [
    "The river flows through the old town and into the sea.",
    "Der Fluss fließt durch die Altstadt ins Meer.",
    "El río atraviesa el casco antiguo y desemboca en el mar.",
    "The castle was built in the twelfth century by the duke.",
] * 4


def weights(enc):
    return {n: p.detach().clone() for n, p in enc.model.named_parameters()}


def test_mlm_loss_falls_and_frozen_embeddings_stay(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir), freeze_embeddings=True)
    before = weights(enc)
    stats = mlm_pretrain(
        enc, TEXTS, steps=40, batch_size=8, lr=3e-3, mask_prob=0.3, show_progress=False, precision="fp32"
    )
    assert stats["steps"] == 40 and stats["passages"] == len(TEXTS)
    assert stats["loss_last"] < stats["loss_first"] - 0.2  # seeded: a fixed outcome, not a flaky one
    after = weights(enc)
    assert torch.equal(
        before["embeddings.word_embeddings.weight"], after["embeddings.word_embeddings.weight"]
    )
    assert not torch.equal(
        before["encoder.layer.1.output.dense.weight"], after["encoder.layer.1.output.dense.weight"]
    )


def test_head_warmup_leaves_the_encoder_alone_then_adapts_it(tiny_model_dir):
    from mdr.training import pretrain

    heads = []
    real_head = pretrain.mlm_head
    pretrain.mlm_head = lambda enc: heads.append(real_head(enc)) or heads[-1]
    try:
        for steps in (3, 4):  # 3 warm-up steps, then 0 / 1 step of the encoder
            enc = DualEncoder(str(tiny_model_dir), freeze_embeddings=True)
            before = weights(enc)
            stats = mlm_pretrain(
                enc, TEXTS, steps=steps, batch_size=4, lr=1e-2, head_warmup_steps=3, show_progress=False
            )
            assert stats["head_warmup_steps"] == 3
            moved = [k for k, v in weights(enc).items() if not torch.equal(v, before[k])]
            assert moved == [] if steps == 3 else "encoder.layer.0.attention.self.query.weight" in moved
    finally:
        pretrain.mlm_head = real_head
    transform = dict(heads[0].named_parameters())
    assert any("transform" in k for k in transform)  # the head itself did learn during the warm-up
    fresh = dict(real_head(DualEncoder(str(tiny_model_dir))).named_parameters())
    assert any(not torch.equal(transform[k], fresh[k]) for k in transform if "transform" in k)
    with pytest.raises(ValueError, match="head_warmup_steps=6 must be in"):
        mlm_pretrain(enc, TEXTS, steps=5, head_warmup_steps=6)


def test_same_seed_same_weights(tiny_model_dir):
    runs = []
    for global_seed in (123, 456):
        enc = DualEncoder(str(tiny_model_dir))
        torch.manual_seed(global_seed)  # the freshly initialised head and the masks do not depend on this
        mlm_pretrain(enc, TEXTS, steps=5, batch_size=4, seed=7, show_progress=False, precision="fp32")
        runs.append(weights(enc))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_passages_are_the_unique_paragraphs(data_dir):
    texts = passages_of(["xquad_r"], str(data_dir))
    assert len(texts) == len(set(texts)) == 11 * 240  # XQuAD: 240 paragraphs, in 11 languages


def test_bad_pretrain_settings(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir))
    with pytest.raises(ValueError, match="no passages to pretrain on"):
        mlm_pretrain(enc, [], steps=1)
    with pytest.raises(ValueError, match="pretrain.steps=0"):
        mlm_pretrain(enc, TEXTS, steps=0)


@pytest.mark.slow
def test_train_py_with_pretrain_stage(tmp_path, tiny_model_dir, data_dir):
    run_dir = tmp_path / "dapt"
    run(
        "train.py",
        *quick_tiny_overrides(
            tiny_model_dir,
            run_dir,
            data_dir,
            "pretrain.enabled=true",
            "pretrain.steps=6",
            "pretrain.batch_size=4",
            "pretrain.max_length=32",
            "eval.datasets=[mlqa_r]",  # set the way the tests set it: the MLM stage follows it (one knob)
            "eval.run_files=none",
            "eval.save_embeddings=true",
            "merge.wise=[0.0]",
        ),
    )
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["train"]["pretrain"]["steps"] == 6
    assert m["train"]["pretrain"]["datasets"] == list(m["datasets"]) == ["mlqa_r"]  # the sets it is judged on
    assert m["train"]["steps"] > 0
    # issue #46: the WiSE row's pretrained end is the model fine-tuning started from (after the MLM stage,
    # saved as start.pt), not the raw backbone: lambda 0 encodes exactly as that model does
    from helpers import compose_cfg, in_process, tiny_overrides

    from mdr.cli.common import make
    from mdr.data.lareqa import read_lareqa, retrieval_set
    from mdr.modeling.merging import load_plain_state, plain_state

    encoder_cfg = compose_cfg(
        "train", in_process(tiny_overrides(tiny_model_dir, run_dir, data_dir))
    ).model.encoder
    start = torch.load(run_dir / "checkpoints" / "start.pt", weights_only=True)
    raw, started = make(encoder_cfg), make(encoder_cfg)  # the run's encoder settings: prefixes, lengths
    assert any(not torch.equal(start[k], v) for k, v in plain_state(raw).items())  # the MLM stage moved them
    load_plain_state(started, start)
    (saved,) = [np.load(p) for p in (run_dir / "merged" / "wise0").rglob("embeddings.npz")]
    rs = retrieval_set(read_lareqa(data_dir, "mlqa_r"), "mlqa_r")
    assert list(saved["query_ids"][:8]) == rs.query_ids[:8]
    texts = rs.query_texts[:8]

    def encoded(enc):
        return enc.encode(texts, "query", show_progress=False, precision="fp32")

    np.testing.assert_allclose(saved["query_emb"][:8], encoded(started), atol=1e-5)
    assert not np.allclose(saved["query_emb"][:8], encoded(raw), atol=1e-3)


@pytest.mark.slow
def test_train_py_with_the_contrastive_stage_and_the_cosine_gap(tmp_path, tiny_model_dir, data_dir):
    """pretrain=contrastive runs before training (issue #44's second arm) and eval.cosine_gap measures the
    backbone, the adapted model and the trained one; the measurement is not part of the run's cell."""
    from mdr.runtime.run_folder import RunFolder, cell_name

    run_dir = tmp_path / "crops"
    run(
        "train.py",
        *quick_tiny_overrides(
            tiny_model_dir,
            run_dir,
            data_dir,
            "pretrain=contrastive",
            "pretrain.steps=4",
            "pretrain.batch_size=4",
            "eval.datasets=[mlqa_r]",
            "eval.run_files=none",
            "eval.cosine_gap={langs: [deu, spa], n: 10}",
        ),
    )
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["train"]["pretrain"]["objective"] == "contrastive crops" and m["train"]["pretrain"]["steps"] == 4
    gaps = m["train"]["cosine_gap"]
    assert list(gaps) == ["backbone", "after_pretrain", "trained"]
    assert all(set(g["per_language"]) == {"deu", "spa"} for g in gaps.values())
    assert gaps["backbone"]["mean"] != gaps["after_pretrain"]["mean"] != gaps["trained"]["mean"]
    assert (run_dir / "checkpoints" / "start.pt").is_file()
    assert "cosine_gap" not in cell_name(RunFolder(run_dir).overrides())
