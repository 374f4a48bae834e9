"""``embeddings.npz`` (``eval.save_embeddings=true``): a LAReQA set's query and candidate embeddings with
their ids, so ``eval.py embeddings=...`` can rescore them; checked against the set when read back."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mdr.runtime.errors import InputError


def save_embeddings(path: Path, rs, q_emb: np.ndarray, c_emb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(
        tmp,
        query_emb=q_emb,
        query_ids=np.asarray(rs.query_ids),
        query_langs=np.asarray(rs.query_langs),
        cand_emb=c_emb,
        cand_uids=np.asarray(rs.cand_uids),
    )
    os.replace(tmp, path)


def load_embeddings(path: Path, rs) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings saved by :func:`save_embeddings`, checked against the retrieval set they claim to cover."""
    data = np.load(path)
    missing = {"query_emb", "cand_emb", "query_ids", "cand_uids"} - set(data.files)
    if missing:
        raise InputError(f"{path} lacks arrays {sorted(missing)}; it was not written by eval.save_embeddings")
    q, c = data["query_emb"], data["cand_emb"]
    if (
        q.shape[0] != len(rs.query_ids)
        or c.shape[0] != len(rs.cand_uids)
        or list(data["cand_uids"]) != rs.cand_uids
    ):
        raise InputError(
            f"{path} has {q.shape[0]} query / {c.shape[0]} candidate rows that do not match {rs.name} "
            f"({len(rs.query_ids)} / {len(rs.cand_uids)}); re-run eval with eval.save_embeddings=true"
        )
    return q, c
