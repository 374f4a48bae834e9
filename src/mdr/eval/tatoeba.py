"""Tatoeba bitext retrieval (LASER / XTREME protocol) from cached sentence embeddings.

For each language L and each of its sentences, the nearest sentence by cosine among the *other* side of
the same file pair; it is correct when that is the aligned line. Accuracy is reported in both
directions (L->eng, eng->L) and averaged. With one relevant sentence per query, AP equals the
reciprocal rank over the whole file, so mAP, P@1 (= accuracy) and MRR@5 come from the same exact ranks
as the LAReQA suite, with its pessimistic tie rule (``mdr.eval.metrics``). Group summaries are macro
averages over the group's languages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mdr.data.tatoeba import TatoebaSet
from mdr.eval.metrics import metrics_from_ranks, relevant_ranks
from mdr.runtime.errors import InputError

DIRECTIONS = ("to_eng", "from_eng")
LANG_METRICS = ("accuracy", "accuracy_to_eng", "accuracy_from_eng", "map", "mrr@5")


@dataclass
class TatoebaResult:
    dataset: str
    langs: list[str]
    per_language: dict[str, dict] = field(default_factory=dict)
    ranks: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # "<direction>/<lang>" -> (n,) rank of the aligned line
    summary: dict = field(default_factory=dict)
    seen_langs: list[str] | None = None

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "kind": "bitext",
            "languages": self.langs,
            "seen_languages": self.seen_langs,
            "n_pairs": int(sum(p["n_pairs"] for p in self.per_language.values())),
            "summary": self.summary,
            "per_language": self.per_language,
        }


def score_language(src_emb: np.ndarray, eng_emb: np.ndarray) -> dict[str, np.ndarray]:
    """Rank of the aligned line for every sentence, both directions: ``{"to_eng": (n,), "from_eng": (n,)}``."""
    if src_emb.shape != eng_emb.shape:
        raise InputError(f"a Tatoeba pair needs aligned embeddings, got {src_emb.shape} and {eng_emb.shape}")
    return ranks_from_scores(*pair_scores(src_emb, eng_emb))


def ranks_from_scores(to_eng: torch.Tensor, from_eng: torch.Tensor) -> dict[str, np.ndarray]:
    """The aligned line's rank per sentence from (n, n) scores of each direction (row i: sentence i's query)."""
    aligned = torch.arange(to_eng.shape[0]).view(-1, 1)
    return {
        "to_eng": relevant_ranks(to_eng, aligned)[:, 0].numpy(),
        "from_eng": relevant_ranks(from_eng, aligned)[:, 0].numpy(),
    }


def pair_scores(src_emb: np.ndarray, eng_emb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine scores of a file pair, each direction (row i: sentence i's query)."""
    x = torch.nn.functional.normalize(
        torch.from_numpy(np.ascontiguousarray(src_emb, dtype=np.float32)), dim=1
    )
    e = torch.nn.functional.normalize(
        torch.from_numpy(np.ascontiguousarray(eng_emb, dtype=np.float32)), dim=1
    )
    scores = x @ e.T
    return scores, scores.T.contiguous()


def language_row(ranks: dict[str, np.ndarray]) -> dict:
    per_dir = {d: metrics_from_ranks(torch.from_numpy(ranks[d]).view(-1, 1)) for d in DIRECTIONS}
    to_eng, from_eng = float(per_dir["to_eng"]["p@1"].mean()), float(per_dir["from_eng"]["p@1"].mean())
    return {
        "n_pairs": int(len(ranks["to_eng"])),
        "accuracy": (to_eng + from_eng) / 2,
        "accuracy_to_eng": to_eng,
        "accuracy_from_eng": from_eng,
        "map": float(np.mean([per_dir[d]["map"].mean() for d in DIRECTIONS])),
        "mrr@5": float(np.mean([per_dir[d]["mrr@5"].mean() for d in DIRECTIONS])),
    }


def evaluate_tatoeba(
    ts: TatoebaSet,
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]] | None,
    seen_langs: list[str] | None = None,
    ranker=None,
    encode=None,
) -> TatoebaResult:
    """Score every language of ``ts``; ``embeddings[lang]`` = (its sentences, their English side), or, with
    ``ranker`` (a model that scores without vectors: ``mdr.eval.scoring.Ranker``), its ranks per file pair."""
    result = TatoebaResult(ts.name, ts.langs, seen_langs=seen_langs)
    if ranker is not None:
        ranker.check_languages([*ts.langs, "eng"])  # an unknown language fails before any scoring
    for lang in ts.langs:
        if ranker is not None:
            ranks = ranker.bitext_ranks(ts, lang, encode)
        else:
            ranks = score_language(*embeddings[lang])
        for d in DIRECTIONS:
            result.ranks[f"{d}/{lang}"] = ranks[d].astype(np.int32)
        result.per_language[lang] = language_row(ranks)
        result.per_language[lang]["low_resource"] = ts.languages[lang].low_resource
    result.summary = summarise(result.per_language, ts.groups(seen_langs))
    return result


def summarise(per_language: dict[str, dict], groups: dict[str, list[str]]) -> dict:
    """Macro averages per group; ``seen`` / ``unseen`` hold the same groups restricted to their languages."""

    def rows(langs: list[str]) -> dict:
        base = {g: groups[g] for g in ("all", "xtreme36", "low_resource") if g in groups}
        out = {}
        for g, members in base.items():
            chosen = [x for x in members if x in langs]
            if chosen:
                out[g] = {m: float(np.mean([per_language[x][m] for x in chosen])) for m in LANG_METRICS}
                out[g]["n_languages"] = len(chosen)
        return out

    summary = rows(groups["all"])
    for split in ("seen", "unseen"):
        if split in groups:
            summary[split] = rows(groups[split])
    return summary


def headline(result: TatoebaResult) -> dict:
    s = result.summary
    return {
        f"accuracy_{g}" if g != "all" else "accuracy": s[g]["accuracy"]
        for g in ("all", "xtreme36", "low_resource")
        if g in s
    }
