"""The paired block measure (report.py --twins): retrained cells against their archived twins, on synthetic
folders with a planted block effect (every run of block B2 scores +0.10 accuracy)."""

import json

import numpy as np
import pytest
from scipy import stats
from synthetic_results import BLOCK_EFFECT, tatoeba_cell

from mdr.report.collect import collect
from mdr.report.twins import twins, twins_markdown
from mdr.report.write import write_report
from mdr.runtime.errors import InputError


def _folder(root, design: dict[str, list[tuple[int, str]]], seed_shifts: dict[int, float] | None = None):
    rng = np.random.default_rng(
        sum(map(ord, root.name))
    )  # by the folder's name: the same draws wherever tmp is
    for sampler, cells in design.items():
        for seed, block in cells:
            tatoeba_cell(root, sampler, seed, block, rng, seed_shift=(seed_shifts or {}).get(seed))
    return root


def _accuracy(root, sampler, seed) -> float:
    metrics = json.loads((root / f"sampler={sampler},seed={seed}" / "metrics.json").read_text())
    return metrics["datasets"]["tatoeba"]["summary"]["all"]["accuracy"]


@pytest.fixture
def archived(tmp_path):
    """hybrid seeds 0-4 in B2 and 5-9 in B1 (the decisive sweep's design), X-X seeds 0-4 in B2."""
    return _folder(
        tmp_path / "archived",
        {
            "hybrid": [(s, "B2") for s in range(5)] + [(s, "B1") for s in range(5, 10)],
            "xx": [(s, "B2") for s in range(5)],
        },
    )


def test_the_paired_difference_is_the_planted_block_effect(tmp_path, archived):
    retrained = _folder(
        tmp_path / "retrained", {"hybrid": [(s, "B1") for s in range(5)], "xx": [(0, "B1"), (7, "B1")]}
    )
    t = twins(collect(retrained), collect(archived))
    row = next(r for r in t.rows if r.key[0] == "hybrid" and r.column == "tatoeba|acc")
    diffs = [_accuracy(retrained, "hybrid", s) - _accuracy(archived, "hybrid", s) for s in range(5)]
    lo, hi = stats.t.interval(0.95, 4, loc=np.mean(diffs), scale=stats.sem(diffs))
    assert row.seeds == [0, 1, 2, 3, 4]
    assert row.diff.mean == pytest.approx(np.mean(diffs), abs=1e-12)
    assert (row.diff.mean - row.diff.half_width, row.diff.mean + row.diff.half_width) == pytest.approx(
        (lo, hi)
    )
    assert lo < -BLOCK_EFFECT < hi and row.diff.mean == pytest.approx(-BLOCK_EFFECT, abs=0.02)
    # the archived seeds of hybrid in the retrained block (5-9, B1) against the paired ones (0-4, B2)
    unpaired = np.mean([_accuracy(archived, "hybrid", s) for s in range(5, 10)]) - np.mean(
        [_accuracy(archived, "hybrid", s) for s in range(5)]
    )
    assert row.unpaired == pytest.approx(unpaired) and row.unpaired == pytest.approx(-BLOCK_EFFECT, abs=0.03)
    xx = next(r for r in t.rows if r.key[0] == "xx" and r.column == "tatoeba|acc")
    assert xx.seeds == [0] and xx.diff.half_width is None and xx.unpaired is None  # no X-X seeds in B1
    assert [(rv.key[0], rv.seed) for rv in t.unmatched] == [("xx", 7)]
    table = twins_markdown(t)
    assert "B1 = AMD EPYC" in table and "xx / m / full seed 7" in table
    assert (
        row.sd_independent < 0.05
    )  # the seed SD within blocks: the planted 0.10 between them is not seed noise


def test_a_seed_shared_by_the_twins_leaves_the_differences_narrower_than_two_independent_seeds(tmp_path):
    shifts = {
        s: 0.06 * (s - 2) for s in range(5)
    }  # seed noise far above the binomial noise of 24 x 120 pairs
    old = _folder(tmp_path / "archived", {"hybrid": [(s, "B2") for s in range(5)]}, shifts)
    new = _folder(tmp_path / "retrained", {"hybrid": [(s, "B1") for s in range(5)]}, shifts)
    row = next(r for r in twins(collect(new), collect(old)).rows if r.column == "tatoeba|acc")
    assert row.sd_independent > 0.1 and row.sd_diff < row.sd_independent / 5


def test_a_twin_trained_with_another_setting_is_refused_naming_it(tmp_path, archived):
    retrained = _folder(tmp_path / "retrained", {"hybrid": [(0, "B1")]})
    path = retrained / "sampler=hybrid,seed=0" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["config"]["optim"] = {"lr": 0.0003}
    archived_cell = archived / "sampler=hybrid,seed=0" / "metrics.json"
    old = json.loads(archived_cell.read_text())
    old["config"]["optim"] = {"lr": 0.0005}
    archived_cell.write_text(json.dumps(old))
    path.write_text(json.dumps(metrics))
    with pytest.raises(InputError, match=r"not twins: optim.lr is 0.0003 .* 0.0005 in the second"):
        twins(collect(retrained), collect(archived))


def test_a_setting_recorded_on_one_side_only_is_listed_not_refused(tmp_path, archived):
    retrained = _folder(tmp_path / "retrained", {"hybrid": [(0, "B1")]})
    path = retrained / "sampler=hybrid,seed=0" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["config"]["compute"] = {"cpu_fp32_max_steps": None}
    path.write_text(json.dumps(metrics))
    t = twins(collect(retrained), collect(archived))
    assert t.pairs[0].one_sided == ["compute.cpu_fp32_max_steps"]
    assert "on one side only (added to the code since): compute.cpu_fp32_max_steps." in twins_markdown(t)


def test_report_writes_the_twin_table_and_refuses_a_folder_without_twins(tmp_path, archived):
    retrained = _folder(tmp_path / "retrained", {"hybrid": [(0, "B1"), (1, "B1")]})
    write_report(retrained, tmp_path / "out", twins_of=archived)
    table = (tmp_path / "out" / "twins.md").read_text()
    assert "| hybrid / m / full | tatoeba acc | 0,1 |" in table
    lone = _folder(tmp_path / "lone", {"mixed": [(0, "B1")]})
    with pytest.raises(InputError, match="no retrained run has an archived twin"):
        twins(collect(lone), collect(archived))
