"""Corpus embeddings in shards that any number of processes fill, resumably, and exact search that streams
over them with bounded memory (issue #31; the way Tevatron encodes a corpus in shards and merges top-k).

A corpus of ``n`` documents is cut into shards of ``shard_size`` consecutive documents. Process ``rank`` of
``world`` (one per GPU, or one SLURM array task) encodes shards ``rank, rank + world, ...`` into
``<dir>/shard_00007.npy`` (fp32, or fp16 to halve the disk) and writes ``shard_00007.done`` after the array is
complete on disk, so a killed job re-encodes at most the shard it was writing. ``manifest.json`` pins the
corpus size, shard size, dtype, dimension and the corpus's fingerprint (docids and texts), and ``probe.npy`` the
encoder's vector for a fixed text: a job with another corpus, setting or model is refused rather than mixed in,
and a shard marked done whose file is truncated is encoded again.

A plain per-rank loop, not Lightning's distributed prediction: every rank writes its own files and needs no
collective (no gather of a corpus-sized array, no process group to set up on an array task), and resuming is
a file check. Search reads each shard memory-mapped, scores it against the queries in fp32 and keeps a running
top-k, so memory is (queries x shard) + (queries x k), whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mdr.eval.topk import merge_top_k, top_k
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.files import atomic_write_text

log = logging.getLogger(__name__)

DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class ShardLayout:
    """How ``n_docs`` documents fall into shards (recorded in ``manifest.json``)."""

    n_docs: int
    shard_size: int
    dim: int
    dtype: str = "float32"
    corpus: str = ""  # fingerprint of the documents' ids and texts (corpus_fingerprint); "" when unknown
    encoder: str = (
        ""  # the model and the settings that shape a passage vector (model name, prefix, length, precision)
    )

    def __post_init__(self):
        if self.n_docs < 1 or self.shard_size < 1 or self.dim < 1:
            raise InputError(f"shards need n_docs, shard_size and dim >= 1, got {asdict(self)}")
        if self.dtype not in DTYPES:
            raise InputError(f"shard dtype {self.dtype!r}: choose one of {DTYPES}")

    @property
    def n_shards(self) -> int:
        return -(-self.n_docs // self.shard_size)

    def bounds(self, shard: int) -> tuple[int, int]:
        start = shard * self.shard_size
        return start, min(start + self.shard_size, self.n_docs)

    def assigned(self, rank: int, world: int) -> list[int]:
        """This process's shards: round-robin, so every rank gets a near-equal share."""
        if not 0 <= rank < world:
            raise InputError(f"rank {rank} is not in [0, world={world})")
        return list(range(rank, self.n_shards, world))


PROBE_TEXT = (
    "A fixed probe passage: the encoder that wrote these shards encodes it to the vector in probe.npy."
)


def corpus_fingerprint(doc_ids: Sequence[str], texts: Sequence[str]) -> str:
    """A digest of every (docid, text): shards written for one corpus are refused for a changed one."""
    h = hashlib.blake2b(digest_size=16)
    for doc_id, text in zip(doc_ids, texts):
        h.update(doc_id.encode("utf-8", "surrogatepass"))
        h.update(b"\t")
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return f"{len(doc_ids)}:{h.hexdigest()}"


