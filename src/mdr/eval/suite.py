"""Evaluate an encoder on a list of LAReQA datasets and write the run folder's results.

Each dataset's texts are encoded once, then every setting is scored from the cached embeddings.
``metrics.json`` is written last and atomically, so its presence means a complete evaluation.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mdr.data.corpus import RetrievalSet
from mdr.data.lareqa import DATASET_DIRS, read_lareqa, retrieval_set
from mdr.eval.lareqa_eval import evaluate_lareqa
from mdr.eval.outputs import (
    SCHEMA_VERSION,
    TrecWriter,
    atomic_write_json,
    headline,
    save_embeddings,
    write_dataset_reports,
)

log = logging.getLogger(__name__)

RUN_KINDS = {
    "all": ("mono", "cross", "multi"),
    "mono_multi": ("mono", "multi"),
    "multi": ("multi",),
    "none": (),
}


def load_eval_set(name: str, data_dir: str | Path, langs: list[str] | None = None) -> RetrievalSet:
    if name not in DATASET_DIRS:
        raise ValueError(f"unknown evaluation dataset {name!r}; choose from {sorted(DATASET_DIRS)}")
    return retrieval_set(read_lareqa(data_dir, name, langs), name)


def encode_texts(
    encoder,
    texts,
    kind: str,
    desc: str,
    batch_size: int = 64,
    show_progress: bool = True,
    precision: str = "auto",
    contexts=None,
):
    return encoder.encode(
        texts,
        kind,
        contexts=contexts,
        batch_size=batch_size,
        show_progress=show_progress,
        desc=desc,
        precision=precision,
    )


def encode_set(
    encoder, rs: RetrievalSet, batch_size: int = 64, show_progress: bool = True, precision: str = "auto"
):
    q = encode_texts(
        encoder, rs.query_texts, "query", f"{rs.name}: queries", batch_size, show_progress, precision
    )
    c = encode_texts(
        encoder,
        rs.cand_texts,
        "passage",
        f"{rs.name}: candidates",
        batch_size,
        show_progress,
        precision,
        contexts=rs.cand_contexts,
    )
    return q, c


def run_eval(
    encoder,
    datasets: list[str],
    data_dir: str | Path,
    out_dir: str | Path,
    seen_langs: list[str] | None = None,
    batch_size: int = 64,
    run_files: str = "all",
    run_depth: int = 100,
    save_embeddings_flag: bool = False,
    show_progress: bool = True,
    precision: str = "auto",
    extra: dict | None = None,
    qrels_sets: list[dict] | None = None,
    search: str = "torch",
    embeddings: dict[str, tuple] | None = None,
    perturb: list[dict] | None = None,
    perturb_seed: int = 0,
) -> dict:
    """Encode, score and report every dataset; returns the ``metrics.json`` content.

    ``embeddings`` maps a dataset name to precomputed (query, candidate) embeddings, scored without
    encoding (``encoder`` may then be None). ``perturb`` (``[{kind, rate}]``, see ``mdr.perturb``) also
    scores each LAReQA dataset with perturbed queries against the same candidate embeddings, reported as
    the dataset ``<name>~<kind>@<rate>``.
    """
    from mdr.perturb import check_perturbations

    if run_files not in RUN_KINDS:
        raise ValueError(f"eval.run_files={run_files!r}; choose one of {sorted(RUN_KINDS)}")
    variants = check_perturbations(list(perturb or []))
    if variants and encoder is None:
        raise ValueError(
            "eval.perturb needs a model to encode the perturbed queries; it cannot rescore embeddings="
        )
    out_dir = Path(out_dir)
    sets = [load_eval_set(name, data_dir) for name in datasets]  # fail on bad data before any encoding
    embeddings = embeddings or {}
    import torch

    from mdr.encoder import resolve_precision

    is_torch = isinstance(encoder, torch.nn.Module)
    device = next(encoder.parameters()).device if is_torch else torch.device("cpu")
    dtype = resolve_precision(precision, device) if is_torch else None
    report: dict = {
        "schema_version": SCHEMA_VERSION,
        "model": getattr(encoder, "name", None),
        "model_path": getattr(encoder, "path", None),
        "encode_precision": str(dtype or torch.float32).removeprefix("torch."),
        "datasets": {},
        "headline": {},
        "timing_s": {},
    }
    for rs in sets:
        t0 = time.perf_counter()
        if rs.name in embeddings:
            q, c = embeddings[rs.name]
        else:
            q, c = encode_set(encoder, rs, batch_size, show_progress, precision)
        t1 = time.perf_counter()
        ds_dir = out_dir / "eval" / rs.name
        writer = TrecWriter(ds_dir) if RUN_KINDS[run_files] else None
        result = evaluate_lareqa(
            rs,
            q,
            c,
            seen_langs=seen_langs,
            run_writer=writer,
            run_kinds=RUN_KINDS[run_files],
            run_depth=run_depth,
        )
        t2 = time.perf_counter()
        write_dataset_reports(result, ds_dir)
        if save_embeddings_flag:
            save_embeddings(
                out_dir / ("embeddings.npz" if len(sets) == 1 else f"embeddings_{rs.name}.npz"), rs, q, c
            )
        report["datasets"][rs.name] = result.to_dict()
        report["headline"][rs.name] = headline(result)
        report["timing_s"][rs.name] = {"encode": t1 - t0, "score_and_runs": t2 - t1}
        if result.skipped["total"]:
            log.info(
                "%s: %d (query, setting) pairs skipped: no relevant candidate in the pool",
                rs.name,
                result.skipped["total"],
            )
        for kind, rate in variants:
            _score_perturbed(
                encoder,
                rs,
                c,
                kind,
                rate,
                perturb_seed,
                seen_langs,
                batch_size,
                show_progress,
                precision,
                out_dir,
                report,
            )
    for spec in qrels_sets or []:
        from mdr.eval.qrels_eval import evaluate_qrels, load_qrels_spec

        qs = load_qrels_spec(dict(spec))
        t0 = time.perf_counter()
        q = encode_texts(
            encoder, qs.query_texts, "query", f"{qs.name}: queries", batch_size, show_progress, precision
        )
        d = encode_texts(
            encoder, qs.doc_texts, "passage", f"{qs.name}: corpus", batch_size, show_progress, precision
        )
        t1 = time.perf_counter()
        result = evaluate_qrels(qs, q, d, depth=run_depth, search=search)
        _write_qrels_outputs(result, qs, out_dir / "eval" / qs.name)
        result.pop("run")
        report["datasets"][qs.name] = result
        report["headline"][qs.name] = {"ndcg@10": result["ndcg@10"], "r@100": result["r@100"]}
        report["timing_s"][qs.name] = {"encode": t1 - t0, "score_and_runs": time.perf_counter() - t1}
    if extra:
        report.update(extra)
    atomic_write_json(out_dir / "metrics.json", report)
    return report


def _score_perturbed(
    encoder,
    rs,
    cand_emb,
    kind,
    rate,
    seed,
    seen_langs,
    batch_size,
    show_progress,
    precision,
    out_dir: Path,
    report: dict,
) -> None:
    from mdr.perturb import perturb_set

    prs, unchanged = perturb_set(rs, kind, rate, seed)
    t0 = time.perf_counter()
    q = encode_texts(
        encoder, prs.query_texts, "query", f"{prs.name}: queries", batch_size, show_progress, precision
    )
    t1 = time.perf_counter()
    result = evaluate_lareqa(prs, q, cand_emb, seen_langs=seen_langs)
    write_dataset_reports(result, out_dir / "eval" / prs.name)
    entry = result.to_dict()
    entry["perturbation"] = {"kind": kind, "rate": rate, "seed": seed, "queries_unchanged": unchanged}
    report["datasets"][prs.name] = entry
    report["headline"][prs.name] = headline(result)
    report["timing_s"][prs.name] = {"encode": t1 - t0, "score_and_runs": time.perf_counter() - t1}
    log.info("%s: %d of %d queries unchanged by the perturbation", prs.name, unchanged, len(prs.query_texts))


def _write_qrels_outputs(result: dict, qs, out: Path) -> None:
    import gzip

    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "run.trec.gz", "wt", compresslevel=1) as fh:
        for qid, docs in result["run"].items():
            fh.writelines(f"{qid} Q0 {d} {r} {s:.6f} mdr\n" for r, (d, s) in enumerate(docs.items(), 1))
    (out / "qrels.tsv").write_text(
        "".join(f"{q} 0 {d} {rel}\n" for q, j in qs.qrels.items() for d, rel in j.items())
    )


def format_headline(report: dict) -> str:
    lines = ["dataset      mono mAP  cross mAP  multi mAP  rank dist"]
    for name, h in report["headline"].items():
        if "mono_map" in h:
            lines.append(
                f"{name:<12} {h['mono_map']:.4f}    {h['cross_map']:.4f}     {h['multi_map']:.4f}     "
                f"{h['rank_distance']:.1f}"
            )
        else:
            lines.append(f"{name:<12} nDCG@10 {h['ndcg@10']:.4f}  R@100 {h['r@100']:.4f}")
    return "\n".join(lines)
