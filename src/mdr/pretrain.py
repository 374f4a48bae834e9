"""Domain-adaptive pretraining: a masked-language-model pass over the target set's unlabeled passages.

Runs before contrastive training (``pretrain.enabled=true``), in place on the encoder's backbone. Only
passages are read (no questions, no labels). The MLM head comes from the checkpoint when it has one
(XLM-R, mBERT) and is freshly initialised otherwise (the offline multilingual-e5-small ships no head); its
logits are computed at the masked positions only, which keeps a 250k-word vocabulary affordable on a CPU.
A fresh head sends noise into the encoder until it has learned something: ``head_warmup_steps`` first
trains the head alone (the encoder runs without gradients), the usual remedy when a new head is put on a
pretrained body.
"""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

HEADS = ("cls", "lm_head")  # BERT-style and RoBERTa / XLM-R-style MLM heads


def passages_of(datasets: list[str], data_dir: str) -> list[str]:
    """Unique paragraphs of the named LAReQA sets, in a fixed order."""
    from mdr.eval.suite import load_eval_set

    seen: dict[str, None] = {}
    for name in datasets:
        for text in load_eval_set(name, data_dir).cand_contexts:
            seen.setdefault(text, None)
    return list(seen)


def mlm_head(encoder) -> torch.nn.Module:
    """The MLM head for the encoder's architecture, its output layer tied to the encoder's word embeddings."""
    from transformers import AutoModelForMaskedLM

    model_type = encoder.model.config.model_type
    try:
        mlm = AutoModelForMaskedLM.from_pretrained(encoder.path)
    except ValueError as e:
        raise ValueError(
            f"pretrain: no masked-language-model head for model type {model_type!r} ({e}); "
            "domain-adaptive pretraining needs an MLM encoder (bert, xlm-roberta, roberta): set pretrain.enabled=false"
        ) from None
    head = next((getattr(mlm, h) for h in HEADS if hasattr(mlm, h)), None)
    if head is None:
        raise ValueError(f"pretrain: cannot find the MLM head of {type(mlm).__name__} (looked for {HEADS})")
    out = mlm.get_output_embeddings()
    out.weight = (
        encoder.model.get_input_embeddings().weight
    )  # tie to the encoder's (possibly frozen) embeddings
    return head


def mlm_pretrain(
    encoder,
    texts: list[str],
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 5e-5,
    mask_prob: float = 0.15,
    max_length: int = 128,
    seed: int = 0,
    precision: str = "auto",
    show_progress: bool = True,
    head_warmup_steps: int = 0,
) -> dict:
    """Train ``encoder.model`` with MLM on ``texts`` for ``steps`` batches (the first
    ``head_warmup_steps`` of them train the MLM head only); returns loss statistics."""
    if not texts:
        raise ValueError("pretrain: no passages to pretrain on; check pretrain.datasets")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"pretrain.steps={steps} and pretrain.batch_size={batch_size} must be >= 1")
    if not 0 <= head_warmup_steps <= steps:
        raise ValueError(
            f"pretrain.head_warmup_steps={head_warmup_steps} must be in [0, pretrain.steps={steps}]: "
            "only the steps after it adapt the encoder (equal to pretrain.steps: the head alone is trained)"
        )
    with torch.random.fork_rng(devices=[]):  # seeded on its own; the caller's RNG stream is left as it was
        torch.manual_seed(seed)
        from transformers import DataCollatorForLanguageModeling

        from mdr.encoder import resolve_precision

        head = mlm_head(encoder)
        device = next(encoder.parameters()).device
        head.to(device)
        collator = DataCollatorForLanguageModeling(
            encoder.tokenizer, mlm_probability=mask_prob, return_tensors="pt"
        )
        tokenized = encoder.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        params = [p for p in list(encoder.model.parameters()) + list(head.parameters()) if p.requires_grad]
        params = list({id(p): p for p in params}.values())
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
        gen = torch.Generator().manual_seed(seed)
        dtype = resolve_precision(precision, device)
        was_training = encoder.training
        encoder.model.train()
        losses = []
        order = torch.randperm(len(tokenized), generator=gen).tolist()
        cursor = 0
        for step in tqdm(range(steps), desc="MLM pretraining", disable=not show_progress):
            if cursor + batch_size > len(order):
                order, cursor = torch.randperm(len(tokenized), generator=gen).tolist(), 0
            idx = order[cursor : cursor + batch_size]
            cursor += batch_size
            torch.manual_seed(
                int(torch.randint(2**31 - 1, (1,), generator=gen))
            )  # the collator masks with torch's RNG
            batch = collator([{"input_ids": tokenized[i]} for i in idx])
            batch = {k: v.to(device) for k, v in batch.items()}
            labels = batch.pop("labels")
            masked = labels != -100
            if not masked.any():
                continue
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                with torch.set_grad_enabled(step >= head_warmup_steps):  # warm-up: the head alone learns
                    hidden = encoder.model(**batch).last_hidden_state
                logits = head(hidden[masked])
            loss = torch.nn.functional.cross_entropy(logits.float(), labels[masked])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pretrain: MLM loss is {loss.item()}; lower pretrain.lr (now {lr})")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        encoder.train(was_training)
        k = max(1, min(10, len(losses) // 5))
        stats = {
            "steps": len(losses),
            "head_warmup_steps": head_warmup_steps,
            "passages": len(texts),
            "loss_first": sum(losses[:k]) / k,
            "loss_last": sum(losses[-k:]) / k,
        }
        log.info(
            "MLM pretraining: %d steps on %d passages, loss %.3f -> %.3f",
            stats["steps"],
            len(texts),
            stats["loss_first"],
            stats["loss_last"],
        )
        return stats
