"""Corpus evaluation at scale (issues #31, #46): peak memory of the in-memory search against the sharded path,
at 0.5 M, 1 M and 2 M synthetic passages of 384 dimensions (multilingual-e5-small's); on the largest corpus,
IVF indexes (Flat, SQ8, PQ) against exact sharded search, timed end to end (index build or load + search) beside
the search call alone; and a projected memory table for MIRACL-size corpora (15.9 M passages, 384 and 768 d).

    python benchmarks/corpus_scale.py [--sizes 500000 1000000 2000000] [--out benchmarks/results/corpus_scale.json]
    python benchmarks/corpus_scale.py --tiny      # 3,000 passages, 64 d: a seconds-long check that it runs at HEAD

The encoder is a fast random one (a seeded vector per passage index), so the numbers measure storage and search,
not a model. Each measurement runs in its own process (peak RSS is per process). Peers in the same run:
in-memory (one corpus-sized fp32 array, exact_top_k) vs sharded (encode_shards + search_shards); exact sharded
search vs IVF. The IVF index is saved beside the shards (mdr.eval.ivf_index): its first search builds it, a
second search (another process) reads it, and both are timed end to end. Goals: sharded peak memory independent of
corpus size and within 2 GB; exact sharded search equal to single-array search (same top-100, scores to 1e-6);
IVF recall@100 >= 0.95, end to end faster than exact search once the index is saved.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FULL = {"dim": 384, "queries": 1000, "k": 100, "shard": 50_000, "nlist": 1024, "nprobe": 32, "pq_m": 48}
TINY = {"dim": 64, "queries": 50, "k": 20, "shard": 1000, "nlist": 16, "nprobe": 4, "pq_m": 8}
CFG = dict(FULL)
IVF_KINDS = (
    "flat",
    "sq8",
    "pq",
    "pq_rerank",
)  # pq_rerank: pq's saved index, 10 x k candidates rescored exactly
RERANK = 10
MIRACL_PASSAGES = 15_900_000  # MIRACL's largest corpora together: the projection's size


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def vectors(start: int, stop: int) -> np.ndarray:
    """Passages start..stop as unit vectors in 48 topics (clustered, as real embeddings are)."""
    dim = CFG["dim"]
    rng = np.random.default_rng(start)
    centers = np.random.default_rng(12345).standard_normal((48, dim)).astype(np.float32)
    v = centers[rng.integers(0, 48, stop - start)] + 0.8 * rng.standard_normal((stop - start, dim)).astype(
        np.float32
    )
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def queries() -> np.ndarray:
    return vectors(10**9, 10**9 + CFG["queries"])


def encoder(texts) -> np.ndarray:
    """The passages' vectors, by index (texts are the indices as strings), computed block by block."""
    if not texts[0].isdigit():  # the shards' probe text (mdr.eval.shards.PROBE_TEXT): any fixed vector
        return vectors(2**40, 2**40 + 1)
    first, last = int(texts[0]), int(texts[-1]) + 1
    step = min(10_000, CFG["shard"])  # blocks aligned to the shards: every path draws the same vectors
    return np.concatenate([vectors(a, min(a + step, last)) for a in range(first, last, step)])


class Indices:
    """A corpus of n passages named by their index, held as nothing (a lazy sequence)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, sl: slice) -> list[str]:
        return [str(i) for i in range(*sl.indices(self.n))]


def ivf_spec(kind: str):
    from mdr.eval.ivf_index import IVFSpec

    return IVFSpec(kind, CFG["nlist"], CFG["pq_m"])


def child(mode: str, n: int, folder: str) -> dict:
    """One measurement (its own process in a real run): in_memory | sharded | exact_search | ivf_<kind>."""
    from mdr.eval.ivf_index import ivf_search
    from mdr.eval.qrels import exact_top_k
    from mdr.eval.shards import ShardLayout, encode_shards, search_shards

    q, k = queries(), CFG["k"]
    t0 = time.perf_counter()
    result: dict = {"mode": mode, "n": n}
    if mode == "in_memory":  # one corpus-sized array, then exact_top_k
        idx, scores = exact_top_k(q, encoder(Indices(n)[0:n]), k)
    elif mode == "sharded":
        encode_shards(encoder, Indices(n), folder, ShardLayout(n, CFG["shard"], CFG["dim"]))
        t1 = time.perf_counter()
        idx, scores = search_shards(q, folder, k)
        result.update(encode_s=t1 - t0, search_s=time.perf_counter() - t1)
    elif mode == "exact_search":  # search only, on shards already written
        idx, scores = search_shards(q, folder, k)
    elif mode.startswith("ivf_"):  # the saved index: built by the first call, read by the next
        kind = mode[4:].split("#")[0]
        rerank = RERANK if kind.endswith("_rerank") else 0
        idx, scores, result["ivf"] = ivf_search(
            q, folder, k, ivf_spec(kind.removesuffix("_rerank")), CFG["nprobe"], CFG["queries"], rerank=rerank
        )
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result.update(wall_s=time.perf_counter() - t0, peak_rss_gib=peak_rss_gib())
    np.save(Path(folder) / f"top_{mode}.npy", idx)
    np.save(Path(folder) / f"scores_{mode}.npy", scores)
    return result


def projection(n: int = MIRACL_PASSAGES) -> list[dict]:
    """What a corpus of ``n`` passages needs, from the index formulas (mdr.eval.ivf_index.index_bytes, checked
    against saved indexes in tests/test_ivf_index.py): shards on disk and each IVF kind's index in memory."""
    from mdr.eval.ivf_index import IVFSpec, index_bytes

    rows = []
    for dim in (384, 768):
        row = {
            "n": n,
            "dim": dim,
            "fp32_shards_gib": n * dim * 4 / 2**30,
            "fp16_shards_gib": n * dim * 2 / 2**30,
        }
        for kind, m in (("flat", 64), ("sq8", 64), ("pq", 64)):
            row[f"ivf_{kind}_gib"] = index_bytes(n, dim, IVFSpec(kind, 4096, m)) / 2**30
        rows.append(row)
    return rows


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