def shard_rank(
    rank: int | None = None, world: int | None = None, ranks_from: str = "config"
) -> tuple[int, int]:
    """(rank, world) of this process for shard assignment: as configured (``eval.corpus_shards.rank`` /
    ``world_size``, e.g. one Hydra multirun job each), or, only when ``ranks_from`` says the launcher started an
    encoding job, its SLURM array task (``SLURM_ARRAY_TASK_ID`` of ``SLURM_ARRAY_TASK_COUNT``) or torchrun rank
    (``RANK`` of ``WORLD_SIZE``); else (0, 1). The environment alone never makes a rank: the cells of a Hydra
    submitit sweep are array tasks too, and would each encode a share of one corpus and exit without metrics."""
    if rank is not None or world is not None:
        if rank is None or world is None:
            raise InputError("set both eval.corpus_shards.rank and eval.corpus_shards.world_size, or neither")
        if not 0 <= int(rank) < int(world):
            raise InputError(f"eval.corpus_shards.rank={rank} must be in [0, world_size={world})")
        return int(rank), int(world)
    env = os.environ
    if ranks_from == "slurm_array":
        if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
            raise InputError(
                "eval.corpus_shards.ranks_from=slurm_array, but this job is not a SLURM array task "
                "(no SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT); submit it with sbatch --array, or set rank / world_size"
            )
        first = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        return int(env["SLURM_ARRAY_TASK_ID"]) - first, int(env["SLURM_ARRAY_TASK_COUNT"])
    if ranks_from == "torchrun":
        if "RANK" not in env or "WORLD_SIZE" not in env:
            raise InputError(
                "eval.corpus_shards.ranks_from=torchrun, but RANK / WORLD_SIZE are not set; start it with torchrun"
            )
        return int(env["RANK"]), int(env["WORLD_SIZE"])
    return 0, 1


def wait_for_shards(folder: str | Path, layout: ShardLayout, wait_s: float, poll_s: float = 5.0) -> None:
    """Rank 0 searches once the other ranks' shards are done: it waits up to ``wait_s`` seconds, saying in the
    log what it waits for; then ``check_complete`` names what is still missing."""
    folder = Path(folder)
    deadline, last_log = time.monotonic() + wait_s, 0.0
    while time.monotonic() < deadline:
        missing = [s for s in range(layout.n_shards) if not done_path(folder, s).exists()]
        if not missing:
            return
        if time.monotonic() - last_log >= 60:
            log.info(
                "waiting for %d of %d shards from the other ranks (%s)", len(missing), layout.n_shards, folder
            )
            last_log = time.monotonic()
        time.sleep(poll_s)


def shard_path(folder: Path, shard: int) -> Path:
    return folder / f"shard_{shard:05d}.npy"


def done_path(folder: Path, shard: int) -> Path:
    return folder / f"shard_{shard:05d}.done"


def open_layout(
    folder: Path, layout: ShardLayout, encode: Callable[[Sequence[str]], np.ndarray] | None = None
) -> None:
    """Write the manifest (and the encoder's probe vector), or check that the folder's match: a shard folder
    serves one corpus, one setting and one encoder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.json"
    if path.exists():
        _check_manifest(path, read_manifest(path), asdict(layout))
    elif not write_once(path, json.dumps(asdict(layout), sort_keys=True) + "\n"):
        return open_layout(folder, layout, encode)  # another rank's manifest won: check against it
    if encode is not None:
        _check_probe(folder, np.asarray(encode([PROBE_TEXT]), dtype=np.float32)[0])


def write_once(path: Path, text: str) -> bool:
    """Write ``path`` complete or not at all, unless it exists: several ranks may start at once, and the first
    complete file linked in place wins (``os.link`` is atomic and fails on an existing name). True if ours."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def read_manifest(path: Path) -> dict:
    """A shard folder's manifest, or one line naming it when it is damaged."""
    try:
        recorded = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(
            f"{path}: not a readable shard manifest ({type(e).__name__}); delete it and run the encoding again "
            "(finished shards are checked against the new manifest, not thrown away)"
        ) from None
    if not isinstance(recorded, dict):
        raise InputError(
            f"{path}: not a shard manifest (a JSON object); delete it and run the encoding again"
        )
    return recorded


