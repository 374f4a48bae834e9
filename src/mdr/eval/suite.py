"""Evaluate an encoder on the configured sets and write the run folder's results.

Each dataset's texts are encoded once, then every setting is scored from the cached embeddings
(perturbed queries, ``eval.perturb``, are scored against the same candidate embeddings).
``metrics.json`` is written last and atomically, so its presence means a complete evaluation.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mdr.data.corpus import RetrievalSet
from mdr.data.names import attacked_name, perturbed_name, poisoned_name
from mdr.data.perturb import perturb_set
from mdr.data.qrels import QrelsSet
from mdr.data.tatoeba import TatoebaSet
from mdr.eval.attack import AttackSettings, run_attack
from mdr.eval.ivf_index import ivf_search
from mdr.eval.lareqa import evaluate_lareqa
from mdr.eval.outputs import SCHEMA_VERSION
from mdr.eval.outputs.attack import entry as attack_entry
from mdr.eval.outputs.attack import headline as attack_headline
from mdr.eval.outputs.attack import summarise as summarise_attack
from mdr.eval.outputs.attack import write_attack_outputs
from mdr.eval.outputs.embeddings import save_embeddings
from mdr.eval.outputs.lareqa import headline, write_dataset_reports
from mdr.eval.outputs.per_query import PER_QUERY_FILE, save_lareqa_per_query
from mdr.eval.outputs.poison import entry as poison_entry
from mdr.eval.outputs.poison import headline as poison_headline
from mdr.eval.outputs.poison import write_poison_outputs
from mdr.eval.outputs.tatoeba import write_tatoeba_reports
from mdr.eval.outputs.trec import TrecWriter, write_qrels_outputs
from mdr.eval.plan import EvalPlan, languages_of
from mdr.eval.poison import HotFlip, PoisonSettings, run_poison
from mdr.eval.qrels import evaluate_qrels, score_ranking
from mdr.eval.scoring import as_ranker
from mdr.eval.settings import RUN_KINDS, EvalSettings  # noqa: F401  (configs name mdr.eval.suite.EvalSettings)
from mdr.eval.shards import (
    ShardLayout,
    corpus_fingerprint,
    encode_shards,
    search_shards,
    shard_rank,
    wait_for_shards,
)
from mdr.eval.tatoeba import evaluate_tatoeba
from mdr.eval.tatoeba import headline as tatoeba_headline
from mdr.eval.topk import docid_key
from mdr.modeling.text_encoder import TextEncoder
from mdr.runtime.errors import InputError
from mdr.runtime.files import atomic_write_json
from mdr.runtime.precision import autocast_dtype

log = logging.getLogger(__name__)

SET_RECORD = "set_record.json"  # eval/<set>/: the set's metrics.json entry, written when the set finishes


class EvalRun:
    """One evaluation into ``out_dir``: encodes with ``encoder``, fills the ``metrics.json`` report."""

    def __init__(
        self,
        encoder: TextEncoder | None,
        settings: EvalSettings,
        out_dir: Path,
        seen_langs: list[str] | None,
        encode_cache: dict | None = None,
        resume: bool = False,
    ):
        self.encoder, self.settings, self.out_dir, self.seen_langs = encoder, settings, out_dir, seen_langs
        self.encode_cache, self.resume = encode_cache, resume
        self.ranker = as_ranker(encoder)  # BM25, fusion: scores, no vectors
        dense = getattr(encoder, "dense_model", encoder)  # a fusion encodes with its dense model
        is_torch = isinstance(dense, torch.nn.Module)
        device = next(dense.parameters()).device if is_torch else torch.device("cpu")
        dtype = autocast_dtype(settings.precision, device) if is_torch else None
        self.report: dict = {
            "schema_version": SCHEMA_VERSION,
            "model": getattr(encoder, "name", None),
            "model_path": getattr(encoder, "path", None),
            "encode_precision": str(dtype or torch.float32).removeprefix("torch."),
            "datasets": {},
            "headline": {},
            "timing_s": {},
        }

    def encode(self, texts: list[str], kind: str, desc: str, contexts: list[str] | None = None) -> np.ndarray:
        """The model's embeddings of ``texts``; with an ``encode_cache`` (one model scored as two rows: its own
        and a fusion), each (kind, text, context) is encoded once and reused by the second row. A first call
        encodes its texts exactly as without the cache, so the first row's numbers do not depend on it."""
        cache = self.encode_cache
        if cache is None:
            return self._encode(texts, kind, desc, contexts)
        keys = [
            (kind, t, c) for t, c in zip(texts, contexts if contexts is not None else [None] * len(texts))
        ]
        todo = list(dict.fromkeys(k for k in keys if k not in cache))
        if not any(k in cache for k in keys):  # nothing to reuse: encode as the uncached path does
            cache.update(zip(keys, self._encode(texts, kind, desc, contexts)))
        elif todo:
            with_contexts = [k[2] for k in todo] if contexts is not None else None
            cache.update(zip(todo, self._encode([k[1] for k in todo], kind, desc, with_contexts)))
        return np.stack([cache[k] for k in keys])

    def _encode(self, texts: list[str], kind: str, desc: str, contexts: list[str] | None) -> np.ndarray:
        s = self.settings
        return getattr(self.encoder, "dense_model", self.encoder).encode(
            texts,
            kind,
            contexts=contexts,
            batch_size=s.batch_size,
            show_progress=s.show_progress,
            desc=desc,
            precision=s.precision,
        )

    def encoder_settings(self) -> str:
        """What shapes a passage vector, as a shard manifest records it: a folder encoded with another model,
        prefix, passage length or precision is refused, not mixed in."""
        e = self.encoder
        fields = {"model": getattr(e, "name", type(e).__name__), "prefix": getattr(e, "passage_prefix", None),
                  "max_length": getattr(e, "passage_max_length", None), "precision": self.settings.precision}  # fmt: skip
        return ", ".join(f"{k}={v}" for k, v in fields.items())

    def record(self, name: str, entry: dict, head: dict, encode_s: float, score_s: float) -> None:
        self.report["datasets"][name] = entry
        self.report["headline"][name] = head
        self.report["timing_s"][name] = {"encode": encode_s, "score_and_runs": score_s}
        timing = self.report["timing_s"][name]
        atomic_write_json(self._kept_path(name), {"entry": entry, "headline": head, "timing_s": timing})

    def _kept_path(self, name: str) -> Path:
        return self.out_dir / "eval" / name / SET_RECORD

    def restore(self, name: str) -> bool:
        """On a resumed evaluation (``resume``), a set finished before the stop: its record (and the files it
        wrote beside it) kept, not computed again."""
        path = self._kept_path(name)
        if not self.resume or not path.is_file():
            return False
        kept = json.loads(path.read_text())
        self.report["datasets"][name] = kept["entry"]
        self.report["headline"][name] = kept["headline"]
        self.report["timing_s"][name] = kept["timing_s"]
        log.info("%s: finished before the stop, kept (%s)", name, path)
        return True

    def embed(
        self, rs: RetrievalSet, embeddings: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``rs``'s query and candidate embeddings, without scoring (a kept set whose variants still run)."""
        if embeddings is not None or self.ranker is not None:
            return embeddings if embeddings is not None else (None, None)
        q = self.encode(rs.query_texts, "query", f"{rs.name}: queries")
        c = self.encode(rs.cand_texts, "passage", f"{rs.name}: candidates", contexts=rs.cand_contexts)
        return q, c

    def lareqa(
        self, rs: RetrievalSet, embeddings: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Score one LAReQA set (from ``embeddings`` when given); returns its query and candidate embeddings."""
        t0 = time.perf_counter()
        if self.ranker is not None:
            q = c = None  # its scores come per pool (mdr.eval.scoring), not from vectors kept here
        elif embeddings is None:
            q = self.encode(rs.query_texts, "query", f"{rs.name}: queries")
            c = self.encode(rs.cand_texts, "passage", f"{rs.name}: candidates", contexts=rs.cand_contexts)
        else:
            q, c = embeddings
        t1 = time.perf_counter()
        ds_dir = self.out_dir / "eval" / rs.name
        kinds = RUN_KINDS[self.settings.run_files]
        result = evaluate_lareqa(
            rs,
            q,
            c,
            seen_langs=self.seen_langs,
            run_writer=TrecWriter(ds_dir) if kinds else None,
            run_kinds=kinds,
            run_depth=self.settings.run_depth,
            ranker=self.ranker,
            encode=self.encode,
        )
        t2 = time.perf_counter()
        write_dataset_reports(result, ds_dir)
        save_lareqa_per_query(result, rs, ds_dir / PER_QUERY_FILE)
        if self.settings.save_embeddings:
            many = len(self.settings.datasets) > 1
            save_embeddings(
                self.out_dir / (f"embeddings_{rs.name}.npz" if many else "embeddings.npz"), rs, q, c
            )
        self.record(rs.name, result.to_dict(), headline(result), t1 - t0, t2 - t1)
        if result.skipped["total"]:
            log.info(
                "%s: %d (query, setting) pairs skipped: no relevant candidate in the pool",
                rs.name,
                result.skipped["total"],
            )
        return q, c

    def attack(
        self,
        rs: RetrievalSet,
        query_emb: np.ndarray,
        cand_emb: np.ndarray,
        settings: AttackSettings,
        variant: str = "",
    ) -> None:
        """The budgeted query attack (``eval.attack``, or its variant) on sampled queries of ``rs`` (dataset
        ``<name>~attack`` / ``<name>~attack_<variant>``)."""
        name = attacked_name(rs.name, variant)
        t0 = time.perf_counter()
        result = run_attack(
            rs,
            query_emb,
            cand_emb,
            settings,
            lambda texts, desc: self.encode(texts, "query", desc),
            seen_langs=self.seen_langs,
            progress=log.info,
            label=name,
        )
        summary = summarise_attack(result)
        write_attack_outputs(result, summary, rs.query_texts, self.out_dir / "eval" / name)
        elapsed = time.perf_counter() - t0
        self.record(
            name,
            attack_entry(result, summary),
            attack_headline(summary, settings.budgets),
            elapsed,
            0.0,
        )
        log.info("%s: %d texts encoded in %.0fs", name, result.encoded, elapsed)

    def poison(
        self, rs: RetrievalSet, query_emb: np.ndarray, cand_emb: np.ndarray, settings: PoisonSettings
    ) -> None:
        """White-box corpus poisoning (``eval.poison``) of ``rs``: dataset ``<name>~poison``."""
        name = poisoned_name(rs.name)
        result = run_poison(
            rs, query_emb, cand_emb, self.encoder, settings,
            lambda texts: self.encode(texts, "passage", f"{name}: passages"), progress=log.info, name=name,
        )  # fmt: skip
        write_poison_outputs(result, self.out_dir / "eval" / name)
        self.record(name, poison_entry(result), poison_headline(result), result.seconds, 0.0)
        log.info("%s: %d steps per passage in %.0fs", name, result.steps_run, result.seconds)

    def perturbed(self, rs: RetrievalSet, cand_emb: np.ndarray, kind: str, rate: float) -> None:
        """Score ``rs`` with perturbed queries against its clean candidates (dataset ``<name>~<kind>@<rate>``)."""
        seed = self.settings.perturb_seed
        prs, unchanged = perturb_set(rs, kind, rate, seed)
        t0 = time.perf_counter()
        q = self.encode(prs.query_texts, "query", f"{prs.name}: queries")
        t1 = time.perf_counter()
        result = evaluate_lareqa(prs, q, cand_emb, seen_langs=self.seen_langs)
        write_dataset_reports(result, self.out_dir / "eval" / prs.name)
        entry = result.to_dict()
        entry["perturbation"] = {"kind": kind, "rate": rate, "seed": seed, "queries_unchanged": unchanged}
        self.record(prs.name, entry, headline(result), t1 - t0, time.perf_counter() - t1)
        log.info(
            "%s: %d of %d queries unchanged by the perturbation", prs.name, unchanged, len(prs.query_texts)
        )

    def tatoeba(self, ts: TatoebaSet) -> None:
        """Bitext retrieval: every sentence of every selected language encoded once (both sides with the
        query prefix: a symmetric task), then nearest neighbours within each file pair."""
        t0 = time.perf_counter()
        embeddings = None
        if self.ranker is None:
            texts = [t for lang in ts.languages.values() for t in (*lang.texts, *lang.english)]
            emb = self.encode(texts, "query", f"{ts.name}: sentences ({len(ts.langs)} languages)")
            embeddings, at = {}, 0
            for code, lang in ts.languages.items():
                n = len(lang.texts)
                embeddings[code] = (emb[at : at + n], emb[at + n : at + 2 * n])
                at += 2 * n
        t1 = time.perf_counter()
        result = evaluate_tatoeba(ts, embeddings, self.seen_langs, ranker=self.ranker, encode=self.encode)
        write_tatoeba_reports(result, self.out_dir / "eval" / ts.name)
        if self.settings.save_embeddings:
            log.info("tatoeba: embeddings are not saved (eval.save_embeddings covers LAReQA sets)")
        self.record(ts.name, result.to_dict(), tatoeba_headline(result), t1 - t0, time.perf_counter() - t1)

    def qrels(self, qs: QrelsSet) -> None:
        """Score one corpus-style set (exact search; in shards with ``eval.corpus_shards``), write its TREC run
        and qrels."""
        t0 = time.perf_counter()
        q = self.encode(qs.query_texts, "query", f"{qs.name}: queries")
        if self.settings.corpus_shards:
            result = self.sharded_qrels(qs, q)
            t1 = time.perf_counter()
        else:
            d = self.encode(qs.doc_texts, "passage", f"{qs.name}: corpus")
            t1 = time.perf_counter()
            result = evaluate_qrels(qs, q, d, depth=self.settings.run_depth, search=self.settings.search)
        if "run" in result:  # not on a shard-encoding rank other than 0 (it has no ranking)
            write_qrels_outputs(result.pop("run"), qs.qrels, self.out_dir / "eval" / qs.name)
        head = {"ndcg@10": result["ndcg@10"], "r@100": result["r@100"]}
        self.record(qs.name, result, head, t1 - t0, time.perf_counter() - t1)

    def sharded_qrels(self, qs: QrelsSet, query_emb: np.ndarray) -> dict:
        """Encode this process's corpus shards (resuming: done shards are skipped), then search every shard."""
        spec = self.settings.corpus_shards
        folder = (
            Path(spec.dir) / qs.name if spec.dir else self.out_dir / "eval" / qs.name / "shards"
        )  # one per set
        layout = ShardLayout(
            len(qs.doc_ids),
            spec.shard_size,
            query_emb.shape[1],
            spec.dtype,
            corpus_fingerprint(qs.doc_ids, qs.doc_texts),
            self.encoder_settings(),
        )
        rank, world = shard_rank(spec.rank, spec.world_size, spec.ranks_from)
        encode_shards(
            lambda texts: self.encode(list(texts), "passage", f"{qs.name}: corpus shard"),
            qs.doc_texts,
            folder,
            layout,
            rank,
            world,
        )
        shards = {"dir": str(folder), **asdict(layout), "rank": rank, "world_size": world}
        if rank != 0:  # one rank searches: the others' job ends with their shards
            log.info(
                "%s: rank %d of %d encoded its shards; rank 0 searches once all are done",
                qs.name,
                rank,
                world,
            )
            return {
                "dataset": qs.name,
                "n_docs": len(qs.doc_ids),
                "ndcg@10": None,
                "r@100": None,
                "shards": shards,
            }
        wait_for_shards(folder, layout, spec.wait_s if world > 1 else 0.0)
        k = min(max(self.settings.run_depth, 100), len(qs.doc_ids))
        tie_key = docid_key(qs.doc_ids)  # ties by docid, as in-memory search breaks them
        if self.settings.search == "ivf":  # approximate; its recall against exact search is reported
            top_idx, top_scores, shards["ivf"] = ivf_search(
                query_emb, folder, k, spec.ivf(), spec.nprobe, spec.recall_queries, tie_key=tie_key,
                rerank=spec.rerank,
            )  # fmt: skip
        else:
            top_idx, top_scores = search_shards(query_emb, folder, k, tie_key=tie_key)
        return {**score_ranking(qs, top_idx, top_scores, self.settings.run_depth), "shards": shards}


def ranker_checks(model, plan: EvalPlan) -> None:
    """What a model that scores without vectors (BM25, a fusion) cannot do, refused before any scoring, and
    every language's analyzer resolved (an unknown language fails here, naming it)."""
    s = plan.settings
    asked = [name for name, on in (("eval.perturb", plan.variants), ("eval.attack", plan.attacks), ("eval.poison", plan.poison),
                                   ("eval.qrels_sets", plan.qrels_sets), ("eval.save_embeddings", s.save_embeddings)) if on]  # fmt: skip
    if asked:
        raise InputError(
            f"{', '.join(asked)}: {model.name} ranks without vectors and scores LAReQA and Tatoeba sets only; "
            "drop these settings for this model (the attacks need an encoder: a dense model=...)"
        )
    model.check_languages(languages_of(plan.sets))


def run_eval(
    encoder: TextEncoder | None,
    plan: EvalPlan,
    out_dir: str | Path,
    seen_langs: list[str] | None = None,
    extra: dict | None = None,
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    encode_cache: dict | None = None,
    resume: bool = False,
) -> dict:
    """Encode, score and report every set of the plan (read once, :class:`mdr.eval.plan.EvalPlan`); returns
    the ``metrics.json`` content. ``encode_cache``: shared by the runs that score one model twice (see
    :meth:`EvalRun.encode`). ``resume``: the same model's evaluation stopped part-way in ``out_dir``; each set
    that finished then (its ``eval/<set>/set_record.json``) is kept, the others computed.

    ``embeddings`` maps a dataset name to precomputed (query, candidate) embeddings, scored without
    encoding (``encoder`` may then be None). ``extra`` is merged into the report (training statistics,
    the resolved config).
    """
    if plan.poison is not None and encoder is not None and as_ranker(encoder) is None:
        HotFlip.check_encoder(encoder)  # a model without gradients fails here, before any scoring
    if (plan.variants or plan.attacks or plan.poison) and encoder is None:
        raise InputError(
            "eval.perturb, eval.attack and eval.poison need a model to encode queries or passages; they cannot rescore embeddings="
        )
    if encoder is None and any(isinstance(s, TatoebaSet) for s in plan.sets):
        raise InputError(
            "tatoeba needs a model to encode its sentences; saved embeddings cover LAReQA sets only"
        )
    ranker = as_ranker(encoder)
    if ranker is not None:
        ranker_checks(ranker, plan)
    run = EvalRun(encoder, plan.settings, Path(out_dir), seen_langs, encode_cache, resume)
    if run.ranker is not None:
        run.report["ranker"] = run.ranker.record(languages_of(plan.sets))
    for rs in plan.sets:
        if isinstance(rs, TatoebaSet):
            if not run.restore(rs.name):
                run.tatoeba(rs)
            continue
        derived = [perturbed_name(rs.name, kind, rate) for kind, rate in plan.variants]
        derived += [attacked_name(rs.name, variant) for variant, _ in plan.attacks]
        derived += [poisoned_name(rs.name)] if plan.poison is not None else []
        if all([run.restore(rs.name), *(run.restore(name) for name in derived)]):
            continue  # a resumed evaluation: this set and everything made from it finished before the stop
        if rs.name in run.report["datasets"]:  # kept; its embeddings are needed by a set made from it
            query_emb, cand_emb = run.embed(rs, (embeddings or {}).get(rs.name))
        else:
            query_emb, cand_emb = run.lareqa(rs, (embeddings or {}).get(rs.name))
        for (kind, rate), name in zip(plan.variants, derived):
            if name not in run.report["datasets"]:
                run.perturbed(rs, cand_emb, kind, rate)
        for variant, attack in plan.attacks:
            if attacked_name(rs.name, variant) not in run.report["datasets"]:
                run.attack(rs, query_emb, cand_emb, attack, variant)
        if plan.poison is not None and poisoned_name(rs.name) not in run.report["datasets"]:
            run.poison(rs, query_emb, cand_emb, plan.poison)
    for qs in plan.qrels_sets:
        if not run.restore(qs.name):
            run.qrels(qs)
    run.report.update(extra or {})
    atomic_write_json(run.out_dir / "metrics.json", run.report)
    return run.report


def format_headline(report: dict) -> str:
    lines = ["dataset      mono mAP  cross mAP  multi mAP  rank dist"]
    for name, h in report["headline"].items():
        if "accuracy" in h:
            lines.append(
                f"{name:<12} accuracy {h['accuracy']:.4f} (XTREME-36 {h.get('accuracy_xtreme36', float('nan')):.4f}, "
                f"low-resource {h.get('accuracy_low_resource', float('nan')):.4f})"
            )
        elif any("_success@" in k for k in h):
            by_setting: dict[str, list[str]] = {}
            for key, v in h.items():
                setting, k = key.split("_success@")
                by_setting.setdefault(setting, []).append(f"k={k} {'-' if v is None else f'{v:.3f}'}")
            lines.append(
                f"{name:<12} greedy attack success rate: "
                + "; ".join(f"{s} {', '.join(v)}" for s, v in by_setting.items())
            )
        elif "mono_map" in h:
            lines.append(
                f"{name:<12} {h['mono_map']:.4f}    {h['cross_map']:.4f}     {h['multi_map']:.4f}     "
                f"{h['rank_distance']:.1f}"
            )
        else:
            if h["ndcg@10"] is None:  # a shard-encoding rank other than 0, or no judged query
                lines.append(f"{name:<12} nDCG@10 -  R@100 -  (not searched here)")
            else:
                lines.append(f"{name:<12} nDCG@10 {h['ndcg@10']:.4f}  R@100 {h['r@100']:.4f}")
    return "\n".join(lines)
