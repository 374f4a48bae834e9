"""A synthetic results folder of Tatoeba cells with planted effects (seed blocks, recipes): the claims tests'
ground truth. Each cell has a config, a provenance block, metrics.json and per-query ranks (1 = the pair found)."""

import json

import numpy as np
import yaml

from mdr.report.collect import collect

LANGS = [f"l{i:02d}" for i in range(24)]
SENTENCES = 60
BLOCKS = {
    "B1": {
        "cpu": "AMD EPYC",
        "cpu_flags": ["avx2", "avx512f", "avx512_bf16"],
        "versions": {"torch": "2.14.1", "transformers": "5.25.0"},
    },
    "B2": {
        "cpu": "Intel Xeon",
        "cpu_flags": ["avx2", "avx512f", "avx512_bf16"],
        "versions": {"torch": "2.15.0", "transformers": "5.1.0"},
    },
}  # fmt: skip (the report names blocks B1, B2, ... in sorted order of their descriptions)
BLOCK_EFFECT = 0.10


def tatoeba_cell(
    root,
    sampler: str,
    seed: int | None,
    block: str,
    rng,
    effect: float = 0.0,
    seed_shift: float | None = None,
) -> None:
    """One archived cell: config, provenance, Tatoeba metrics and per-query ranks (1 = the pair found).
    ``seed_shift``: the seed's own shift of every pair's accuracy (default: drawn per cell)."""
    cell = root / f"sampler={sampler},seed={seed}"
    (cell / ".hydra").mkdir(parents=True)
    target = {"hybrid": "HybridSampler", "mixed": "MixedSampler", "xx": "XXSampler"}[sampler]
    config = {"sampler": {"_target_": f"mdr.training.samplers.{target}"}, "model": {"name": "m"},
              "finetune": {"mode": "full"}, "seed": seed}  # fmt: skip
    (cell / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (cell / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"sampler={sampler}", f"seed={seed}"]))
    (cell / "provenance.json").write_text(json.dumps({"source": "recorded", **BLOCKS[block]}))
    arrays, per_language = {}, {}
    seed_shift = rng.normal(0, 0.01) if seed_shift is None else seed_shift
    for i, lang in enumerate(LANGS):
        p = 0.4 + 0.02 * i + seed_shift + effect + (BLOCK_EFFECT if block == "B2" else 0.0)
        for direction in ("to_eng", "from_eng"):
            arrays[f"ranks/{direction}/{lang}"] = np.where(rng.random(SENTENCES) < p, 1, 2).astype(np.int32)
        acc = float(np.mean([(arrays[f"ranks/{d}/{lang}"] == 1).mean() for d in ("to_eng", "from_eng")]))
        per_language[lang] = {"n_pairs": SENTENCES, "accuracy": acc, "low_resource": i % 2 == 0}
    mean = float(np.mean([v["accuracy"] for v in per_language.values()]))
    metrics = {"datasets": {"tatoeba": {
        "dataset": "tatoeba", "kind": "bitext", "languages": LANGS, "seen_languages": [],
        "per_language": per_language, "summary": {"all": {"accuracy": mean}},
    }}, "config": config}  # fmt: skip
    (cell / "eval" / "tatoeba").mkdir(parents=True)
    np.savez_compressed(cell / "eval" / "tatoeba" / "per_query.npz", **arrays)
    (cell / "metrics.json").write_text(json.dumps(metrics))


def tatoeba_folder(
    tmp_path, design: dict[str, list[tuple[int, str]]], effects: dict[str, float] | None = None
):
    """``design``: sampler -> [(seed, block)]; ``effects``: sampler -> a planted shift of every pair's accuracy."""
    rng = np.random.default_rng(0)
    for sampler, cells in design.items():
        for seed, block in cells:
            tatoeba_cell(tmp_path, sampler, seed, block, rng, (effects or {}).get(sampler, 0.0))
    return collect(tmp_path)
