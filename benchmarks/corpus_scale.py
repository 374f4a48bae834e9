"""Corpus evaluation at scale (issue #31): peak memory of today's in-memory search against the sharded path,
at 0.5 M, 1 M and 2 M synthetic passages of 384 dimensions (multilingual-e5-small's), and an IVF index's
recall@100 and speed against exact search on the largest corpus.

    python benchmarks/corpus_scale.py [--sizes 500000 1000000 2000000] [--out benchmarks/results/corpus_scale.json]

The encoder is a fast random one (a seeded vector per passage index), so the numbers measure storage and search,
not a model. Each measurement runs in its own process (peak RSS is per process). Peers in the same run:
in-memory (one corpus-sized fp32 array, exact_top_k) vs sharded (encode_shards + search_shards, 50,000 per
shard). Goals: sharded peak memory independent of corpus size and within 2 GB; exact sharded search equal to
single-array search (same top-100, scores to 1e-6); IVF recall@100 >= 0.95 at >= 5x the speed of exact search.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIM, QUERIES, K, SHARD = 384, 1000, 100, 50_000


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def vectors(start: int, stop: int) -> np.ndarray:
    """Passages start..stop as unit vectors in 48 topics (clustered, as real embeddings are)."""
    rng = np.random.default_rng(start)
    centers = np.random.default_rng(12345).standard_normal((48, DIM)).astype(np.float32)
    v = centers[rng.integers(0, 48, stop - start)] + 0.8 * rng.standard_normal((stop - start, DIM)).astype(
        np.float32
    )
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def queries() -> np.ndarray:
    return vectors(10**9, 10**9 + QUERIES)


def encoder(texts) -> np.ndarray:
    """The passages' vectors, by index (texts are the indices as strings), computed block by block."""
    first, last = int(texts[0]), int(texts[-1]) + 1
    return np.concatenate([vectors(a, min(a + 10_000, last)) for a in range(first, last, 10_000)])


class Indices:
    """A corpus of n passages named by their index, held as nothing (a lazy sequence)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, sl: slice) -> list[str]:
        return [str(i) for i in range(*sl.indices(self.n))]


def child(mode: str, n: int, folder: str) -> dict:
    from mdr.eval.qrels import exact_top_k
    from mdr.eval.shards import ShardLayout, encode_shards, ivf_search, search_shards

    q = queries()
    t0 = time.perf_counter()
    if mode == "in_memory":  # today's path: one corpus-sized array, then exact_top_k
        docs = encoder(Indices(n)[0:n])
        idx, scores = exact_top_k(q, docs, K)
    elif mode == "sharded":
        encode_shards(encoder, Indices(n), folder, ShardLayout(n, SHARD, DIM))
        t1 = time.perf_counter()
        idx, scores = search_shards(q, folder, K)
        out = {"encode_s": t1 - t0, "search_s": time.perf_counter() - t1}
    elif mode == "ivf":
        idx, scores, info = ivf_search(q, folder, K, nlist=1024, nprobe=32, recall_queries=QUERIES)
    elif mode == "exact_search":  # search only, on shards already written
        idx, scores = search_shards(q, folder, K)
    result = {"mode": mode, "n": n, "wall_s": time.perf_counter() - t0, "peak_rss_gib": peak_rss_gib()}
    if mode == "sharded":
        result.update(out)
    if mode == "ivf":
        result["ivf"] = info
    np.save(Path(folder) / f"top_{mode}.npy", idx)
    np.save(Path(folder) / f"scores_{mode}.npy", scores)
    return result


def same_top(folder: str, a: str, b: str) -> bool:
    """The same top-K documents for every query, up to exactly tied scores (a tie at the K-th score may let
    either document in)."""
    ia, ib = np.load(f"{folder}/top_{a}.npy"), np.load(f"{folder}/top_{b}.npy")
    sa = np.load(f"{folder}/scores_{a}.npy")
    for row_a, row_b, scores in zip(ia, ib, sa):
        inside = scores > scores[-1]  # above the K-th score: no tie can swap these out
        if set(row_a[inside]) - set(row_b) or len(set(row_a) ^ set(row_b)) > 2 * int((~inside).sum()):
            return False
    return True


def run_child(mode: str, n: int, folder: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(n), folder],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[500_000, 1_000_000, 2_000_000])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "corpus_scale.json"))
    ap.add_argument("--child", nargs=3, metavar=("MODE", "N", "DIR"))
    args = ap.parse_args()
    if args.child:
        mode, n, folder = args.child
        print(json.dumps(child(mode, int(n), folder)))
        return
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            mem = run_child("in_memory", n, folder)
            shard = run_child("sharded", n, folder)
            same = same_top(folder, "in_memory", "sharded")
            gap = float(
                np.abs(
                    np.load(f"{folder}/scores_in_memory.npy") - np.load(f"{folder}/scores_sharded.npy")
                ).max()
            )
            row = {"n": n, "in_memory": mem, "sharded": shard, "same_top100": same, "max_score_gap": gap}
            if n == max(args.sizes):
                exact = run_child("exact_search", n, folder)
                ivf = run_child("ivf", n, folder)
                row.update(exact_search=exact, ivf=ivf, ivf_speedup=exact["wall_s"] / ivf["ivf"]["search_s"])
            rows.append(row)
            print(
                f"{n:>9,} passages | in-memory peak {mem['peak_rss_gib']:.2f} GiB, {mem['wall_s']:.0f} s | sharded peak "
                f"{shard['peak_rss_gib']:.2f} GiB, {shard['wall_s']:.0f} s | same top-100: {same} (max score gap {gap:.1e})",
                flush=True,
            )
    big = rows[-1]
    print("\n| passages | in-memory peak GiB | sharded peak GiB | ratio | same top-100 | max score gap |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        m, s = r["in_memory"]["peak_rss_gib"], r["sharded"]["peak_rss_gib"]
        print(
            f"| {r['n']:,} | {m:.2f} | {s:.2f} | {s / m:.2f} | {r['same_top100']} | {r['max_score_gap']:.1e} |"
        )
    if "ivf" in big:
        info = big["ivf"]["ivf"]
        print(
            f"\nIVF (nlist {info['nlist']}, nprobe {info['nprobe']}) on {big['n']:,}: recall@100 vs exact "
            f"{info['recall@100_vs_exact']:.3f}; search {info['search_s']:.2f} s (index built once in "
            f"{info['build_s']:.1f} s) vs exact sharded search {big['exact_search']['wall_s']:.1f} s: {big['ivf_speedup']:.1f}x"
        )
    meta = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "dim": DIM,
        "queries": QUERIES,
        "shard_size": SHARD,
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
