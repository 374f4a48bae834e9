"""benchmarks/corpus_scale.py at HEAD, tiny and in-process (issue #46: it had stopped running when the shards
gained a probe text): its peers agree and its IVF rows say what they measured."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("corpus_scale", ROOT / "benchmarks" / "corpus_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "CFG", dict(module.TINY))
    return module


def test_tiny_corpus_scale_runs_and_its_peers_agree(bench, tmp_path):
    row = bench.measure(3000, str(tmp_path), True, run=bench.child)
    assert row["same_top"] and row["max_score_gap"] == 0.0  # sharded search equals in-memory search
    for kind in bench.IVF_KINDS:
        first, again = row[f"ivf_{kind}"]["first"]["ivf"], row[f"ivf_{kind}"]["again"]["ivf"]
        assert first["built"] == (kind != "pq_rerank") and not again["built"], f"{kind}: index not reused"
        assert again["build_s"] == 0.0 and again["end_to_end_s"] >= again["load_s"] + again["search_s"]
        assert first["end_to_end_s"] >= first["build_s"] + first["search_s"]
        assert 0 < again["recall@20_vs_exact"] <= 1
    assert row["ivf_flat"]["again"]["ivf"]["recall@20_vs_exact"] > 0.9  # clustered data, 4 of 16 lists
    pq, reranked = (row[f"ivf_{k}"]["again"]["ivf"]["recall@20_vs_exact"] for k in ("pq", "pq_rerank"))
    assert reranked > pq  # exact rescoring of 10 x k candidates
    proj = {p["dim"]: p for p in bench.projection(1_000_000)}
    assert proj[768]["fp32_shards_gib"] == pytest.approx(1_000_000 * 768 * 4 / 2**30)
    assert proj[768]["ivf_pq_gib"] < proj[768]["ivf_sq8_gib"] < proj[768]["ivf_flat_gib"]
