"""The poisoning table of report.py (``mdr.report.poison``) on synthetic run folders: per-seed success read
back from metrics.json, and the difference to a baseline row computed from the per-query files with the
two-level interval, checked against an independent per-question sum."""

import json

import numpy as np
import pytest
import yaml

from mdr.report.bootstrap import bootstrap_diff
from mdr.report.collect import collect
from mdr.report.poison import poison_rows
from mdr.report.significance import baseline_rows
from mdr.report.write import write_report
from mdr.runtime.errors import InputError

LANGS = ["en", "th", "de"]
QUESTIONS = [f"q{i:03d}" for i in range(60)]
TARGETS = {"hybrid": "HybridSampler", "xx": "XXSampler"}


def _cell(root, sampler: str, seed: int, rate: float, evaluated=QUESTIONS[::2], steps: int = 60) -> dict:
    """One eval.py run of a checkpoint with a poisoned XQuAD-R: every query's success drawn at ``rate``."""
    rng = np.random.default_rng(seed * 7 + len(sampler) + steps - 60)
    cell = root / f"sampler={sampler},seed={seed},steps={steps}"
    (cell / ".hydra").mkdir(parents=True)
    config = {"sampler": {"_target_": f"mdr.training.samplers.{TARGETS[sampler]}"}, "model": {"name": "m"},
              "finetune": {"mode": "full"}, "seed": seed}  # fmt: skip
    (cell / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (cell / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"sampler={sampler}", f"seed={seed}"]))
    uids = np.array([f"{x}:{q}" for x in LANGS for q in QUESTIONS])
    rows = np.array([i for i, u in enumerate(uids) if u.split(":")[1] in set(evaluated)])
    arrays = {"rows": rows, "langs": np.array([uids[i].split(":")[0] for i in rows])}
    entry = {}
    for attacker in ("en", "th"):
        hits = {}
        for pool, scale in (("mono", 1.0), ("multi", 0.2)):
            at20 = rng.random(len(rows)) < rate * scale
            at10 = at20 & (rng.random(len(rows)) < 0.5)
            hits[pool] = np.stack([np.zeros(len(rows), bool), at10, at20], 1)
            arrays[f"{attacker}/{pool}/success"] = hits[pool]
        share = {
            p: {f"success@{k}": float(h[:, j].mean()) for j, k in enumerate((1, 10, 20))}
            for p, h in hits.items()
        }
        langs = arrays["langs"]
        entry[attacker] = {
            "curve": [{"step": 0, "similarity": 0.05, "mono_success@20": 0.0},
                      {"step": steps // 2, "similarity": 0.2, "mono_success@20": share["mono"]["success@20"] - 0.01},
                      {"step": steps, "similarity": 0.3, "mono_success@20": share["mono"]["success@20"]}],
            "success": share,
            "poisoned": {"mono": {"p@1": 0.65}},
            "transfer": {p: {x: float(hits[p][langs == x, 2].mean()) for x in LANGS} for p in ("mono", "multi")},
        }  # fmt: skip
    metrics = {"config": config, "datasets": {
        "xquad_r": {"dataset": "xquad_r"},
        "xquad_r~poison": {"kind": "poison", "attacker_langs": entry, "clean": {"mono": {"p@1": 0.7}},
                           "settings": {"passages": 5, "steps": steps, "attacker_langs": ["en", "th"],
                                        "curve_every": steps // 3}},
    }}  # fmt: skip
    for ds, arr in (("xquad_r", {"query_uids": uids}), ("xquad_r~poison", arrays)):
        (cell / "eval" / ds).mkdir(parents=True)
        np.savez_compressed(cell / "eval" / ds / "per_query.npz", **arr)
    (cell / "metrics.json").write_text(json.dumps(metrics))
    return {"uids": uids, **arrays}


def _per_question(cell: dict, attacker: str, pool: str) -> np.ndarray:
    """Success@20 summed per question (sorted ids), over the number of evaluated queries: by hand."""
    hits = cell[f"{attacker}/{pool}/success"][:, 2]
    qids = [cell["uids"][r].split(":")[1] for r in cell["rows"]]
    ids = sorted(set(qids))
    return np.array([sum(h for h, q in zip(hits, qids) if q == i) / len(hits) for i in ids])


def test_rows_read_back_the_runs_and_the_difference_matches_an_independent_computation(tmp_path):
    cells = {
        (s, seed): _cell(tmp_path, s, seed, 0.4 if s == "hybrid" else 0.2) for s in TARGETS for seed in (0, 1)
    }
    r = collect(tmp_path)
    rows = poison_rows(r, baseline_rows(sorted({rv.key for rv in r.runs}), r.key_names, "sampler=xx"))
    hybrid = next(row for row in rows if row.key[0] == "hybrid" and row.attacker == "en")
    shares = [cells[("hybrid", s)]["en/mono/success"][:, 2].mean() for s in (0, 1)]
    assert hybrid.success[("mono", 20)].mean == pytest.approx(np.mean(shares))
    assert hybrid.last_gain.mean == pytest.approx(0.01) and hybrid.steps == 60
    a = np.stack([_per_question(cells[("hybrid", s)], "en", "mono") for s in (0, 1)])
    b = np.stack([_per_question(cells[("xx", s)], "en", "mono") for s in (0, 1)])
    expected = bootstrap_diff(a, b)
    diff, interval = hybrid.diffs[("mono", 20)]
    assert diff == pytest.approx(
        np.mean(shares) - np.mean([cells[("xx", s)]["en/mono/success"][:, 2].mean() for s in (0, 1)])
    )
    assert diff == pytest.approx(expected.diff) and interval == pytest.approx(expected.ci)
    assert interval[0] > 0 and interval[0] < 0.2 < interval[1]  # the planted difference: 0.4 - 0.2
    assert not [
        row for row in rows if row.key[0] == "xx" and row.diffs
    ]  # the baseline is not tested against itself
    assert hybrid.transfer["th"] == pytest.approx(
        np.mean(
            [
                cells[("hybrid", s)]["en/mono/success"][cells[("hybrid", s)]["langs"] == "th", 2].mean()
                for s in (0, 1)
            ]
        )
    )


def test_rows_measured_on_different_questions_are_not_compared(tmp_path):
    _cell(tmp_path, "hybrid", 0, 0.4)
    _cell(tmp_path, "xx", 0, 0.2, evaluated=QUESTIONS[1::2])
    r = collect(tmp_path)
    with pytest.raises(InputError, match="different questions"):
        poison_rows(r, baseline_rows(sorted({rv.key for rv in r.runs}), r.key_names, "sampler=xx"))


def test_report_writes_the_poison_table_and_transfer_figure(tmp_path):
    for s in TARGETS:
        _cell(tmp_path / "runs", s, 0, 0.3)
    write_report(tmp_path / "runs", tmp_path / "out", baseline="sampler=xx", permutations=100)
    table = (tmp_path / "out" / "poison.md").read_text()
    assert "| hybrid | m | full | xquad_r~poison | en | 1 | 60 | 0.050 -> 0.300 |" in table
    assert "mono success@20 - baseline [95% CI]" in table and "no verdict" in table
    assert "| 0.7000 -> 0.6500 |" in table  # the gold answers' mono P@1, clean and poisoned
    assert (tmp_path / "out" / "poison_transfer.png").stat().st_size > 1000
    lines = (tmp_path / "out" / "poison.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 2 * 4  # rows x attacker languages x (pool, k) columns


def test_runs_with_another_budget_are_another_row_compared_with_the_baseline_at_their_budget(tmp_path):
    """A 250-step attack is not a third seed of the 60-step one: pooled, its higher success would pass for
    seed noise, and its difference would be taken against a baseline attacked for a quarter of the steps."""
    # seeds 0 and 1 share one row key (their overrides differ only in the seed): only the budget can split them
    cells = {(s, steps): _cell(tmp_path, s, steps // 250, rate, steps=steps)
             for s, steps, rate in (("hybrid", 60, 0.2), ("xx", 60, 0.2), ("hybrid", 250, 0.5), ("xx", 250, 0.3))}  # fmt: skip
    r = collect(tmp_path)
    rows = poison_rows(r, baseline_rows(sorted({rv.key for rv in r.runs}), r.key_names, "sampler=xx"))
    hybrid = {row.steps: row for row in rows if row.key[0] == "hybrid" and row.attacker == "en"}
    assert sorted(hybrid) == [60, 250] and all(len(row.seeds) == 1 for row in hybrid.values())
    for steps, row in hybrid.items():
        share = cells[("hybrid", steps)]["en/mono/success"][:, 2].mean()
        assert row.success[("mono", 20)].mean == pytest.approx(share)
        base = cells[("xx", steps)]["en/mono/success"][:, 2].mean()
        assert row.diffs[("mono", 20)][0] == pytest.approx(share - base)
    write_report(tmp_path, tmp_path / "out", baseline="sampler=xx", permutations=100)
    table = (tmp_path / "out" / "poison.md").read_text()
    assert "| hybrid | m | full | xquad_r~poison | en | 1 | 250 |" in table
    assert "curve_every" not in table.splitlines()[0]  # sampling the curve is not another budget