def run_child(mode: str, n: int, folder: str, tiny: bool = False) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(n), folder] + (["--tiny"] if tiny else []),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(n: int, folder: str, with_ivf: bool, run=run_child) -> dict:
    """Every peer on one corpus size: in-memory vs sharded; with ``with_ivf``, exact search vs each IVF kind,
    first (builds the index) and again (reads it)."""
    mem, shard = run("in_memory", n, folder), run("sharded", n, folder)
    gap = float(
        np.abs(np.load(f"{folder}/scores_in_memory.npy") - np.load(f"{folder}/scores_sharded.npy")).max()
    )
    row = {"n": n, "in_memory": mem, "sharded": shard, "same_top": same_top(folder, "in_memory", "sharded")}
    row["max_score_gap"] = gap
    if with_ivf:
        row["exact_search"] = exact = run("exact_search", n, folder)
        for kind in IVF_KINDS:
            first, again = run(f"ivf_{kind}", n, folder), run(f"ivf_{kind}#again", n, folder)
            row[f"ivf_{kind}"] = {
                "first": first,
                "again": again,
                "call_speedup": exact["wall_s"] / again["ivf"]["search_s"],
                "end_to_end_speedup_first": exact["wall_s"] / first["ivf"]["end_to_end_s"],
                "end_to_end_speedup_saved": exact["wall_s"] / again["ivf"]["end_to_end_s"],
            }
    return row


def print_tables(rows: list[dict], proj: list[dict]) -> None:
    print("\n| passages | in-memory peak GiB | sharded peak GiB | ratio | same top-k | max score gap |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        m, s = r["in_memory"]["peak_rss_gib"], r["sharded"]["peak_rss_gib"]
        print(
            f"| {r['n']:,} | {m:.2f} | {s:.2f} | {s / m:.2f} | {r['same_top']} | {r['max_score_gap']:.1e} |"
        )
    big = rows[-1]
    if "exact_search" in big:
        k = CFG["k"]
        print(
            f"\nOn {big['n']:,} passages, exact sharded search {big['exact_search']['wall_s']:.1f} s (peer):"
        )
        print(
            f"| index | recall@{k} | peak GiB | build s | load s | call s | end to end, first | end to end, "
            "saved | speed-up: call / first / saved |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for kind in IVF_KINDS:
            r = big[f"ivf_{kind}"]
            f, a = r["first"]["ivf"], r["again"]["ivf"]
            print(
                f"| IVF-{kind} | {a[f'recall@{k}_vs_exact']:.3f} | {r['first']['peak_rss_gib']:.2f} | "
                f"{f['build_s']:.1f} | {a['load_s']:.2f} | {a['search_s']:.2f} | {f['end_to_end_s']:.1f} | "
                f"{a['end_to_end_s']:.1f} | {r['call_speedup']:.1f}x / {r['end_to_end_speedup_first']:.2f}x / "
                f"{r['end_to_end_speedup_saved']:.2f}x |"
            )
    print("\nProjected (formulas, not measured): shards on disk and IVF index in memory, nlist 4096, PQ m=64")
    print("| passages | dim | fp32 shards GiB | fp16 shards GiB | IVF-Flat GiB | IVF-SQ8 GiB | IVF-PQ GiB |")
    print("|---|---|---|---|---|---|---|")
    for p in proj:
        print(
            f"| {p['n']:,} | {p['dim']} | {p['fp32_shards_gib']:.1f} | {p['fp16_shards_gib']:.1f} | "
            f"{p['ivf_flat_gib']:.1f} | {p['ivf_sq8_gib']:.1f} | {p['ivf_pq_gib']:.1f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--tiny", action="store_true", help="3,000 passages of 64 d: checks that it runs")
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", nargs=3, metavar=("MODE", "N", "DIR"))
    args = ap.parse_args()
    CFG.update(TINY if args.tiny else FULL)
    if args.child:
        mode, n, folder = args.child
        print(json.dumps(child(mode, int(n), folder)))
        return
    sizes = args.sizes or ([3000] if args.tiny else [500_000, 1_000_000, 2_000_000])
    out = args.out or str(
        ROOT / "benchmarks" / "results" / ("corpus_scale_tiny.json" if args.tiny else "corpus_scale.json")
    )
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as folder:
            rows.append(measure(n, folder, n == max(sizes), lambda m, n_, f: run_child(m, n_, f, args.tiny)))
            print(f"{n:>9,} passages measured", flush=True)
    proj = projection()
    print_tables(rows, proj)
    meta = {**machine(), "cpu_count": os.cpu_count(), **CFG}
    Path(out).write_text(json.dumps({"meta": meta, "rows": rows, "projection": proj}, indent=1) + "\n")


def machine() -> dict:
    """The CPU kind (lscpu's model name and the flags that change speed) and the libraries, for the JSON."""
    import faiss
    import torch

    from mdr.runtime.provenance import cpu_kind, cpu_model

    name, flags = cpu_model()
    return {
        "cpu": cpu_kind({"cpu": name, "cpu_flags": flags}),
        "torch": torch.__version__,
        "faiss": faiss.__version__,
    }


if __name__ == "__main__":
    main()
