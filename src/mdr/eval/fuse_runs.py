"""Reciprocal-rank fusion of TREC run files: ``python -m mdr.eval.fuse_runs A.trec.gz B.trec.gz --out F.trec``.

The in-run fusion (``eval.fusion``, :mod:`mdr.eval.fusion`) ranks whole pools; this fuses the top-k runs an
evaluation writes (``eval/<set>/runs/<setting>.trec.gz``), or any other system's, as ranx and trec_tools do.
Every run must rank the same queries: a query one run lacks is refused, naming the file and the query id,
rather than fused from one ranking alone. A document a run did not retrieve adds nothing from that run.
Within a run, ties share their best rank, as in the in-run fusion.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

from mdr.eval.outputs.trec import run_line
from mdr.runtime.errors import InputError, MissingInputError

Run = dict[str, dict[str, float]]  # query id -> {doc id: score}


def read_run(path: str | Path) -> Run:
    """A TREC run file (``qid Q0 docid rank score tag``; gzipped when it ends in .gz), checked line by line."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"{path}: run file not found; pass the runs/<setting>.trec.gz an evaluation wrote"
        )
    opener = gzip.open if path.suffix == ".gz" else open
    run: Run = {}
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                fields = line.split()
                if len(fields) != 6:
                    raise InputError(
                        f"{path}:{n}: {len(fields)} fields; a TREC run line is 'qid Q0 docid rank score tag'"
                    )
                qid, _, doc, _, score, _ = fields
                try:
                    value = float(score)
                except ValueError:
                    raise InputError(f"{path}:{n}: score {score!r} is not a number") from None
                docs = run.setdefault(qid, {})
                if doc in docs:
                    raise InputError(f"{path}:{n}: document {doc!r} ranked twice for query {qid!r}")
                docs[doc] = value
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as e:
        raise InputError(f"{path}: not a readable TREC run ({type(e).__name__}); rewrite the file") from None
    if not run:
        raise InputError(f"{path}: no run lines; the file is empty")
    return run


def best_rank_of(docs: dict[str, float]) -> dict[str, int]:
    """1-based ranks by score, ties sharing the best rank of their group."""
    ordered = sorted(docs.values(), reverse=True)
    first: dict[float, int] = {}
    for i, score in enumerate(ordered, 1):
        first.setdefault(score, i)
    return {doc: first[score] for doc, score in docs.items()}


def fuse_runs(runs: dict[str, Run], k: int = 60) -> Run:
    """RRF of runs keyed by their file name; every run must rank the same queries."""
    if k < 1:
        raise InputError(f"--k {k}: RRF's constant is an integer >= 1 (60 is usual)")
    names = list(runs)
    reference = set(runs[names[0]])
    for name in names[1:]:
        missing = sorted(reference - set(runs[name])) or sorted(set(runs[name]) - reference)
        if missing:
            lacks, has = (name, names[0]) if missing[0] in reference else (names[0], name)
            raise InputError(
                f"fusion: {lacks} has no ranking for query {missing[0]!r} of {has} ({len(missing)} such "
                "queries); fuse runs of the same queries (the same dataset and setting)"
            )
    fused: Run = {}
    for qid in runs[names[0]]:
        scores: dict[str, float] = {}
        for run in runs.values():
            for doc, rank in best_rank_of(run[qid]).items():
                scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
        fused[qid] = dict(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])))
    return fused


def write_run(run: Run, path: str | Path, depth: int | None = None, tag: str = "rrf") -> None:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for qid, docs in run.items():
            for rank, (doc, score) in enumerate(list(docs.items())[:depth], 1):
                fh.write(run_line(qid, doc, rank, score, tag) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mdr.eval.fuse_runs", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="TREC run files (.trec or .trec.gz), two or more")
    parser.add_argument("--out", required=True, help="the fused run (.trec or .trec.gz)")
    parser.add_argument("--k", type=int, default=60, help="RRF's constant (default 60)")
    parser.add_argument("--depth", type=int, default=100, help="documents kept per query (default 100)")
    args = parser.parse_args(argv)
    try:
        if len(args.runs) < 2:
            raise InputError("fusion needs two or more run files")
        fused = fuse_runs({r: read_run(r) for r in args.runs}, args.k)
        write_run(fused, args.out, args.depth)
    except InputError as e:
        print(f"fuse_runs: error: {e}", file=sys.stderr)
        return 2
    print(f"fused {len(args.runs)} runs ({len(fused)} queries, RRF k={args.k}) into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
