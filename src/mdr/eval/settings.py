"""The ``eval:`` settings, typed: what ``train.py`` and ``eval.py`` evaluate and how. Every default lives here;
``conf/eval/*.yaml`` extends this schema (``mdr.cli.schema`` registers it with Hydra), so a mistyped key or a
value of the wrong type is refused when the config is composed. The settings that take a mapping from the
command line (``eval.corpus_shards={...}``, ``eval.attack``) are parsed into their own dataclasses here, with
unknown keys and wrong types refused in one line naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from mdr.runtime.errors import InputError

RUN_KINDS = {
    "all": ("mono", "cross", "multi"),
    "mono_multi": ("mono", "multi"),
    "multi": ("multi",),
    "none": (),
}
SEARCHES = (
    "torch",
    "faiss",
    "ivf",
)  # exact matmul, exact FAISS IndexFlatIP, approximate FAISS IVF over shards
PRECISIONS = ("auto", "bf16", "fp32")


def typed_from_mapping(cls, raw: dict | Any, where: str):
    """``cls(**raw)`` for a mapping from the config, refusing unknown keys and values of the wrong type with one
    line naming ``where.<key>``."""
    if isinstance(raw, cls):
        return raw
    if not isinstance(raw, dict):
        raise InputError(f"{where}={raw!r}: give a mapping, e.g. {where}={{key: value}}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise InputError(f"{where} has unknown key(s) {unknown}; known keys: {sorted(known)}")
    values = {}
    for key, value in raw.items():
        kind = getattr(cls, "TYPES", {}).get(key)
        if kind is not None and value is not None:
            try:
                if kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
                    raise ValueError
                value = kind(value)
            except (TypeError, ValueError):
                raise InputError(f"{where}.{key}={value!r}: expected {kind.__name__}") from None
        values[key] = value
    return cls(**values)


RANK_SOURCES = ("config", "slurm_array", "torchrun")


@dataclass
class CorpusShards:
    """``eval.corpus_shards``: corpus-style sets encoded into resumable shards and searched shard by shard
    (``mdr.eval.shards``)."""

    shard_size: int = 50_000
    dtype: str = "float32"  # float32 | float16
    dir: str | None = None  # null: <run>/eval/<set>/shards; or a folder shared by the processes (<dir>/<set>)
    rank: int | None = None  # this job's share of the encoding, with world_size; null: the only one ...
    world_size: int | None = None
    # ... unless the launcher says it is an encoding job: slurm_array (SLURM_ARRAY_TASK_ID of _COUNT) or
    # torchrun (RANK of WORLD_SIZE). Never implied: a Hydra / submitit sweep's cells are array tasks too.
    ranks_from: str = "config"
    wait_s: float = 3600.0  # how long rank 0 waits for the other ranks' shards before it searches
    nlist: int = 1024  # eval.search=ivf: FAISS IVF lists ...
    nprobe: int = 32  # ... and lists probed per query
    index: str = (
        "flat"  # eval.search=ivf: flat (4d bytes a vector) | sq8 (d) | pq (pq_m), saved beside the shards
    )
    pq_m: int = 64  # index=pq: sub-quantizers (must divide the dimension)
    on_disk: bool = False  # inverted lists in a memory-mapped file (corpora whose index exceeds RAM)
    recall_queries: int = 200  # queries whose IVF top-k is checked against exact search (0: skip)
    # > 0: the index proposes rerank x k candidates, each rescored exactly from its shard (for sq8, pq)
    rerank: int = 0

    TYPES = {
        "shard_size": int,
        "rank": int,
        "world_size": int,
        "wait_s": float,
        "nlist": int,
        "nprobe": int,
        "pq_m": int,
        "recall_queries": int,
        "rerank": int,
    }

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.nlist < 1 or self.nprobe < 1:
            raise InputError(
                f"eval.corpus_shards: shard_size, nlist and nprobe must be >= 1 (got {self.shard_size}, "
                f"{self.nlist}, {self.nprobe})"
            )
        if self.dtype not in ("float32", "float16"):
            raise InputError(f"eval.corpus_shards.dtype={self.dtype!r}; choose float32 or float16")
        if self.ranks_from not in RANK_SOURCES:
            raise InputError(
                f"eval.corpus_shards.ranks_from={self.ranks_from!r}; choose one of {RANK_SOURCES}"
            )
        if self.wait_s < 0:
            raise InputError(f"eval.corpus_shards.wait_s={self.wait_s}: give seconds >= 0")
        if self.rerank < 0:
            raise InputError(f"eval.corpus_shards.rerank={self.rerank}: give 0 (off) or a factor >= 1")
        if self.recall_queries < 0:
            raise InputError(
                f"eval.corpus_shards.recall_queries={self.recall_queries}: give 0 (skip) or more"
            )
        if not isinstance(self.on_disk, bool):
            raise InputError(f"eval.corpus_shards.on_disk={self.on_disk!r}: expected true or false")
        self.ivf()  # an unknown index kind or pq_m < 1 is refused with the rest of the settings

    def ivf(self):
        """The IVF index these settings ask for (``mdr.eval.ivf_index``)."""
        from mdr.eval.ivf_index import IVFSpec

        return IVFSpec(self.index, self.nlist, self.pq_m, self.on_disk)


@dataclass
class EvalSettings:
    """The ``eval:`` config group (``conf/eval/``), shared by ``train.py`` and ``eval.py``."""

    datasets: list[str] = field(default_factory=list)  # LAReQA sets (xquad_r, mlqa_r) and Tatoeba (tatoeba)
    batch_size: int = 64
    run_files: str = "multi"  # TREC runs (top run_depth) for: all | mono_multi | multi | none
    run_depth: int = 100
    save_embeddings: bool = False
    precision: str = "auto"  # encoding autocast: auto (bf16 on GPUs and AMX CPUs) | bf16 | fp32
    perturb: list[dict] = field(
        default_factory=list
    )  # [{kind: char_noise|word_drop|word_swap|code_switch, rate}]
    perturb_seed: int = 0
    qrels_sets: list[dict] = field(default_factory=list)  # corpus-style sets (conf/data/miracl.yaml)
    search: str = "torch"  # corpus-style sets: torch | faiss (exact) | ivf (approximate, over corpus_shards)
    corpus_shards: Any = None  # null, or a CorpusShards mapping (typed in __post_init__)
    show_progress: bool = True
    tatoeba_langs: Any = "all"  # all | xtreme36 | xtreme36+low_resource | [deu, cmn, ...] (ISO 639-3)
    attack: Any = None  # a budgeted query attack on LAReQA sets (mdr.eval.attack.AttackSettings)
    # {name: {key: value}}: the same attack with these keys changed (<set>~attack_<name>)
    attack_variants: Any = None
    # {k: 60, bm25: {...}}: also score RRF(this model, BM25) as its own row (mdr.eval.fusion)
    fusion: Any = None
    # {passages: 5, length: 50, steps: 300, attacker_langs: [en, th], ...}: HotFlip corpus poisoning of LAReQA
    # sets (mdr.eval.poison), <set>~poison
    poison: Any = None
    # {langs: [deu, tha, ...], n: 200, seed: 0}: train.py measures the cosine gap between translation pairs and
    # same-language non-pairs on Tatoeba (mdr.eval.cosine_gap) on the backbone, after pretrain, after training
    cosine_gap: Any = None

    def __post_init__(self) -> None:
        if self.cosine_gap is not None:
            from mdr.eval.cosine_gap import CosineGapSettings

            self.cosine_gap = typed_from_mapping(CosineGapSettings, dict(self.cosine_gap), "eval.cosine_gap")
        if self.corpus_shards is not None:
            self.corpus_shards = typed_from_mapping(
                CorpusShards, dict(self.corpus_shards), "eval.corpus_shards"
            )
        if self.batch_size < 1 or self.run_depth < 1:
            raise InputError(
                f"eval.batch_size={self.batch_size}, eval.run_depth={self.run_depth}: both must be >= 1"
            )

    def check(self) -> list[tuple[str, float]]:
        """Fail on settings that cannot work; returns the perturbations as (kind, rate). The attack settings
        are parsed (and checked) once, by :class:`mdr.eval.plan.EvalPlan`."""
        from mdr.data.perturb import check_perturbations

        if self.run_files not in RUN_KINDS:
            raise InputError(f"eval.run_files={self.run_files!r}; choose one of {sorted(RUN_KINDS)}")
        if self.search not in SEARCHES:
            raise InputError(f"eval.search={self.search!r}; choose one of {SEARCHES}")
        if self.precision not in PRECISIONS:
            raise InputError(f"eval.precision={self.precision!r}; choose one of {PRECISIONS}")
        if self.search == "ivf" and not self.corpus_shards:
            raise InputError(
                "eval.search=ivf builds a FAISS IVF index over corpus shards: also set eval.corpus_shards="
                "{shard_size: 50000, nlist: 1024, nprobe: 32}"
            )
        return check_perturbations(list(self.perturb or []))
