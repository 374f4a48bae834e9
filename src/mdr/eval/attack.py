"""Budgeted black-box query attacks on LAReQA retrieval (``eval.attack``, ``experiment=adversarial``).

**Objective.** For an attacked query and a target pool, the gold margin is
``max score of a relevant candidate - max score of a non-relevant candidate``. The gold answer is at
rank 1 exactly when the margin is > 0 (ties count against the gold answer, as in ``mdr.eval.metrics``).

**Greedy search.** At each step every candidate edit of the current query (``mdr.data.edits``: character
operations in the spirit of DeepWordBug, dropping a word, or replacing it by its positional counterpart in
a translation of the same question) is encoded, and the edit that lowers the margin the most is kept.
**Stopping rule:** the margin is <= 0 (the gold answer has left the top 1: success), or the budget of
``max(budgets)`` edits is spent, or no candidate lowers the margin, or there is no candidate. Because the
search is greedy, the query after ``k`` edits is the attack with budget ``k``: one search to the largest
budget scores every budget. A query whose gold answer is not at rank 1 before any edit is not edited.

**Settings.** Each sampled query is attacked three times, once per setting, with the target pool of that
setting: monolingual (the query language's pool), cross-lingual (one other language's pool, drawn per
query from the languages holding its answer) and multilingual (every language's pool; relevant = the
answer in every language). Candidate embeddings are the clean evaluation's.

**Random baseline.** The same number of edits drawn uniformly from the same candidate edits, one path per
query scored in every setting: noise of the same size, to show the search searches.

**Sample and cost.** ``queries_per_lang`` question ids per language, drawn with the seed independently of the
model, so every model is attacked on the same queries (paired tests). The cost is the encoding of at most
``max_candidates`` texts per (query, setting, step); identical texts are encoded once.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from mdr.data.corpus import RetrievalSet
from mdr.data.edits import OPS, Edit, Query, candidate_edits
from mdr.data.names import attacked_name
from mdr.eval.lareqa import Pools
from mdr.eval.metrics import PAD, metrics_from_ranks, relevant_ranks
from mdr.runtime.errors import InputError

ATTACKS = ("greedy",)
SETTINGS = ("mono", "cross", "multi")
METHODS = ("greedy", "random")
ATTACK_METRICS = ("map", "p@1", "mrr@5")

Encode = Callable[[list[str], str], np.ndarray]  # (texts, progress description) -> L2-normalised rows


@dataclass
class AttackSettings:
    """``eval.attack`` (``conf/experiment/adversarial.yaml``)."""

    name: str = "greedy"
    budgets: list[int] = field(default_factory=lambda: [1, 2, 4])
    queries_per_lang: int = 20
    langs: str | list[str] = "all"
    ops: list[str] = field(default_factory=lambda: list(OPS))
    max_candidates: int = 48
    settings: list[str] = field(default_factory=lambda: list(SETTINGS))
    random_baseline: bool = True
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: dict) -> AttackSettings:
        from mdr.eval.settings import typed_from_mapping  # the one reader of mapping-valued eval settings

        settings = typed_from_mapping(cls, dict(cfg), "eval.attack")
        settings.check()
        return settings

    def check(self) -> None:
        if self.name not in ATTACKS:
            raise InputError(f"unknown attack eval.attack.name={self.name!r}; choose one of {ATTACKS}")
        if not self.budgets or any(int(k) != k or k < 0 for k in self.budgets):
            raise InputError(
                f"eval.attack.budgets={self.budgets}: give edit budgets as integers >= 0, e.g. [1, 2, 4]"
            )
        if int(self.queries_per_lang) < 1 or int(self.max_candidates) < 1:
            raise InputError("eval.attack.queries_per_lang and eval.attack.max_candidates must be >= 1")
        bad = [op for op in self.ops if op not in OPS]
        if bad or not self.ops:
            raise InputError(f"eval.attack.ops has unknown operations {bad}; choose from {OPS}")
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad or not self.settings:
            raise InputError(f"eval.attack.settings has unknown settings {bad}; choose from {SETTINGS}")
        self.budgets = sorted({int(k) for k in self.budgets})

    @property
    def max_budget(self) -> int:
        return max(self.budgets)


VARIANT_NAME = re.compile(r"[a-z0-9]+")


def parse_attacks(base: dict | None, variants: dict | None) -> list[tuple[str, AttackSettings]]:
    """``eval.attack`` and its ``eval.attack_variants`` as (variant name, settings): ("", base) first, then each
    variant as the base with its keys changed, so that every attack of a run draws the same queries unless a
    variant says otherwise (the units of a comparison match). Dataset names: ``attacked_name(set, variant)``."""
    if not base:
        if variants:
            raise InputError(
                "eval.attack_variants changes keys of eval.attack, which is not set; set eval.attack too "
                "(conf/experiment/adversarial.yaml)"
            )
        return []
    from mdr.eval.settings import typed_from_mapping

    attacks = [("", AttackSettings.from_config(dict(base)))]
    for name, changes in dict(variants or {}).items():
        where = f"eval.attack_variants.{name}"
        if not VARIANT_NAME.fullmatch(str(name)):
            raise InputError(
                f"{where}: a variant's name is part of a dataset name; use lower-case letters and digits"
            )
        if not isinstance(changes, dict) or not changes:
            raise InputError(f"{where}: give the keys this variant changes, e.g. {{ops: [delete, swap]}}")
        settings = typed_from_mapping(AttackSettings, {**dict(base), **dict(changes)}, where)
        settings.check()
        attacks.append((str(name), settings))
    return attacks


def _rng(seed: int, *key: object) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, key)).encode())])


def sample_queries(rs: RetrievalSet, settings: AttackSettings) -> list[int]:
    """Rows of ``rs.query_*`` to attack: ``queries_per_lang`` per language, seeded, in the set's order."""
    q_langs = np.asarray(rs.query_langs)
    langs = rs.langs if settings.langs == "all" else list(settings.langs)
    unknown = [x for x in langs if x not in set(rs.query_langs)]
    if unknown:
        raise InputError(
            f"eval.attack.langs has languages without queries in {rs.name}: {unknown}; "
            f"choose from {sorted(set(rs.query_langs))} or 'all'"
        )
    rows = []
    for x in langs:
        own = np.flatnonzero(q_langs == x)
        n = int(settings.queries_per_lang)
        if n > len(own):
            raise InputError(
                f"eval.attack.queries_per_lang={n} is larger than the {len(own)} queries of {x!r} in "
                f"{rs.name}; lower it to at most {len(own)}"
            )
        rows += own[
            np.sort(_rng(settings.seed, "sample", rs.name, x).choice(len(own), n, replace=False))
        ].tolist()
    return sorted(rows)


