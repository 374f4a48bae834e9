"""Memory-mapped training corpora (issue #31): the Arrow store gives the samplers the very batches the
in-memory corpus gave, its cache is built once and reused, and bad lines still name their file and line."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from conftest import DATA_DIR

from mdr.data.sources import load_training_corpus
from mdr.data.splits import split_ids_by_group
from mdr.training.samplers import HybridSampler, MixedSampler, XXSampler, XYSampler

REFERENCE = Path(__file__).parent / "data" / "batch_plans_reference.json"
LANGS = ["ar", "de", "en", "es", "hi", "vi", "zh"]


def write_gappy_jsonl(path: Path, n_ids: int = 300, seed: int = 7) -> Path:
    """Parallel JSONL where ids miss some languages, groups span several ids and ids are not in sorted order."""
    rng = random.Random(seed)
    lines = []
    for k in rng.sample(range(n_ids), n_ids):
        langs = [lang for lang in LANGS if rng.random() < 0.7] or ["en"]
        for lang in langs:
            row = {
                "id": f"q{k}",
                "lang": lang,
                "query": f"query {k} {lang}",
                "positive": f"passage {k} {lang}",
            }
            if k % 3 == 0:
                row["negatives"] = [f"negative {k} {lang}"]
            if k % 2 == 0:
                row["group"] = f"g{k // 4}"
            lines.append(json.dumps(row, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _digest(plans) -> str:
    h = hashlib.sha256()
    for p in plans:
        h.update(
            json.dumps([p.step, p.kind, list(p.ids), list(p.query_langs), list(p.passage_langs)]).encode()
        )
    return h.hexdigest()


def _train_split(source: dict):
    corpus, _ = load_training_corpus(source, str(DATA_DIR))
    train_ids, dev_ids = split_ids_by_group(corpus, 0.1, 0)
    return corpus.subset(train_ids), list(train_ids), list(dev_ids)


def plan_cases(tmp_dir: Path):
    """(case name, digest of 120 steps' plans) for every sampler on real MLQA-R and on gappy JSONL."""
    sources = {
        "mlqa_r": {"kind": "lareqa", "name": "mlqa_r", "langs": None},
        "jsonl": {"kind": "jsonl", "path": str(write_gappy_jsonl(tmp_dir / "gappy.jsonl")), "langs": None},
        "jsonl_4langs": {
            "kind": "jsonl",
            "path": str(tmp_dir / "gappy.jsonl"),
            "langs": ["de", "en", "hi", "zh"],
        },
    }
    samplers = {
        "xx": lambda c: XXSampler(c, 8, seed=3),
        "xx_proportional": lambda c: XXSampler(c, 8, seed=3, weighting="proportional"),
        "xy": lambda c: XYSampler(c, 8, seed=3),
        "xy_proportional": lambda c: XYSampler(c, 8, seed=3, weighting="proportional"),
        "xy_per_example": lambda c: XYSampler(c, 8, seed=3, per_example=True),
        "hybrid": lambda c: HybridSampler(c, 8, seed=3, alpha=0.5),
        "mixed": lambda c: MixedSampler(c, 8, seed=3),
        "mixed_proportional": lambda c: MixedSampler(c, 8, seed=3, weighting="proportional"),
    }
    for source_name, source in sources.items():
        train, train_ids, dev_ids = _train_split(source)
        yield f"{source_name}/split", hashlib.sha256(json.dumps([train_ids, dev_ids]).encode()).hexdigest()
        for name, make in samplers.items():
            sampler = make(train)
            yield f"{source_name}/{name}", _digest(sampler.plan(s) for s in range(120))


def test_batch_plans_equal_the_in_memory_corpus_plans(tmp_path):
    """Every sampler's first 120 plans, and the dev split, equal those of the in-memory corpus (the
    reference digests were written by the samplers before the Arrow store existed)."""
    expected = json.loads(REFERENCE.read_text())["digests"]
    got = dict(plan_cases(tmp_path))
    assert got.keys() == expected.keys()
    differing = [k for k in expected if got[k] != expected[k]]
    assert not differing, f"batch plans changed for {differing}"
