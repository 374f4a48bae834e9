"""The dual encoder: one HF ``AutoModel`` shared by queries and passages.

Pooling ``mean`` or ``cls``, L2-normalised output (dot product = cosine), optional e5-style prefixes,
separate query / passage max lengths, dynamic padding. Passages can be encoded as the sentence alone
or as (sentence, paragraph) text pairs, LAReQA's ``sentence_context`` candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mdr.modeling.backbones import resolve_model_dir
from mdr.modeling.dense_head import load_dense_head
from mdr.modeling.text_encoder import TextEncoder
from mdr.runtime.errors import InputError
from mdr.runtime.precision import autocast_dtype
from mdr.runtime.progress import progress

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
CANDIDATE_TEXTS = ("sentence", "sentence_context")


class DualEncoder(nn.Module, TextEncoder):
    """Trainable: ``embed`` (with gradients) for training steps, ``encode`` (the ``TextEncoder`` interface,
    no gradients) for evaluation."""

    trainable = True

    def __init__(
        self,
        name: str,
        pooling: str = "mean",
        normalize: bool = True,
        query_prefix: str = "",
        passage_prefix: str = "",
        query_max_length: int = 64,
        passage_max_length: int = 256,  # as conf/model/hf_base.yaml
        candidate_text: str = "sentence",
        freeze_embeddings: bool = False,
        offline_fallback: str | None = None,
        attn_implementation: str | None = "sdpa",
        encoder_only: bool = False,
        dense_head: str | None = None,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise InputError(f"model.pooling={pooling!r}; choose one of {POOLINGS}")
        if candidate_text not in CANDIDATE_TEXTS:
            raise InputError(f"candidate_text={candidate_text!r}; choose one of {CANDIDATE_TEXTS}")
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
                raise InputError(f"model.encoder.encoder_only=true, but {name!r} has no separate encoder")
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
        return self.pool(out, attention_mask)

    def forward_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``forward`` from input embeddings instead of token ids: gradients with respect to each position's
        embedding (the HotFlip candidate scores of corpus poisoning, ``mdr.eval.poison``)."""
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
        return self.pool(out, attention_mask)

    def pool(self, out: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The sentence embedding of the last hidden states: pooling, the dense head, normalisation."""
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

    def _tokenize_unique(self, uniq: list, kind: str, use_ctx: bool):
        """Token ids (no padding) of the unique texts (``(text, context)`` pairs with ``use_ctx``)."""
        if kind == "query":
            return self.tokenizer(
                [self.query_prefix + t for t in uniq], truncation=True, max_length=self.query_max_length
            )
        if use_ctx:
            return self.tokenizer(
                [self.passage_prefix + t for t, _ in uniq],
                [c for _, c in uniq],
                truncation="only_second",
                max_length=self.passage_max_length,
            )
        return self.tokenizer(
            [self.passage_prefix + t for t in uniq], truncation=True, max_length=self.passage_max_length
        )

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
            raise InputError(f"kind must be 'query' or 'passage', got {kind!r}")
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
        enc = self._tokenize_unique(uniq, kind, use_ctx)
        features = [{k: enc[k][i] for k in enc.keys()} for i in range(len(uniq))]
        order = np.argsort([len(f["input_ids"]) for f in features], kind="stable")[::-1]
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        dtype = autocast_dtype(precision, device)
        batches = range(0, len(uniq), batch_size)
        desc = desc or f"encode {kind}s"
        for a in progress(
            batches, len(uniq), desc, unit="texts", scale=batch_size, disable=not show_progress
        ):
            idx = order[a : a + batch_size]
            batch = self.tokenizer.pad([features[i] for i in idx], return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                emb = self(**batch)
            out[idx] = emb.float().cpu().numpy()
        self.train(was_training)
        return out[inverse]
