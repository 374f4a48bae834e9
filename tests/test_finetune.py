"""Fine-tuning modes: the right parameters train, counts match their formula, runs work end to end."""

import json

import numpy as np
import pytest
import torch
from helpers import quick_reeval_overrides, quick_tiny_overrides, run
from torch import nn

from mdr.modeling.bottleneck import attached_adapters
from mdr.modeling.encoder import DualEncoder
from mdr.modeling.finetune import finetune_mode
from mdr.training.loss import InfoNCELoss


def train_steps(enc, steps=3):
    params = [p for p in enc.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    q = enc.tokenize_queries(["who won the match", "where is the river", "when was it built"])
    p = enc.tokenize_passages(["the home team won", "the river is in the north", "it was built in 1900"])
    for _ in range(steps):
        loss = InfoNCELoss()(
            enc(**q), enc(**p), torch.arange(3), torch.arange(3).view(-1, 1), torch.arange(3)
        )
        loss.backward()
        opt.step()
        opt.zero_grad()


def snapshot(enc):
    return {n: p.detach().clone() for n, p in enc.named_parameters()}


def test_lora_trains_only_adapters_and_count_matches_formula(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir))
    r = 4
    targets = ["query", "key", "value", "dense"]
    expected = sum(
        r * (m.in_features + m.out_features)
        for name, m in enc.model.named_modules()
        if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] in targets
    )
    counts = finetune_mode(dict(mode="lora", r=r, alpha=8, dropout=0.0)).apply(enc)
    assert counts["trainable"] == expected == 2 * (3 * r * 64 + r * 64 + r * 96 + r * 96)
    before = snapshot(enc)
    train_steps(enc)
    after = snapshot(enc)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all("lora_" in n for n in changed)
    assert all(not p.requires_grad for n, p in enc.named_parameters() if "lora_" not in n)


@pytest.mark.parametrize("placement,sites", [("pfeiffer", 1), ("houlsby", 2)])
def test_adapters_start_as_identity_train_alone_and_count_matches_formula(tiny_model_dir, placement, sites):
    enc = DualEncoder(str(tiny_model_dir))
    texts = ["who won the match", "Der Zug fährt ab."]
    base = enc.encode(texts, "query", show_progress=False, precision="fp32")
    hidden, factor, layers = 32, 4, 2
    bottleneck = hidden // factor
    counts = finetune_mode(dict(mode="adapter", reduction_factor=factor, placement=placement)).apply(enc)
    assert counts["trainable"] == layers * sites * (2 * hidden * bottleneck + bottleneck + hidden)
    assert len(attached_adapters(enc.model)["targets"]) == layers * sites
    np.testing.assert_allclose(
        enc.encode(texts, "query", show_progress=False, precision="fp32"), base, atol=1e-6
    )
    before = snapshot(enc)
    train_steps(enc)
    after = snapshot(enc)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert {n for n in changed if ".up." in n}, "the zero-initialised up-projections must move"
    assert changed and all("bottleneck_adapter" in n for n in changed)
    trained = enc.encode(texts, "query", show_progress=False, precision="fp32")
    assert np.abs(trained - base).max() > 1e-4


def test_adapter_settings_are_checked(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir))
    with pytest.raises(ValueError, match=r"match no Linear layer.*fix finetune.targets"):
        finetune_mode(dict(mode="adapter", targets=["fc2$"])).apply(enc)
    with pytest.raises(ValueError, match="finetune.placement='parallel' is unknown"):
        finetune_mode(dict(mode="adapter", placement="parallel")).apply(enc)
    with pytest.raises(ValueError, match="reduction_factor=64 leaves no bottleneck"):
        finetune_mode(dict(mode="adapter", reduction_factor=64)).apply(enc)
    with pytest.raises(ValueError, match="non_linearity='mish' is unknown"):
        finetune_mode(dict(mode="adapter", non_linearity="mish")).apply(enc)


def test_adapter_export_needs_its_adapters_and_matches_our_encoder(tmp_path, tiny_model_dir):
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from mdr.modeling.export import export_encoder, load_export

    enc = DualEncoder(str(tiny_model_dir), query_prefix="query: ", passage_prefix="passage: ")
    finetune_mode(dict(mode="adapter", reduction_factor=4, placement="houlsby")).apply(enc)
    train_steps(enc)
    out = export_encoder(enc, tmp_path / "export", metrics=None, config={"finetune": "adapter"})
    texts = ["Who wrote the book?", "Der Zug fährt um zwölf Uhr ab.", "列车中午出发。"]
    st = load_export(out)
    for kind in ("query", "passage"):
        ours = enc.encode(texts, kind, show_progress=False, precision="fp32")
        np.testing.assert_allclose(st.encode(texts, prompt_name=kind), ours, atol=1e-5)
        base = SentenceTransformer(str(out / "base"), device="cpu").encode(texts, prompt_name=kind)
        assert np.abs(base - ours).max() > 1e-3  # base/ alone is a different (untrained) model
    with pytest.raises(ValueError, match="Unrecognized model"):
        SentenceTransformer(str(out), device="cpu")  # never silently the base model
    assert "load_export" in (out / "README.md").read_text()