def _check_manifest(path: Path, recorded: dict, wanted: dict) -> None:
    if recorded.get("corpus", "") and wanted["corpus"] and recorded["corpus"] != wanted["corpus"]:
        raise InputError(
            f"{path}: the corpus changed since these shards were written (fingerprint {recorded['corpus']}, now "
            f"{wanted['corpus']}); encode into a new folder (eval.corpus_shards.dir), or delete this one"
        )
    if recorded.get("dim") != wanted["dim"]:
        raise InputError(
            f"{path}: the shards hold {recorded.get('dim')}-dimensional vectors, this encoder gives {wanted['dim']}: "
            "they come from another model; encode into a new folder (eval.corpus_shards.dir)"
        )
    if recorded.get("encoder", "") != wanted.get("encoder", ""):
        raise InputError(
            f"{path}: these shards were encoded with {recorded.get('encoder') or 'unrecorded settings'}, this job "
            f"encodes with {wanted.get('encoder')}; encode into a new folder (eval.corpus_shards.dir)"
        )
    if {k: v for k, v in recorded.items() if k != "corpus"} != {
        k: v for k, v in wanted.items() if k != "corpus"
    }:
        raise InputError(
            f"{path} records {recorded}, this job asks for {wanted}; encode into a new folder "
            "(or delete it to start over)"
        )


def check_world(folder: Path, layout: ShardLayout, world: int) -> None:
    """The number of jobs sharing the encoding, recorded by the first (``world.json``): a job that counts
    another world while shards are missing would take another share, and some shards would be no one's
    (rank 0 would then wait for them in vain). A complete folder accepts any world (nothing is left to do)."""
    path = folder / "world.json"
    if not path.exists():
        write_once(path, json.dumps({"world_size": world}) + "\n")  # the first job's count wins
    try:
        recorded = int(json.loads(path.read_text())["world_size"])
    except (ValueError, KeyError, TypeError):
        raise InputError(
            f"{path}: not a readable world record; delete it (finished shards are kept)"
        ) from None
    missing = [s for s in range(layout.n_shards) if not done_path(folder, s).exists()]
    if recorded != world and missing:
        raise InputError(
            f"{folder}: its encoding is shared by world_size={recorded} jobs and this one counts {world}, with "
            f"{len(missing)} shards still missing; use eval.corpus_shards.world_size={recorded}, or delete "
            f"{path} to re-plan (finished shards are kept)"
        )


def _check_probe(folder: Path, probe: np.ndarray) -> None:
    """The first job stores the encoder's vector for PROBE_TEXT; a later job whose encoder gives another
    vector (another model or checkpoint) is refused before it mixes its shards in."""
    path = folder / "probe.npy"
    if not path.exists():  # a temporary name no other job (on this or another node) can share
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".probe.", suffix=".npy")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, probe)
        os.replace(tmp, path)
        return
    stored = np.load(path)
    cosine = float(stored @ probe / (np.linalg.norm(stored) * np.linalg.norm(probe) + 1e-12))
    if stored.shape != probe.shape or cosine < 0.999:
        raise InputError(
            f"{folder}: these shards were written by another encoder (its probe vector differs: cosine "
            f"{cosine:.4f}); encode into a new folder (eval.corpus_shards.dir) for this model or checkpoint"
        )


def shard_problem(folder: Path, layout: ShardLayout, shard: int) -> str | None:
    """Why a shard marked done cannot be used (missing, truncated, wrong shape or dtype), or None."""
    start, stop = layout.bounds(shard)
    path = shard_path(folder, shard)
    try:
        arr = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (ValueError, EOFError, OSError) as e:  # a header promising more bytes, an empty file, bad bytes
        return f"{path.name} is empty, truncated or damaged ({type(e).__name__}: {e})"
    if arr.shape != (stop - start, layout.dim) or arr.dtype != np.dtype(layout.dtype):
        return (
            f"{path.name} holds {arr.shape} {arr.dtype}, the manifest says {(stop - start, layout.dim)} "
            f"{layout.dtype} (a shard from another model or setting)"
        )
    return None


