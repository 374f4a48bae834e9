"""Domain-adaptive pretraining: a masked-language-model pass over the target set's unlabeled passages.

Runs before contrastive training (``pretrain.enabled=true``), in place on the encoder's backbone. Only
passages are read (no questions, no labels). The MLM head comes from the checkpoint when it has one
(XLM-R, mBERT) and is freshly initialised otherwise (the offline multilingual-e5-small ships no head); its
logits are computed at the masked positions only, which keeps a 250k-word vocabulary affordable on a CPU.
A fresh head sends noise into the encoder until it has learned something: ``head_warmup_steps`` first
trains the head alone (the encoder runs without gradients), the usual remedy when a new head is put on a
pretrained body.

The loop runs on Lightning Fabric: device placement, the precision (``trainer.precision``, the same rule as
the contrastive stage: ``mdr.runtime.precision.trainer_precision``), backward and gradient clipping are
Lightning's; the loop itself stays a plain loop over seeded batches (one device, as a stage that runs before
the DDP trainer starts; every rank runs it identically from the same seed).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field

import torch

from mdr.data.sources import load_eval_set
from mdr.runtime.errors import InputError
from mdr.runtime.precision import trainer_precision
from mdr.runtime.progress import progress

log = logging.getLogger(__name__)

HEADS = ("cls", "lm_head")  # BERT-style and RoBERTa / XLM-R-style MLM heads


def passages_of(datasets: list[str], data_dir: str) -> list[str]:
    """Unique paragraphs of the named evaluation sets, in a fixed order."""
    seen: dict[str, None] = {}
    for name in datasets:
        if name == "tatoeba":
            log.info("pretrain: tatoeba has no passages to adapt to; MLM reads the other evaluation sets")
            continue
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
        raise InputError(
            f"pretrain: no masked-language-model head for model type {model_type!r} ({e}); "
            "domain-adaptive pretraining needs an MLM encoder (bert, xlm-roberta, roberta): set pretrain.enabled=false"
        ) from None
    head = next((getattr(mlm, h) for h in HEADS if hasattr(mlm, h)), None)
    if head is None:
        raise InputError(f"pretrain: cannot find the MLM head of {type(mlm).__name__} (looked for {HEADS})")
    out = mlm.get_output_embeddings()
    out.weight = (
        encoder.model.get_input_embeddings().weight
    )  # tie to the encoder's (possibly frozen) embeddings
    return head


@dataclass
class MLMPretraining:
    """The ``pretrain:`` config: MLM on the passages of ``datasets`` before contrastive training."""

    enabled: bool = False
    datasets: list[str] = field(default_factory=list)
    steps: int = 200
    batch_size: int = 16
    lr: float = 5e-5
    mask_prob: float = 0.15
    max_length: int = 128
    head_warmup_steps: int = 0

    def run(self, encoder, data_dir: str, seed: int, precision: str, accelerator: str = "auto") -> dict:
        """Pretrain ``encoder`` in place (Lightning ``precision`` and ``accelerator`` as the training stage's;
        it is moved back to the CPU); returns statistics."""
        settings = {k: v for k, v in asdict(self).items() if k not in ("enabled", "datasets")}
        stats = mlm_pretrain(
            encoder,
            passages_of(list(self.datasets), data_dir),
            seed=seed,
            precision=precision,
            accelerator=accelerator,
            **settings,
        )
        encoder.to("cpu")
        return {**stats, "datasets": list(self.datasets)}


def check_settings(texts: list[str], steps: int, batch_size: int, head_warmup_steps: int) -> None:
    if not texts:
        raise InputError("pretrain: no passages to pretrain on; check pretrain.datasets")
    if steps < 1 or batch_size < 1:
        raise InputError(f"pretrain.steps={steps} and pretrain.batch_size={batch_size} must be >= 1")
    if not 0 <= head_warmup_steps <= steps:
        raise InputError(
            f"pretrain.head_warmup_steps={head_warmup_steps} must be in [0, pretrain.steps={steps}]: "
            "only the steps after it adapt the encoder (equal to pretrain.steps: the head alone is trained)"
        )


class MaskedBatches:
    """Seeded MLM batches: passages in a random order (reshuffled when used up), masked by the HF collator."""

    def __init__(
        self, tokenizer, texts: list[str], batch_size: int, mask_prob: float, max_length: int, seed: int
    ):
        from transformers import DataCollatorForLanguageModeling

        self.collator = DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=mask_prob, return_tensors="pt"
        )
        self.tokenized = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order, self.cursor = self._shuffle(), 0

    def _shuffle(self) -> list[int]:
        return torch.randperm(len(self.tokenized), generator=self.gen).tolist()

    def next(self) -> dict[str, torch.Tensor]:
        if self.cursor + self.batch_size > len(self.order):
            self.order, self.cursor = self._shuffle(), 0
        idx = self.order[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        torch.manual_seed(
            int(torch.randint(2**31 - 1, (1,), generator=self.gen))
        )  # the collator masks with torch's RNG
        return self.collator([{"input_ids": self.tokenized[i]} for i in idx])


class MaskedLM(torch.nn.Module):
    """The encoder's backbone and the MLM head as one module (what Fabric sets up): cross-entropy at the masked
    positions only; during the head warm-up the backbone runs without gradients."""

    def __init__(self, backbone: torch.nn.Module, head: torch.nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, batch: dict, labels: torch.Tensor, train_encoder: bool) -> torch.Tensor:
        masked = labels != -100
        with torch.set_grad_enabled(train_encoder):
            hidden = self.backbone(**batch).last_hidden_state
        logits = self.head(hidden[masked])
        return torch.nn.functional.cross_entropy(logits.float(), labels[masked])


def fabric_for(accelerator: str, precision: str):
    """One device (this rank's GPU under DDP, else the CPU), Lightning's precision plugin, no cluster: the stage
    runs in each process before the training strategy exists."""
    import lightning as L
    from lightning.fabric.plugins.environments import LightningEnvironment

    gpu = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    devices = [int(os.environ.get("LOCAL_RANK", 0))] if gpu else 1
    return L.Fabric(
        accelerator="cuda" if gpu else "cpu",
        devices=devices,
        precision=trainer_precision(PRECISION_NAMES.get(precision, precision), accelerator),
        plugins=[LightningEnvironment()],
    )


PRECISION_NAMES = {"fp32": "32-true", "bf16": "bf16-mixed"}  # eval-style names; "auto" as trainer.precision


def mlm_pretrain(
    encoder,
    texts: list[str],
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 5e-5,
    mask_prob: float = 0.15,
    max_length: int = 128,
    seed: int = 0,
    precision: str = "32-true",
    accelerator: str = "cpu",
    show_progress: bool = True,
    head_warmup_steps: int = 0,
) -> dict:
    """Train ``encoder.model`` with MLM on ``texts`` for ``steps`` batches (the first
    ``head_warmup_steps`` of them train the MLM head only); returns loss statistics."""
    check_settings(texts, steps, batch_size, head_warmup_steps)
    with torch.random.fork_rng(devices=[]):  # seeded on its own; the caller's RNG stream is left as it was
        torch.manual_seed(seed)
        fabric = fabric_for(accelerator, precision)
        head = mlm_head(encoder)
        batches = MaskedBatches(encoder.tokenizer, texts, batch_size, mask_prob, max_length, seed)
        mlm = MaskedLM(encoder.model, head)
        params = list({id(p): p for p in mlm.parameters() if p.requires_grad}.values())
        model, opt = fabric.setup(mlm, torch.optim.AdamW(params, lr=lr, weight_decay=0.01))
        was_training = encoder.training
        model.train()
        losses = []
        for step in progress(range(steps), steps, "MLM pretraining", unit="steps", disable=not show_progress):
            batch = fabric.to_device(batches.next())
            labels = batch.pop("labels")
            if not (labels != -100).any():
                continue
            loss = model(batch, labels, train_encoder=step >= head_warmup_steps)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pretrain: MLM loss is {loss.item()}; lower pretrain.lr (now {lr})")
            fabric.backward(loss)
            fabric.clip_gradients(model, opt, max_norm=1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        encoder.train(was_training)
    return loss_stats(losses, len(texts), "MLM pretraining", head_warmup_steps)


def loss_stats(
    losses: list[float], passages: int, stage: str = "MLM pretraining", head_warmup_steps: int = 0
) -> dict:
    """A stage's steps and its loss at the start and the end (means of up to 10 steps), logged."""
    k = max(1, min(10, len(losses) // 5))
    stats = {
        "steps": len(losses),
        "head_warmup_steps": head_warmup_steps,
        "passages": passages,
        "loss_first": sum(losses[:k]) / k,
        "loss_last": sum(losses[-k:]) / k,
    }
    log.info(
        "%s: %d steps on %d passages, loss %.3f -> %.3f",
        stage,
        stats["steps"],
        passages,
        stats["loss_first"],
        stats["loss_last"],
    )
    return stats