def test_full_trains_everything_but_frozen_embeddings(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir), freeze_embeddings=True)
    counts = finetune_mode(dict(mode="full")).apply(enc)
    emb = sum(p.numel() for p in enc.model.get_input_embeddings().parameters())
    assert counts["trainable"] == counts["total"] - emb
    before = snapshot(enc)
    train_steps(enc)
    after = snapshot(enc)
    word = next(n for n in before if "word_embeddings" in n)
    assert torch.equal(before[word], after[word])
    assert not torch.equal(
        before[next(n for n in before if "layer.1.output.dense.weight" in n)],
        after[next(n for n in after if "layer.1.output.dense.weight" in n)],
    )


def test_frozen_trains_nothing(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir))
    assert finetune_mode(dict(mode="frozen")).apply(enc)["trainable"] == 0


def test_bad_finetune_settings(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir))
    with pytest.raises(ValueError, match="finetune.mode='adapterz' is unknown"):
        finetune_mode(dict(mode="adapterz")).apply(enc)
    with pytest.raises(
        ValueError,
        match=r"LoRA target modules \['q_proj'\] do not exist in 'bert'.*fix finetune.target_modules",
    ):
        finetune_mode(dict(mode="lora", target_modules=["q_proj", "query"])).apply(enc)


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode,trainable",
    [("lora", 2 * (3 * 8 * 64 + 8 * 64 + 8 * 96 * 2)), ("adapter", 2 * (2 * 32 * 2 + 2 + 32))],
)
def test_adapter_runs_end_to_end_and_eval_py_reloads_them(
    tmp_path, tiny_model_dir, data_dir, mode, trainable
):
    run_dir = tmp_path / mode
    run(
        "train.py",
        *quick_tiny_overrides(tiny_model_dir, run_dir, data_dir, f"finetune={mode}", "optim.lr=5e-3"),
    )
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["train"]["finetune"] == mode and m["train"]["trainable_params"] == trainable
    assert m["train"]["loss_last"] < m["train"]["loss_first"]
    out = tmp_path / "eval"
    run(
        "eval.py",
        *quick_reeval_overrides(out, tiny_model_dir, data_dir),
        f"finetune={mode}",
        f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}",
    )
    again = json.loads((out / "metrics.json").read_text())["datasets"]["tatoeba"]["per_language"]
    trained = m["datasets"]["tatoeba"]["per_language"]
    assert trained["deu"]["map"] > 0 and set(again) == set(trained) == {"deu", "spa"}
    for lang, row in trained.items():  # accuracy both ways, mAP and MRR@5 of 2 x 1000 rankings
        assert again[lang] == pytest.approx(row, abs=1e-5)


@pytest.mark.slow
def test_frozen_run_equals_eval_py(tmp_path, tiny_model_dir, data_dir):
    run_dir = tmp_path / "frozen"
    run("train.py", *quick_tiny_overrides(tiny_model_dir, run_dir, data_dir, "finetune=frozen"))
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["train"]["steps"] == 0 and m["train"]["trainable_params"] == 0
    assert not list((run_dir / "checkpoints").glob("*.ckpt")) if (run_dir / "checkpoints").exists() else True
    assert m["headline"]["tatoeba"]["accuracy"] > 0
    out = tmp_path / "eval"
    run(
        "eval.py",
        *quick_reeval_overrides(out, tiny_model_dir, data_dir),
    )
    assert json.loads((out / "metrics.json").read_text())["headline"] == m["headline"]


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_export_loads_in_sentence_transformers_with_identical_embeddings(tmp_path, tiny_model_dir, mode):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    from mdr.modeling.export import export_encoder

    enc = DualEncoder(str(tiny_model_dir), query_prefix="query: ", passage_prefix="passage: ")
    finetune_mode(dict(mode=mode, r=4, alpha=8, dropout=0.0) if mode == "lora" else dict(mode=mode)).apply(
        enc
    )
    train_steps(enc)  # LoRA weights are non-zero: the merge matters
    out = export_encoder(enc, tmp_path / "export", metrics=None, config={"finetune": mode})
    texts = ["Who wrote the book?", "Der Zug fährt um zwölf Uhr ab.", "列车中午出发。"]
    ours_q = enc.encode(texts, "query", show_progress=False, precision="fp32")
    ours_p = enc.encode(texts, "passage", show_progress=False, precision="fp32")
    st = SentenceTransformer(str(out), device="cpu")
    import numpy as np

    np.testing.assert_allclose(st.encode(texts, prompt_name="query"), ours_q, atol=1e-5)
    np.testing.assert_allclose(st.encode(texts, prompt_name="passage"), ours_p, atol=1e-5)
    assert AutoModel.from_pretrained(str(out)).config.hidden_size == 32
    assert "sentence-transformers" in (out / "README.md").read_text()