def encode_shards(
    encode: Callable[[Sequence[str]], np.ndarray],
    texts: Sequence[str],
    folder: str | Path,
    layout: ShardLayout,
    rank: int = 0,
    world: int = 1,
) -> list[int]:
    """Encode this rank's shards that are not done yet; returns the shards encoded now (a resumed job skips the
    done ones and logs how many). ``encode`` maps a list of texts to their (len, dim) embeddings."""
    folder = Path(folder)
    if len(texts) != layout.n_docs:
        raise InputError(f"{len(texts)} texts for a layout of {layout.n_docs} documents")
    open_layout(folder, layout, encode)
    check_world(folder, layout, world)
    mine = layout.assigned(rank, world)
    todo = []
    for shard in mine:
        if not done_path(folder, shard).exists():
            todo.append(shard)
        elif problem := shard_problem(folder, layout, shard):
            log.warning("rank %d: shard %d was marked done but %s: encoding it again", rank, shard, problem)
            done_path(folder, shard).unlink()
            todo.append(shard)
    if len(todo) < len(mine):
        log.info(
            "rank %d: %d of its %d shards already done in %s", rank, len(mine) - len(todo), len(mine), folder
        )
    for n, shard in enumerate(todo, 1):
        start, stop = layout.bounds(shard)
        emb = np.asarray(encode(texts[start:stop]), dtype=np.float32)
        if emb.shape != (stop - start, layout.dim):
            raise InputError(
                f"the encoder gave {emb.shape} for shard {shard}; expected {(stop - start, layout.dim)}"
            )
        tmp = shard_path(folder, shard).with_suffix(f".{os.getpid()}.partial.npy")  # one name per process
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=layout.dtype, shape=emb.shape)
        out[:] = emb
        out.flush()
        del out
        os.replace(tmp, shard_path(folder, shard))
        atomic_write_text(done_path(folder, shard), f"{start} {stop}\n")
        log.info(
            "rank %d: shard %d done (%d of %d this run; docs %d-%d)", rank, shard, n, len(todo), start, stop
        )
    return todo


def check_complete(folder: str | Path) -> ShardLayout:
    """The folder's layout, once every shard is done (else one line naming the missing shards and the fix)."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise MissingInputError(f"{folder} holds no manifest.json: encode the corpus into it first")
    layout = ShardLayout(**read_manifest(path))
    missing = [s for s in range(layout.n_shards) if not done_path(folder, s).exists()]
    if missing:
        raise MissingInputError(
            f"{folder}: {len(missing)} of {layout.n_shards} shards are not done (e.g. {missing[:5]}); run the "
            "encoding again with the same settings: done shards are skipped"
        )
    for shard in range(layout.n_shards):
        if problem := shard_problem(folder, layout, shard):
            raise InputError(
                f"{folder}: {problem}; run the encoding again with the same settings: it re-encodes this shard "
                "and keeps the others"
            )
    return layout


def search_shards(
    query_emb: np.ndarray,
    folder: str | Path,
    k: int,
    query_chunk: int = 1024,
    tie_key: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k`` over every shard (document indices into the whole corpus, and scores, best
    first), streaming: one shard memory-mapped at a time, a running top-k per query. Ties go by ``tie_key``
    (``mdr.eval.topk``), so the result equals ``exact_top_k`` whatever the shard size."""
    folder = Path(folder)
    layout = check_complete(folder)
    k = min(k, layout.n_docs)
    key = None if tie_key is None else torch.from_numpy(np.asarray(tie_key, dtype=np.int64))
    q = torch.from_numpy(np.ascontiguousarray(query_emb, dtype=np.float32))
    best_scores = torch.full((len(q), k), -torch.inf)
    best_idx = torch.full((len(q), k), -1, dtype=torch.int64)
    for shard in range(layout.n_shards):
        start, _ = layout.bounds(shard)
        docs = torch.from_numpy(np.load(shard_path(folder, shard), mmap_mode="r").astype(np.float32))
        for a in range(0, len(q), query_chunk):
            rows = slice(a, a + query_chunk)
            new = top_k(q[rows] @ docs.T, k, key, offset=start)
            best_idx[rows], best_scores[rows] = merge_top_k((best_idx[rows], best_scores[rows]), new, k, key)
    return best_idx.numpy(), best_scores.numpy()