@dataclass
class Target:
    """One (query, setting) to attack: the pool's columns in the multilingual score matrix and the
    relevant positions within the pool."""

    row: int
    setting: str
    pool: str  # a language, or "all"
    columns: slice
    relevant: np.ndarray  # positions in the pool, PAD-padded to the set's number of languages


@dataclass
class AttackPath:
    """The greedy search's course for one target: queries after 0, 1, ... edits and their margins."""

    target: Target
    queries: list[Query]
    margins: list[float]
    edits: list[Edit] = field(default_factory=list)
    stop: str = ""  # success | clean_miss | budget | no_gain | no_candidate

    @property
    def success_edits(self) -> int | None:
        """Edits to success (None: not a success)."""
        return len(self.edits) if self.stop == "success" else None


def make_targets(
    rs: RetrievalSet, pools: Pools, rows: list[int], settings: AttackSettings
) -> tuple[list[Target], int]:
    """The targets of every sampled row and setting; also how many (row, setting) had no relevant candidate
    (skipped and counted, as the LAReQA suite does)."""
    targets, skipped = [], 0
    width = len(pools.langs)
    for row in rows:
        x, qid = rs.query_langs[row], rs.query_ids[row]
        with_answer = [y for y in pools.langs if (y, qid) in rs.answer_of]
        for setting in settings.settings:
            if setting == "multi":
                rel = pools.relevant_in_all(rs, [qid])[0]
                pool = "all"
                columns = slice(0, len(pools.all_idx))
            else:
                if setting == "mono":
                    pool = x if x in with_answer else None
                else:
                    others = [y for y in with_answer if y != x]
                    pool = (
                        others[_rng(settings.seed, "cross", x, qid).integers(len(others))] if others else None
                    )
                if pool is None:
                    skipped += 1
                    continue
                rel = np.full(width, PAD, dtype=np.int64)
                rel[0] = pools.relevant_in(rs, pool, [qid])[0]
                columns = pools.columns(pool)
            if (rel >= 0).any():
                targets.append(Target(row, setting, pool, columns, rel))
            else:
                skipped += 1
    return targets, skipped


def margins(scores: torch.Tensor, relevant: np.ndarray) -> np.ndarray:
    """Gold margin of each row of ``scores`` (n, pool): best relevant minus best non-relevant score."""
    rel = torch.from_numpy(relevant[relevant >= 0])
    best_rel = scores[:, rel].max(1).values
    masked = scores.clone()
    masked[:, rel] = float("-inf")
    return (best_rel - masked.max(1).values).double().numpy()


