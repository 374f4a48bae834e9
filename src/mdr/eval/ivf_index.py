"""A FAISS IVF index over a shard folder, built once and saved beside the shards (issue #46).

The evaluator used to rebuild the index on every search, so end to end IVF was slower than exact search even
where the search call alone was faster. Here the index is written to ``<shards>/ivf-<kind>-<nlist>[-m<m>][-disk]/``
with a ``meta.json`` that pins the shards it was built from (the manifest's corpus fingerprint, encoder
settings, size and dimension); a later search with the same folder and settings reads it, and an index whose
shards changed is built again, never served stale.

Kinds, by bytes per vector at dimension d: ``flat`` (IVF-Flat, 4d: exact vectors), ``sq8`` (IVF-SQ8, d: one
byte per component) and ``pq`` (IVF-PQ, m: m sub-quantizer codes of 8 bits). ``on_disk`` keeps the inverted
lists in an ``index.ivfdata`` file that the search memory-maps (FAISS's OnDiskInvertedLists, merged from one
small index per shard as FAISS's ``contrib.ondisk`` does), so neither the build nor the search holds the codes
in memory: with it, IVF-Flat over a corpus larger than RAM works, at the cost of page-cache reads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mdr.eval.shards import ShardLayout, check_complete, search_shards, shard_path
from mdr.eval.topk import order_rows
from mdr.runtime.errors import InputError
from mdr.runtime.files import atomic_write_text

log = logging.getLogger(__name__)

KINDS = ("flat", "sq8", "pq")
TRAIN_PER_LIST = 64  # training vectors per list (FAISS warns below 39)
PQ_TRAIN = 256 * 39  # PQ's 256 centroids per sub-quantizer want at least this many training vectors
RESCORE_CHUNK = 64  # queries rescored at once: their candidates' vectors (64 x candidates x dim floats)


@dataclass(frozen=True)
class IVFSpec:
    """What index to build: kind, number of lists, PQ sub-quantizers (kind pq), inverted lists on disk."""

    kind: str = "flat"
    nlist: int = 1024
    pq_m: int = 64
    on_disk: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"eval.corpus_shards.index={self.kind!r}; choose one of {KINDS}")
        if self.nlist < 1 or self.pq_m < 1:
            raise InputError(
                f"eval.corpus_shards: nlist and pq_m must be >= 1 (got {self.nlist}, {self.pq_m})"
            )

    def name(self) -> str:
        pq = f"-m{self.pq_m}" if self.kind == "pq" else ""
        return f"ivf-{self.kind}-{self.nlist}{pq}" + ("-disk" if self.on_disk else "")

    def check_dim(self, dim: int) -> None:
        if self.kind == "pq" and dim % self.pq_m:
            divisors = [m for m in (8, 16, 32, 48, 64, 96, 128) if dim % m == 0]
            raise InputError(
                f"eval.corpus_shards.pq_m={self.pq_m} does not divide the embedding dimension {dim}: "
                f"choose one of {divisors}"
            )


def code_bytes(dim: int, spec: IVFSpec) -> int:
    """Bytes one vector takes in the inverted lists (plus 8 for its id)."""
    return {"flat": 4 * dim, "sq8": dim, "pq": spec.pq_m}[spec.kind]


def index_bytes(n_docs: int, dim: int, spec: IVFSpec) -> int:
    """The index's size: inverted lists (codes + int64 ids), the coarse quantizer (nlist x dim fp32) and, for
    PQ, its codebooks (256 centroids x dim fp32)."""
    codebooks = 256 * dim * 4 if spec.kind == "pq" else 0
    return n_docs * (code_bytes(dim, spec) + 8) + spec.nlist * dim * 4 + codebooks


def effective_nlist(spec: IVFSpec, n_docs: int) -> IVFSpec:
    """``nlist`` capped so every list gets ~39 training points (FAISS's minimum)."""
    nlist = max(1, min(spec.nlist, n_docs // 39 or 1))
    return spec if nlist == spec.nlist else IVFSpec(spec.kind, nlist, spec.pq_m, spec.on_disk)


def _empty_index(dim: int, spec: IVFSpec):
    import faiss

    quantizer = faiss.IndexFlatIP(dim)
    if spec.kind == "flat":
        return faiss.IndexIVFFlat(quantizer, dim, spec.nlist, faiss.METRIC_INNER_PRODUCT)
    if spec.kind == "sq8":
        return faiss.IndexIVFScalarQuantizer(
            quantizer, dim, spec.nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
    return faiss.IndexIVFPQ(quantizer, dim, spec.nlist, spec.pq_m, 8, faiss.METRIC_INNER_PRODUCT)


def _training_sample(folder: Path, layout: ShardLayout, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(layout.n_docs, size=min(layout.n_docs, n), replace=False))
    parts = []
    for s in range(layout.n_shards):
        a, b = layout.bounds(s)
        rows = sample[(sample >= a) & (sample < b)] - a
        parts.append(np.asarray(np.load(shard_path(folder, s), mmap_mode="r")[rows], np.float32))
    return np.concatenate(parts)


def _shard_vectors(folder: Path, shard: int) -> np.ndarray:
    return np.ascontiguousarray(np.load(shard_path(folder, shard), mmap_mode="r"), dtype=np.float32)


def _meta(layout: ShardLayout, spec: IVFSpec, seed: int) -> dict:
    import faiss

    return {"shards": asdict(layout), "spec": asdict(spec), "seed": seed, "faiss": faiss.__version__}


def _matches(recorded: dict, wanted: dict) -> bool:
    return {k: recorded.get(k) for k in ("shards", "spec", "seed")} == {
        k: wanted[k] for k in ("shards", "spec", "seed")
    }


def build_index(folder: Path, layout: ShardLayout, spec: IVFSpec, out: Path, seed: int) -> None:
    """Train on a seeded sample, add the shards in corpus order (ids = corpus positions) and write the index
    into ``out`` (a fresh folder; the caller renames it into place)."""
    import faiss

    index = _empty_index(layout.dim, spec)
    n_train = max(TRAIN_PER_LIST * spec.nlist, PQ_TRAIN if spec.kind == "pq" else 0)
    index.train(_training_sample(folder, layout, n_train, seed))
    if not spec.on_disk:
        for s in range(layout.n_shards):
            index.add(_shard_vectors(folder, s))
        faiss.write_index(index, str(out / "index.faiss"))
        return
    parts = []
    for s in range(layout.n_shards):  # one small index per shard, then merged into one on-disk file
        part = faiss.clone_index(index)
        start, stop = layout.bounds(s)
        part.add_with_ids(_shard_vectors(folder, s), np.arange(start, stop, dtype=np.int64))
        parts.append(str(out / f"part_{s:05d}.faiss"))
        faiss.write_index(part, parts[-1])
        del part
    from faiss.contrib.ondisk import merge_ondisk

    merge_ondisk(index, parts, str(out / "index.ivfdata"))
    faiss.write_index(index, str(out / "index.faiss"))
    for p in parts:
        os.remove(p)


def load_or_build(folder: str | Path, spec: IVFSpec, seed: int = 0):
    """The index over ``folder``'s shards for ``spec``: read from beside the shards when it was built from
    the same shards and settings, else built and saved there. Returns (index, info)."""
    import faiss

    folder = Path(folder)
    layout = check_complete(folder)
    spec = effective_nlist(spec, layout.n_docs)
    spec.check_dim(layout.dim)
    where = folder / spec.name()
    wanted = _meta(layout, spec, seed)
    meta_path = where / "meta.json"
    built, build_s = False, 0.0
    if not (meta_path.is_file() and _matches(json.loads(meta_path.read_text()), wanted)):
        if where.exists():
            log.info("%s: built from other shards or settings; building it again", where)
        tmp = folder / f".{spec.name()}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        t0 = time.perf_counter()
        build_index(folder, layout, spec, tmp, seed)
        build_s = time.perf_counter() - t0
        atomic_write_text(tmp / "meta.json", json.dumps({**wanted, "build_s": build_s}, indent=1))
        shutil.rmtree(where, ignore_errors=True)
        os.replace(tmp, where)  # a reader sees the old folder or the whole new one, never a half-built index
        built = True
        log.info("%s: built in %.1f s and saved", where, build_s)
    t0 = time.perf_counter()
    flags = faiss.IO_FLAG_ONDISK_SAME_DIR if spec.on_disk else 0
    index = faiss.read_index(str(where / "index.faiss"), flags)
    info = {
        "index": str(where),
        **{k: v for k, v in asdict(spec).items()},
        "built": built,
        "build_s": build_s,
        "load_s": time.perf_counter() - t0,
        "index_bytes": index_bytes(layout.n_docs, layout.dim, spec),
    }
    return index, info


def ivf_search(
    query_emb: np.ndarray,
    folder: str | Path,
    k: int,
    spec: IVFSpec,
    nprobe: int,
    recall_queries: int = 200,
    seed: int = 0,
    tie_key: np.ndarray | None = None,
    rerank: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Approximate inner-product top-``k`` with the folder's saved IVF index (built on first use), ``nprobe``
    lists probed; each list ordered by score then ``tie_key`` (-1 padding last). With ``rerank`` = r > 0 the
    index proposes r x k candidates and each is scored exactly from its shard (what a compressed index needs:
    its own scores are approximations). ``info`` has the build, load and search times (end to end = their
    sum) and, on a seeded sample of ``recall_queries`` queries (0: skip), recall@k against exact search."""
    import torch

    t0 = time.perf_counter()
    index, info = load_or_build(folder, spec, seed)
    k = min(k, index.ntotal)
    index.nprobe = min(nprobe, index.nlist)
    q = np.ascontiguousarray(query_emb, dtype=np.float32)
    t1 = time.perf_counter()
    scores, idx = index.search(q, min(k * rerank, index.ntotal) if rerank > 0 else k)
    key = None if tie_key is None else torch.from_numpy(np.asarray(tie_key, dtype=np.int64))
    if rerank > 0:
        idx, scores = exact_rescore(q, idx, Path(folder), k, key)
    info["search_s"] = time.perf_counter() - t1
    info["end_to_end_s"] = time.perf_counter() - t0
    idx_t, scores_t = order_rows(torch.from_numpy(idx), torch.from_numpy(scores), key)
    idx, scores = idx_t.numpy(), scores_t.numpy()
    info["nprobe"], info["rerank"] = index.nprobe, rerank
    if recall_queries > 0:
        rng = np.random.default_rng(seed)
        probe = np.sort(rng.choice(len(q), size=min(len(q), recall_queries), replace=False))
        exact_idx, _ = search_shards(q[probe], folder, k, tie_key=tie_key)
        found = [len(set(idx[p][idx[p] >= 0]) & set(e)) / k for p, e in zip(probe, exact_idx)]  # -1: padding
        info[f"recall@{k}_vs_exact"] = float(np.mean(found))
        info["recall_queries"] = len(probe)
    return idx, scores, info


def exact_rescore(q: np.ndarray, candidates: np.ndarray, folder: Path, k: int, key=None):
    """Each query's candidates (corpus indices, -1 padding) scored exactly against their vectors, read from
    the memory-mapped shards (only the candidates' rows, a block of queries at a time: memory is one block's
    candidates), and the top ``k`` kept (ordered by score, then ``key``; a tie at the k-th place among
    candidates keeps the index's earlier candidate)."""
    import torch

    from mdr.eval.topk import top_k

    layout = check_complete(folder)
    shards = [np.load(shard_path(folder, s), mmap_mode="r") for s in range(layout.n_shards)]
    exact = np.full(candidates.shape, -np.inf, dtype=np.float32)
    for a in range(0, len(q), RESCORE_CHUNK):
        block = candidates[a : a + RESCORE_CHUNK]
        wanted = np.unique(block[block >= 0])
        if not len(wanted):
            continue
        vectors = np.empty((len(wanted), layout.dim), dtype=np.float32)
        for s, shard in enumerate(shards):
            lo, hi = np.searchsorted(wanted, layout.bounds(s))
            if hi > lo:
                vectors[lo:hi] = shard[wanted[lo:hi] - layout.bounds(s)[0]]
        pos = np.searchsorted(wanted, np.clip(block, 0, None)).clip(max=len(wanted) - 1)
        exact[a : a + RESCORE_CHUNK] = np.einsum("qd,qcd->qc", q[a : a + RESCORE_CHUNK], vectors[pos])
    exact = np.where(candidates >= 0, exact, -np.inf).astype(np.float32)
    cols, vals = top_k(torch.from_numpy(exact), k, None)
    chosen = candidates[np.arange(len(q))[:, None], cols.numpy()]
    idx_t, scores_t = order_rows(torch.from_numpy(chosen), vals, key)
    return idx_t.numpy(), scores_t.numpy()
