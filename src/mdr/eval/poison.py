"""White-box corpus poisoning of a dense retriever (``eval.poison``), after Zhong et al., EMNLP 2023
("Poisoning Retrieval Corpora by Injecting Adversarial Passages"), measured across languages.

**What the attacker knows.** The model's weights and tokenizer (gradients), and a set of questions of its
own; not the evaluated questions. Attacker and evaluated queries are disjoint XQuAD-R question ids, all
language versions of a question on the same side, drawn once from ``split_seed`` (:func:`split_ids`) and
stored in the run folder.

**The attack.** For each attacker language, the attacker queries (their clean embeddings) are split by
k-means into ``passages`` groups, and one passage of ``length`` tokens is optimised per group to maximise its
mean similarity with the group (a dot product with the group's mean embedding). Each step takes one random
position of every passage, scores every vocabulary token there by the gradient of that objective with
respect to the position's input embedding (HotFlip), evaluates the ``candidates`` best-scored tokens with a
real forward pass, and keeps the best of them only when it raises the similarity (so the objective never
decreases). The passage prefix the encoder adds (``passage: ``) and the special tokens are never flipped.

**Success** is measured on each passage's text re-tokenised as the evaluator reads it (``encode`` of the
decoded text), on the evaluated queries of every language: the share whose top 1 / 10 / 20 holds at least one
adversarial passage (ties go to the clean candidate), in the query language's own pool (mono) and in every
language's pool (multi). Passages optimised on one language and measured on each language's queries give the
transfer matrix. With 0 passages the evaluated queries' ranks are the clean ones exactly.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from mdr.data.corpus import RetrievalSet
from mdr.eval.metrics import PAD, metrics_from_ranks, relevant_ranks
from mdr.runtime.errors import InputError

TOP_K = (1, 10, 20)
POOLS = ("mono", "multi")


@dataclass
class PoisonSettings:
    """``eval.poison``: HotFlip passages against attacker queries of ``attacker_langs``."""

    passages: int = 5
    length: int = 50
    steps: int = 300
    candidates: int = 32
    attacker_langs: list[str] = field(default_factory=lambda: ["en", "th"])
    attacker_share: float = 0.5
    split_seed: int = 0
    seed: int = 0
    curve_every: int = 50

    @classmethod
    def from_config(cls, cfg: dict) -> PoisonSettings:
        from mdr.eval.settings import typed_from_mapping

        settings = typed_from_mapping(cls, dict(cfg), "eval.poison")
        settings.check()
        return settings

    def check(self) -> None:
        for key, least in (
            ("passages", 0),
            ("length", 1),
            ("steps", 0),
            ("candidates", 1),
            ("curve_every", 1),
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InputError(
                    f"eval.poison.{key}={value!r}: give an integer >= {least} "
                    "(as in Zhong et al.: passages 5-50, length 50, a few hundred steps)"
                )
        if not 0 < float(self.attacker_share) < 1:
            raise InputError(
                f"eval.poison.attacker_share={self.attacker_share}: a share strictly between 0 and 1"
            )
        if isinstance(self.attacker_langs, str) or not self.attacker_langs:
            raise InputError(
                f"eval.poison.attacker_langs={self.attacker_langs!r}: a list of languages, e.g. [en, th]"
            )

    def check_set(self, rs: RetrievalSet) -> None:
        """Before any model loads: the attacker languages are the set's, and every k-means group can be filled."""
        unknown = [x for x in self.attacker_langs if x not in set(rs.query_langs)]
        if unknown:
            raise InputError(
                f"eval.poison.attacker_langs has languages without queries in {rs.name}: {unknown}; "
                f"choose from {sorted(set(rs.query_langs))}"
            )
        attacker, _ = split_ids(rs, self)
        if self.passages > len(attacker):
            raise InputError(
                f"eval.poison.passages={self.passages} is more than the {len(attacker)} attacker questions of "
                f"{rs.name}; lower it or raise eval.poison.attacker_share"
            )


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


