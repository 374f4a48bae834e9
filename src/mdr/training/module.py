"""LightningModule: the dual encoder, the contrastive loss, AdamW with linear warmup, dev validation."""

from __future__ import annotations

import contextlib
import logging
import math

import lightning as L
import numpy as np
import torch

from mdr.eval.lareqa import evaluate_lareqa
from mdr.modeling.encoder import DualEncoder
from mdr.runtime.errors import InputError
from mdr.training.checkpointing import LOSS_HISTORY_KEY, RNG_KEY, capture_rng_state, restore_rng_state
from mdr.training.distributed import average_gradients
from mdr.training.loss import InfoNCELoss

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the run stops and keeps its last good checkpoint."""


class DualEncoderModule(L.LightningModule):
    """Training step (plain, or GradCache with ``grad_cache_chunk``), dev validation on the datamodule's dev
    retrieval set, AdamW with linear warm-up and decay; RNG state in checkpoints."""

    def __init__(
        self,
        encoder: DualEncoder,
        loss: InfoNCELoss,
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        eval_batch_size: int = 64,
        eval_precision: str = "auto",
        grad_clip: float | None = None,
        length_chunks: int = 1,
        grad_cache_chunk: int | None = None,
    ):
        super().__init__()
        if grad_cache_chunk is not None and grad_cache_chunk < 1:
            raise InputError(f"compute.grad_cache_chunk={grad_cache_chunk} must be >= 1")
        self.encoder, self.loss_fn = encoder, loss
        # GradCache needs two passes per step: manual optimisation (Lightning cannot clip for us then)
        self.automatic_optimization = grad_cache_chunk is None
        self.save_hyperparameters(ignore=["encoder", "loss"])
        self.loss_history: list[float] = []
        self.dev_set = None  # the datamodule's dev retrieval set, read in ``setup``
        self._resume_rng: dict | None = (
            None  # a checkpoint's RNG state, set at the first batch after a resume
        )

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self.trainer is not None else None
        self.dev_set = getattr(dm, "dev_set", None)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.hparams.length_chunks
        return self.encoder.embed(**batch["query"], length_chunks=k), self.encoder.embed(
            **batch["passage"], length_chunks=k
        )

    def compute_loss(self, batch: dict) -> torch.Tensor:
        q, p = self(batch)
        return self.loss_fn(q, p, batch["query_ids"], batch["cand_answer_ids"], batch["labels"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.automatic_optimization:
            loss = self.compute_loss(batch)
        else:
            loss = self._grad_cache_step(batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss.item()} at global step {self.global_step} (sampler step {batch['step']}, "
                f"{batch['kind']} batch): training stopped; the last good checkpoint is kept in the run's "
                "checkpoints/. Lower optim.lr, raise loss.temperature, or check the data of this batch."
            )
        bs = batch["labels"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/xx_batch", float(batch["kind"] == "xx"), batch_size=bs)
        self.loss_history.append(float(loss.detach()))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.compute_loss(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["labels"].shape[0], sync_dist=True)
        return loss

    def on_validation_epoch_end(self) -> None:
        if self.dev_set is None or self.trainer.sanity_checking:
            return
        rs = self.dev_set
        kw = {
            "batch_size": self.hparams.eval_batch_size,
            "show_progress": False,
            "precision": self.hparams.eval_precision,
        }
        q = self.encoder.encode(rs.query_texts, "query", **kw)
        c = self.encoder.encode(rs.cand_texts, "passage", contexts=rs.cand_contexts, **kw)
        s = evaluate_lareqa(rs, q, c).summary
        values = {f"val/map_{k}": s[k]["map"] for k in ("mono", "cross", "multi") if s[k]["map"] is not None}
        values["val/map"] = float(np.mean(list(values.values()))) if values else 0.0
        values["val/rank_distance"] = s["multi"]["rank_distance"] or 0.0
        self.log("val/map", values.pop("val/map"), prog_bar=True)
        self.log_dict(values, prog_bar=False)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.encoder.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.hparams.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.hparams.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(math.ceil(self.hparams.warmup_ratio * total))

        def schedule(step: int) -> float:  # linear warmup, then linear decay to zero
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _grad_cache_step(self, batch: dict) -> torch.Tensor:
        from mdr.training.grad_cache import grad_cache_step

        opt, sched = self.optimizers(), self.lr_schedulers()
        opt.zero_grad()
        ddp = self.trainer.strategy.model if self.trainer.world_size > 1 else None
        # Under DDP one step runs a backward per chunk: skip DDP's per-backward all-reduce and average the
        # accumulated gradients once (the loss already gathers embeddings from every rank, with gradients).
        with ddp.no_sync() if hasattr(ddp, "no_sync") else contextlib.nullcontext():
            loss = grad_cache_step(
                self.encoder, self.loss_fn, batch, self.hparams.grad_cache_chunk, self.manual_backward
            )
        if ddp is not None:
            average_gradients(self.parameters(), self.trainer.world_size)
        if not torch.isfinite(loss):
            return loss  # training_step raises; no step is taken
        if self.hparams.grad_clip:
            self.clip_gradients(opt, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        sched.step()
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[RNG_KEY] = capture_rng_state()  # Lightning does not save RNG states; dropout must continue
        checkpoint[LOSS_HISTORY_KEY] = list(self.loss_history)  # metrics.json's loss_first / loss_last

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Not restored here: Lightning draws from torch's generator after loading (a new DataLoader iterator),
        # which the uninterrupted run did before the checkpoint was written (mdr.training.preemption).
        self._resume_rng = checkpoint.get(RNG_KEY)
        self.loss_history = list(checkpoint.get(LOSS_HISTORY_KEY, []))

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        if self._resume_rng is not None:
            restore_rng_state(self._resume_rng)
            self._resume_rng = None

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.encoder.parameters() if p.requires_grad)
