"""Tracked sweep results: what a cell keeps, that a finished cell is skipped, and that the report rebuilds
from the archive alone."""

from __future__ import annotations

import re

import pytest
import yaml
from helpers import ROOT, compose_cfg, in_process

from mdr.cli.results_archive import archive_run, archived_cell, cell_name, eval_cell_overrides
from mdr.eval.plan import EvalPlan
from mdr.eval.suite import EvalSettings, run_eval
from mdr.modeling.baselines import HashingEncoder
from mdr.report.collect import collect
from mdr.report.tables import to_markdown


def test_cell_name_is_the_sorted_overrides_without_paths():
    a = cell_name(["seed=1", "sampler=xx", "paths.data_dir=/x", "hydra.run.dir=/y", "experiment=decisive"])
    assert a == "experiment=decisive,sampler=xx,seed=1"
    assert a == cell_name(["experiment=decisive", "seed=1", "sampler=xx", "results_dir=/elsewhere"])
    assert cell_name([]) == "default"
    assert "/" not in cell_name(["data.train.path=/data/x.jsonl"])
    long = [f"model.encoder.option_{i}=value_{i}" for i in range(20)]
    assert len(cell_name(long)) == 160 and cell_name(long) != cell_name(
        long[:-1]
    )  # a file name, still unique
    assert cell_name(long).startswith("model.encoder.option_0=value_0,")


def test_eval_cell_is_named_by_the_checkpoints_training_cell(tmp_path):
    run = tmp_path / "train" / "3"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["sampler=xx", "seed=1", "hydra.run.dir=/x"])
    )
    ckpt = str(run / "checkpoints" / "best.ckpt")
    overrides = eval_cell_overrides([f"ckpt={ckpt}", "experiment=adversarial"], ckpt)
    assert cell_name(overrides) == "ckpt.sampler=xx,ckpt.seed=1,experiment=adversarial"
    assert cell_name(eval_cell_overrides(["ckpt=null", "experiment=adversarial"], None)) == (
        "ckpt=null,experiment=adversarial"
    )


def _eval_run(run, data_dir, sampler, seed):
    (run / ".hydra").mkdir(parents=True)
    config = {
        "sampler": {"_target_": f"x.{sampler}"},
        "model": {"name": "hashing"},
        "finetune": {"mode": "full"},
    }
    config["seed"] = seed
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}"]))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.ckpt").write_bytes(b"0" * 1000)
    settings = EvalSettings(datasets=["tatoeba"], tatoeba_langs=["afr", "jav"], show_progress=False)
    run_eval(HashingEncoder(dim=256), EvalPlan.build(settings, data_dir), run, ["en"], {"config": config})


def test_archive_keeps_the_small_results_and_the_report_rebuilds_from_them(tmp_path, data_dir):
    sweep, results = tmp_path / "multirun", tmp_path / "results"
    for seed in (0, 1):
        _eval_run(sweep / str(seed), data_dir, "XXSampler", seed)
        cell = archive_run(sweep / str(seed), results, [f"seed={seed}", "hydra.run.dir=x"])
        assert cell == results / f"seed={seed}" and archived_cell(results, [f"seed={seed}"]) == cell
    kept = sorted(
        str(p.relative_to(results / "seed=0")) for p in (results / "seed=0").rglob("*") if p.is_file()
    )
    assert kept == [
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "eval/tatoeba/per_language.csv",
        "eval/tatoeba/per_query.npz",
        "eval/tatoeba/summary.md",
        "metrics.json",
    ]  # no checkpoint, no plots
    assert to_markdown(collect(results)) == to_markdown(collect(sweep))
    assert archived_cell(results, ["seed=2"]) is None and archived_cell(None, ["seed=0"]) is None


def test_archiving_an_incomplete_run_fails_and_leaves_no_cell(tmp_path):
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        archive_run(tmp_path / "run", tmp_path / "results", ["seed=0"])
    assert not list((tmp_path / "results").glob("*"))


def test_a_finished_cell_is_skipped_without_training(tmp_path, data_dir):
    from mdr.cli.train import train

    results = tmp_path / "results"
    (results / "seed=3").mkdir(parents=True)
    (results / "seed=3" / "metrics.json").write_text("{}")
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=3", f"results_dir={results}"]))
    cfg = compose_cfg(
        "train",
        in_process(
            ["seed=3", f"results_dir={results}", f"hydra.run.dir={run_dir}", f"paths.data_dir={data_dir}"]
        ),
    )
    assert train(cfg) is None
    assert "seed=3" in (run_dir / "SKIPPED").read_text()
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()


def test_docs_tables_rebuild_from_the_tracked_results(tmp_path):
    """Every tracked results folder has its table in docs/experiments.md, and that table is what report.py
    prints from the folder today (marker: ``<!-- report: python report.py results/X [--baseline k=v] -->``,
    or ``... -> adversarial.md -->`` for a table of another file report.py writes, ``--claims FILE -> claims.md``
    for claim-by-claim verdicts)."""
    from mdr.report.write import write_report

    docs = (ROOT / "docs" / "experiments.md").read_text()
    quoted = re.findall(
        r"<!-- report: python report.py (results/\S+)(?: --baseline (\S+))?(?: --claims (\S+))?(?: -> (\S+\.md))? -->"
        r"\n(.*?)\n\n",
        docs,
        re.S,
    )
    folders = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "results").glob("*") if p.is_dir())
    assert sorted({f for f, *_ in quoted}) == folders, "each results/ folder needs its table in the docs"
    claims_of = {(folder, baseline): claims for folder, baseline, claims, *_ in quoted if claims}
    reports = {}  # report.py once per (folder, baseline): its results table and claims.md share it
    for folder, baseline, _, written, table in quoted:
        if (folder, baseline) not in reports:
            out = tmp_path / str(len(reports))
            claims = claims_of.get((folder, baseline))
            claims = ROOT / claims if claims else None
            r = write_report(
                ROOT / folder, out, baseline=baseline or None, permutations=10_000, claims=claims
            )
            reports[(folder, baseline)] = (out, r)
        out, r = reports[(folder, baseline)]
        printed = (out / written).read_text() if written else to_markdown(r)
        assert table.strip() in printed, (
            f"docs/experiments.md's table for {folder} ({written or 'results'}) is stale"
        )


def test_docs_tables_refresh_rewrites_only_the_quoted_tables(tmp_path):
    """``python -m mdr.report.docs_tables`` replaces a stale quoted table by report.py's and leaves the prose."""
    from mdr.report.docs_tables import first_table, refresh
    from mdr.report.write import write_report

    doc = tmp_path / "doc.md"
    marker = (
        "<!-- report: python report.py results/adversarial_chars --baseline sampler=xx -> adversarial.md -->"
    )
    doc.write_text(f"# Title\nprose before\n\n{marker}\n| stale | table |\n|---|---|\n\nprose after\n")
    assert refresh(doc, ROOT, permutations=500) == ["results/adversarial_chars (adversarial.md)"]
    write_report(
        ROOT / "results" / "adversarial_chars", tmp_path / "r", baseline="sampler=xx", permutations=500
    )
    expected = first_table((tmp_path / "r" / "adversarial.md").read_text())
    assert expected.startswith("| sampler |") and "| hybrid |" in expected
    assert doc.read_text() == f"# Title\nprose before\n\n{marker}\n{expected}\n\nprose after\n"
    assert refresh(doc, ROOT, permutations=500) == []  # a fresh table is left alone