def split_ids(rs: RetrievalSet, settings: PoisonSettings) -> tuple[list[str], list[str]]:
    """(attacker question ids, evaluated question ids): disjoint, every language version of a question on
    one side, drawn from ``split_seed`` alone (the same split for every model)."""
    ids = sorted(set(rs.query_ids))
    order = _rng(settings.split_seed, "poison-split", rs.name).permutation(len(ids))
    n_attacker = int(round(float(settings.attacker_share) * len(ids)))
    attacker = sorted(ids[i] for i in order[:n_attacker])
    return attacker, sorted(ids[i] for i in order[n_attacker:])


@dataclass
class PoisonResult:
    name: str
    settings: PoisonSettings
    attacker_ids: list[str]
    evaluated_ids: list[str]
    passages: dict[str, list[dict]]  # attacker language -> [{text, token_ids, retokenized_same, similarity}]
    curve: dict[str, list[dict]]  # attacker language -> [{step, similarity, success@k per pool}]
    success: dict[
        str, dict[str, np.ndarray]
    ]  # attacker language -> pool -> (evaluated rows, len(TOP_K)) bools
    gold_ranks: dict[str, dict[str, np.ndarray]]  # attacker language -> pool -> (rows, R) ranks, poisoned
    clean_ranks: dict[str, np.ndarray]  # pool -> (rows, R) ranks without passages
    rows: np.ndarray  # evaluated query rows of rs.query_*
    langs: list[str]  # the query language of each evaluated row
    seconds: float = 0.0
    steps_run: int = 0