class EmbeddingCache:
    """Query embeddings by text; the clean queries' rows come from the clean evaluation (so a budget of 0
    reproduces its metrics exactly) and every other text is encoded once."""

    def __init__(self, encode: Encode, clean_texts: list[str], clean_emb: np.ndarray):
        self.encode_fn = encode
        self.rows: dict[str, np.ndarray] = {}
        for text, e in zip(clean_texts, clean_emb):
            self.rows.setdefault(text, e)

    def fill(self, texts: list[str], desc: str) -> int:
        new = list(dict.fromkeys(t for t in texts if t not in self.rows))
        if new:
            for text, e in zip(new, self.encode_fn(new, desc)):
                self.rows[text] = e
        return len(new)

    def __getitem__(self, texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(
            np.ascontiguousarray(np.stack([self.rows[t] for t in texts]), dtype=np.float32)
        )


class QueryAttack:
    """The greedy attack and the random baseline on the sampled queries of one LAReQA set."""

    def __init__(
        self,
        rs: RetrievalSet,
        query_emb: np.ndarray,
        cand_emb: np.ndarray,
        settings: AttackSettings,
        encode: Encode,
        label: str = "",
    ):
        settings.check()
        self.rs, self.settings = rs, settings
        self.label = label or attacked_name(rs.name)  # the dataset name progress lines carry
        self.pools = Pools(rs, torch.from_numpy(np.ascontiguousarray(cand_emb, dtype=np.float32)))
        self.rows = sample_queries(rs, settings)
        self.targets, self.skipped = make_targets(rs, self.pools, self.rows, settings)
        self.cache = EmbeddingCache(encode, rs.query_texts, query_emb)
        self.clean_scores = self._clean_scores(query_emb)
        self.translations = self._translations()
        self.encoded = 0

    def _translations(self) -> dict[int, Query | None]:
        """Per sampled row, the same question in one other language (seeded), for ``translate`` edits."""
        by_id: dict[str, dict[str, str]] = {}
        for qid, lang, text in zip(self.rs.query_ids, self.rs.query_langs, self.rs.query_texts):
            by_id.setdefault(qid, {})[lang] = text
        out = {}
        for row in self.rows:
            x, qid = self.rs.query_langs[row], self.rs.query_ids[row]
            others = sorted(y for y in by_id[qid] if y != x)
            pick = (
                others[_rng(self.settings.seed, "translation", x, qid).integers(len(others))]
                if others
                else None
            )
            out[row] = Query.of(by_id[qid][pick]) if pick else None
        return out

    def scores(self, texts: list[str], target: Target) -> torch.Tensor:
        return self.pool_scores(self.cache[texts], target)

    def pool_scores(self, emb: torch.Tensor, target: Target) -> torch.Tensor:
        """Scores against the target's pool, sliced from the multilingual pool as the LAReQA suite does."""
        return (emb @ self.pools.all_emb.T)[:, target.columns]

    def _clean_scores(self, query_emb: np.ndarray) -> dict[int, torch.Tensor]:
        """Each sampled row's scores against the multilingual pool, computed exactly as the LAReQA suite
        computes them (one product per query language), so that a budget of 0 reproduces its metrics bit
        for bit, ties included."""
        q = torch.from_numpy(np.ascontiguousarray(query_emb, dtype=np.float32))
        q_langs = np.asarray(self.rs.query_langs)
        out = {}
        for x in sorted({self.rs.query_langs[r] for r in self.rows}):
            qi = np.flatnonzero(q_langs == x)
            scores = q[qi] @ self.pools.all_emb.T
            at = {int(r): i for i, r in enumerate(qi)}
            out.update({row: scores[at[row]].view(1, -1) for row in self.rows if row in at})
        return out

    def _candidates(self, path: AttackPath, step: int) -> list[Edit]:
        s = self.settings
        uid = self.rs.query_uids[path.target.row]
        current = path.queries[-1]
        rng = _rng(
            s.seed, "greedy", uid, step, current.text
        )  # same state, same candidates (shared encodings)
        edits = candidate_edits(current, tuple(s.ops), rng, self.translations[path.target.row])
        if len(edits) > s.max_candidates:
            keep = np.sort(rng.choice(len(edits), s.max_candidates, replace=False))
            edits = [edits[i] for i in keep]
        return edits

    def greedy(self, progress: Callable[[str], None] = lambda _: None) -> list[AttackPath]:
        paths = []
        for t in self.targets:
            q = Query.of(self.rs.query_texts[t.row])
            m = float(margins(self.clean_scores[t.row][:, t.columns], t.relevant)[0])
            paths.append(AttackPath(t, [q], [m], stop="clean_miss" if m <= 0 else ""))
        for step in range(self.settings.max_budget):
            active = [p for p in paths if not p.stop]
            if not active:
                break
            proposals = [self._candidates(p, step) for p in active]
            texts = [p.queries[-1].apply(e).text for p, edits in zip(active, proposals) for e in edits]
            self.encoded += self.cache.fill(
                texts, f"{self.label}: step {step + 1}/{self.settings.max_budget}"
            )
            for p, edits in zip(active, proposals):
                self._step(p, edits)
            progress(
                f"{self.label}: step {step + 1}/{self.settings.max_budget}: {len(active)} queries attacked, "
                f"{sum(p.stop == 'success' for p in paths)} successes so far, {self.encoded} texts encoded"
            )
        for p in paths:
            p.stop = p.stop or "budget"
        return paths

    def _step(self, path: AttackPath, edits: list[Edit]) -> None:
        if not edits:
            path.stop = "no_candidate"
            return
        current = path.queries[-1]
        new = [current.apply(e) for e in edits]
        m = margins(self.scores([q.text for q in new], path.target), path.target.relevant)
        best = int(np.argmin(m))  # the first of equal drops: deterministic
        if m[best] >= path.margins[-1]:
            path.stop = "no_gain"
            return
        path.queries.append(new[best])
        path.edits.append(edits[best])
        path.margins.append(float(m[best]))
        if m[best] <= 0:
            path.stop = "success"

    def random_paths(self) -> dict[int, list[Query]]:
        """Per sampled row, the query after 0..max_budget uniformly drawn edits (stops early only when no
        edit applies)."""
        out = {}
        for row in self.rows:
            uid = self.rs.query_uids[row]
            queries = [Query.of(self.rs.query_texts[row])]
            for step in range(self.settings.max_budget):
                rng = _rng(self.settings.seed, "random", uid, step)
                edits = candidate_edits(queries[-1], tuple(self.settings.ops), rng, self.translations[row])
                if not edits:
                    break
                queries.append(queries[-1].apply(edits[int(rng.integers(len(edits)))]))
            out[row] = queries
        texts = [q.text for qs in out.values() for q in qs]
        self.encoded += self.cache.fill(texts, f"{self.label}: random edits")
        return out

    def ranks(self, queries: list[Query | None], targets: list[Target]) -> torch.Tensor:
        """(n, R) sorted relevant ranks of each query in its target's pool (None: the clean query, with the
        clean evaluation's embedding)."""
        out = []
        for q, t in zip(queries, targets):
            s = self.clean_scores[t.row][:, t.columns] if q is None else self.scores([q.text], t)
            out.append(relevant_ranks(s, torch.from_numpy(t.relevant).view(1, -1)))
        return torch.cat(out)


@dataclass
class AttackResult:
    """Per target: its setting, language, pool; per method and budget: the per-query metrics."""

    dataset: str
    settings: AttackSettings
    paths: list[AttackPath]
    random: dict[int, list[Query]]
    uids: list[str]  # per target: the query's uid
    langs: list[str]  # per target: the query language
    # (method, k) -> metric -> (targets,) array; method "clean" has k = 0 only
    metrics: dict[tuple[str, int], dict[str, np.ndarray]]
    skipped: int
    encoded: int
    seen_langs: list[str] | None = None
    translations: dict[int, Query | None] = field(default_factory=dict)  # per row: the ``translate`` source


def run_attack(
    rs: RetrievalSet,
    query_emb: np.ndarray,
    cand_emb: np.ndarray,
    settings: AttackSettings,
    encode: Encode,
    seen_langs: list[str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
    label: str = "",
) -> AttackResult:
    """Attack the sampled queries of ``rs`` and score them in every setting at every budget."""
    attack = QueryAttack(rs, query_emb, cand_emb, settings, encode, label)
    paths = attack.greedy(progress)
    random = attack.random_paths() if settings.random_baseline else {}
    targets = [p.target for p in paths]
    metrics: dict[tuple[str, int], dict[str, np.ndarray]] = {}

    def score(queries: list[Query | None]) -> dict[str, np.ndarray]:
        if not queries:
            return {m: np.zeros(0) for m in ATTACK_METRICS}
        per_query = metrics_from_ranks(attack.ranks(queries, targets))
        return {m: per_query[m].numpy() for m in ATTACK_METRICS}

    def edited(path: list[Query], k: int) -> Query | None:
        return None if k == 0 or len(path) == 1 else path[min(k, len(path) - 1)]

    metrics[("clean", 0)] = score([None] * len(targets))
    for k in sorted({0, *settings.budgets}):
        metrics[("greedy", k)] = score([edited(p.queries, k) for p in paths])
        if random:
            metrics[("random", k)] = score([edited(random[t.row], k) for t in targets])
    return AttackResult(
        dataset=rs.name,
        settings=settings,
        paths=paths,
        random=random,
        uids=[rs.query_uids[t.row] for t in targets],
        langs=[rs.query_langs[t.row] for t in targets],
        metrics=metrics,
        skipped=attack.skipped,
        encoded=attack.encoded,
        seen_langs=seen_langs,
        translations=attack.translations,
    )
