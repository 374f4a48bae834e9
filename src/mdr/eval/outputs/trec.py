"""TREC run and qrels files, in one line format for every kind of set: LAReQA settings write one run per
setting (:class:`TrecWriter`), corpus-style sets one run and one qrels file (:func:`write_qrels_outputs`)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def run_line(qid, docid, rank: int, score: float, tag: str = "mdr") -> str:
    """``qid Q0 docid rank score tag`` (trec_eval's run format; scores to 6 decimals)."""
    return f"{qid} Q0 {docid} {rank} {score:.6f} {tag}"


def qrels_line(qid, docid, relevance: int) -> str:
    """``qid 0 docid relevance`` (trec_eval's qrels format)."""
    return f"{qid} 0 {docid} {relevance}"


class TrecWriter:
    """Run writer for :func:`evaluate_lareqa`: one gzipped TREC run and one qrels file per setting."""

    def __init__(self, out_dir: Path, tag: str = "mdr"):
        self.out_dir, self.tag = Path(out_dir), tag
        (self.out_dir / "runs").mkdir(parents=True, exist_ok=True)
        (self.out_dir / "qrels").mkdir(parents=True, exist_ok=True)

    def __call__(self, setting, q_uids, c_uids, top_idx, top_scores, rel) -> None:
        fname = setting.replace("->", "-")
        c_uids_arr = np.asarray(c_uids)
        lines = []
        k = top_idx.shape[1]
        ranks = np.arange(1, k + 1)
        for qi, q in enumerate(q_uids):
            docs = c_uids_arr[top_idx[qi]]
            lines.extend(run_line(q, d, r, s, self.tag) for d, r, s in zip(docs, ranks, top_scores[qi]))
        with gzip.open(self.out_dir / "runs" / f"{fname}.trec.gz", "wt", compresslevel=1) as fh:
            fh.write("\n".join(lines) + "\n")
        q_lines = [qrels_line(q, c_uids[j], 1) for qi, q in enumerate(q_uids) for j in rel[qi] if j >= 0]
        (self.out_dir / "qrels" / f"{fname}.qrels").write_text("\n".join(q_lines) + "\n")


def write_qrels_outputs(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], out: Path
) -> None:
    """A corpus-style set's ``run.trec.gz`` (docs in rank order) and ``qrels.tsv``."""
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "run.trec.gz", "wt", compresslevel=1) as fh:
        for qid, docs in run.items():
            fh.writelines(run_line(qid, d, r, s) + "\n" for r, (d, s) in enumerate(docs.items(), 1))
    (out / "qrels.tsv").write_text(
        "".join(qrels_line(q, d, rel) + "\n" for q, j in qrels.items() for d, rel in j.items())
    )