class HotFlip:
    """Token-level passage optimisation for one :class:`mdr.modeling.encoder.DualEncoder`."""

    @staticmethod
    def check_encoder(encoder) -> None:
        if not callable(getattr(encoder, "forward_embeds", None)):
            raise InputError(
                f"eval.poison needs a differentiable encoder (gradients with respect to its input embeddings); "
                f"{getattr(encoder, 'name', type(encoder).__name__)} has none: poison a trained or off-the-shelf "
                "transformer model=..."
            )

    def __init__(self, encoder, length: int, candidates: int):
        self.check_encoder(encoder)
        self.enc, self.length, self.candidates = encoder, length, candidates
        tok = encoder.tokenizer
        self.prefix = (
            tok(encoder.passage_prefix, add_special_tokens=False)["input_ids"]
            if encoder.passage_prefix
            else []
        )
        probe = "retrieval"  # where the tokenizer puts its special tokens around a text
        bare, wrapped = tok(probe, add_special_tokens=False)["input_ids"], tok(probe)["input_ids"]
        self.front = next((i for i in range(len(wrapped)) if wrapped[i : i + len(bare)] == bare), None)
        if self.front is None:
            raise InputError(
                f"eval.poison: the tokenizer of {encoder.name} does not wrap text as [bos] text [eos]"
            )
        self.head, self.tail = wrapped[: self.front], wrapped[self.front + len(bare) :]
        self.start = self.front + len(self.prefix)  # first flippable position
        weights = encoder.model.get_input_embeddings().weight
        self.embeddings = weights.detach()
        banned = torch.zeros(weights.shape[0], dtype=torch.bool)
        banned[[i for i in tok.all_special_ids if i < weights.shape[0]]] = True
        self.allowed, self.banned = (~banned).nonzero().flatten(), banned.to(weights.device)
        self.device = weights.device

    def initial(self, rng: np.random.Generator) -> torch.Tensor:
        return self.allowed[torch.from_numpy(rng.integers(len(self.allowed), size=self.length))]

    def full_ids(self, tokens: torch.Tensor) -> torch.Tensor:
        """(n, length) passage tokens -> (n, total) model input ids with the prefix and special tokens."""
        n = tokens.shape[0]
        fixed = lambda ids: torch.tensor(ids, dtype=torch.long).expand(n, len(ids))  # noqa: E731
        return torch.cat([fixed(self.head), fixed(self.prefix), tokens, fixed(self.tail)], 1).to(self.device)

    @torch.no_grad()
    def similarity(self, tokens: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ids = self.full_ids(tokens)
        return self.enc(ids, torch.ones_like(ids)).float() @ target

    def step(
        self, tokens: torch.Tensor, target: torch.Tensor, position: int, current: float
    ) -> tuple[torch.Tensor, float]:
        """One HotFlip step at ``position`` of one passage; the tokens and similarity after it."""
        ids = self.full_ids(tokens.view(1, -1))
        embeds = self.embeddings[ids].clone().requires_grad_(True)
        with torch.enable_grad():
            sim = self.enc.forward_embeds(embeds, torch.ones_like(ids)).float() @ target
            (grad,) = torch.autograd.grad(sim.sum(), embeds)
        scores = self.embeddings @ grad[0, self.start + position].to(self.embeddings.dtype)
        scores[self.banned] = -torch.inf  # special tokens are never candidates
        best = scores.topk(min(self.candidates, len(self.allowed))).indices.cpu()
        trials = tokens.view(1, -1).repeat(len(best), 1)
        trials[:, position] = best
        sims = self.similarity(trials, target)
        i = int(sims.argmax())
        if float(sims[i]) > current:
            return trials[i], float(sims[i])
        return tokens, current


def kmeans_groups(emb: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A group label per attacker query (faiss k-means, seeded); one group when k = 1."""
    if k == 1:
        return np.zeros(len(emb), dtype=np.int64)
    import faiss

    km = faiss.Kmeans(emb.shape[1], k, niter=25, seed=int(seed), verbose=False, min_points_per_centroid=1)
    km.train(np.ascontiguousarray(emb, dtype=np.float32))
    return km.index.search(np.ascontiguousarray(emb, dtype=np.float32), 1)[1][:, 0]


def evaluated_ranks(
    rs: RetrievalSet, q: torch.Tensor, c: torch.Tensor, rows: np.ndarray, adv: torch.Tensor
) -> dict:
    """Per pool: gold ranks of the evaluated queries with the adversarial passages in the pool (ties count
    against the gold answer, as in ``mdr.eval.metrics``), and the best adversarial passage's rank (ties go to
    the clean candidate)."""
    q_langs = np.asarray(rs.query_langs)
    cand_langs = np.asarray(rs.cand_langs)
    out = {}
    for pool in POOLS:
        gold, adv_rank = [], []
        for x in sorted(set(q_langs[rows])):
            mine = rows[q_langs[rows] == x]
            langs = [x] if pool == "mono" else list(rs.langs)
            cols = np.concatenate([np.flatnonzero(cand_langs == y) for y in langs])
            where = {int(g): j for j, g in enumerate(cols)}
            rel = [[where.get(rs.answer_of.get((y, rs.query_ids[r]), -1), PAD) for y in langs] for r in mine]
            scores = torch.cat([q[mine] @ c[cols].T, q[mine] @ adv.T], 1)
            rel_t = torch.tensor(rel, dtype=torch.long)
            gold.append((mine, relevant_ranks(scores, rel_t)))
            best_adv = (
                (q[mine] @ adv.T).max(1).values if adv.shape[0] else torch.full((len(mine),), -torch.inf)
            )
            adv_rank.append(1 + (q[mine] @ c[cols].T >= best_adv[:, None]).sum(1))
        order = np.argsort(np.concatenate([m for m, _ in gold]), kind="stable")
        width = max(g.shape[1] for _, g in gold)
        padded = [torch.nn.functional.pad(g, (0, width - g.shape[1]), value=float("inf")) for _, g in gold]
        out[pool] = (torch.cat(padded)[order], torch.cat(adv_rank)[order])
    return out


def run_poison(
    rs: RetrievalSet,
    query_emb: np.ndarray,
    cand_emb: np.ndarray,
    encoder,
    settings: PoisonSettings,
    encode_passages: Callable[[list[str]], np.ndarray],
    progress: Callable[[str], None] = print,
    name: str = "",
) -> PoisonResult:
    """Optimise the passages of every attacker language and measure them on the evaluated queries."""
    flip = HotFlip(encoder, settings.length, settings.candidates)
    was_training = encoder.training
    encoder.eval()  # no dropout: the objective must be a function of the tokens alone
    try:
        return _run(rs, query_emb, cand_emb, encoder, flip, settings, encode_passages, progress, name)
    finally:
        encoder.train(was_training)


def _run(rs, query_emb, cand_emb, encoder, flip, settings, encode_passages, progress, name) -> PoisonResult:
    t0 = time.perf_counter()
    attacker_ids, evaluated_ids = split_ids(rs, settings)
    attacker, evaluated = set(attacker_ids), set(evaluated_ids)
    rows = np.array([i for i, qid in enumerate(rs.query_ids) if qid in evaluated])
    q = torch.from_numpy(np.ascontiguousarray(query_emb, dtype=np.float32))
    c = torch.from_numpy(np.ascontiguousarray(cand_emb, dtype=np.float32))
    none = torch.zeros(0, q.shape[1])
    clean = {pool: ranks for pool, (ranks, _) in evaluated_ranks(rs, q, c, rows, none).items()}
    result = PoisonResult(name, settings, attacker_ids, evaluated_ids, {}, {}, {}, {}, clean, rows,
                          [rs.query_langs[r] for r in rows])  # fmt: skip

    def measure(texts: list[str]) -> tuple[dict, torch.Tensor]:
        adv = (
            torch.from_numpy(np.ascontiguousarray(encode_passages(texts), dtype=np.float32))
            if texts
            else none
        )
        return evaluated_ranks(rs, q, c, rows, adv), adv

    def success(ranked: dict) -> dict[str, np.ndarray]:
        return {
            pool: np.stack([(adv_rank <= k).numpy() for k in TOP_K], 1)
            for pool, (_, adv_rank) in ranked.items()
        }

    for lang in settings.attacker_langs:
        own = [
            i for i, (qid, x) in enumerate(zip(rs.query_ids, rs.query_langs)) if x == lang and qid in attacker
        ]
        groups = kmeans_groups(query_emb[own], settings.passages, settings.seed) if settings.passages else []
        targets = [q[np.asarray(own)[groups == g]].mean(0) for g in range(settings.passages)]
        rng = _rng(settings.seed, "poison", rs.name, lang)
        tokens = [flip.initial(rng) for _ in targets]
        sims = [float(flip.similarity(t.view(1, -1), tg)[0]) for t, tg in zip(tokens, targets)]
        curve = []
        for step in range(settings.steps + 1):
            if step % settings.curve_every == 0 or step == settings.steps:
                texts = [encoder.tokenizer.decode(t.tolist()) for t in tokens]
                ranked, _ = measure(texts)
                point = {"step": step, "similarity": float(np.mean(sims)) if sims else None}
                for pool, hits in success(ranked).items():
                    point.update(
                        {f"{pool}_success@{k}": float(hits[:, j].mean()) for j, k in enumerate(TOP_K)}
                    )
                curve.append(point)
                progress(f"{name}: {lang} step {step}/{settings.steps}, attacker similarity {point['similarity']}, "
                         f"multi success@20 {point.get('multi_success@20')}")  # fmt: skip
            if step == settings.steps:
                break
            for i, target in enumerate(targets):
                position = int(rng.integers(settings.length))
                tokens[i], sims[i] = flip.step(tokens[i], target, position, sims[i])
        texts = [encoder.tokenizer.decode(t.tolist()) for t in tokens]
        ranked, adv = measure(texts)
        retok = [
            encoder.tokenizer(encoder.passage_prefix + t, add_special_tokens=False)["input_ids"]
            for t in texts
        ]
        result.passages[lang] = [
            {"text": text, "token_ids": t.tolist(), "retokenized_same": r[len(flip.prefix):] == t.tolist(),
             "similarity_optimised": s, "similarity_as_read": float(adv[i] @ targets[i])}
            for i, (text, t, r, s) in enumerate(zip(texts, tokens, retok, sims))
        ]  # fmt: skip
        result.curve[lang] = curve
        result.success[lang] = success(ranked)
        result.gold_ranks[lang] = {pool: ranks for pool, (ranks, _) in ranked.items()}
    result.seconds, result.steps_run = time.perf_counter() - t0, settings.steps
    return result


def poisoned_metrics(ranks: torch.Tensor) -> dict[str, float]:
    """Mean mAP / P@1 / MRR@5 of the evaluated queries (the clean ones with 0 passages)."""
    m = metrics_from_ranks(ranks.double())
    return {key: float(m[key].mean()) for key in ("map", "p@1", "mrr@5")}
