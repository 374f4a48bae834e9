"""Tracked sweep results: what a cell keeps, that a finished cell is skipped, and that the report rebuilds
from the archive alone."""

from __future__ import annotations

import shutil

import pytest
import yaml
from helpers import ROOT, compose_cfg, in_process

from mdr.cli.results_archive import archive_run, archived_cell, eval_cell_overrides
from mdr.eval.plan import EvalPlan
from mdr.eval.suite import EvalSettings, run_eval
from mdr.modeling.baselines import HashingEncoder
from mdr.report.collect import collect
from mdr.report.tables import to_markdown
from mdr.runtime.run_folder import cell_name


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
    for claim-by-claim verdicts). Only tables whose inputs changed since docs_tables last wrote them are
    recomputed (docs/experiments.tables.json), so the cost stays flat as results/ grows."""
    from mdr.report.docs_tables import MARKER, stale_tables

    doc = ROOT / "docs" / "experiments.md"
    quoted = {m[2] for m in MARKER.finditer(doc.read_text())}
    folders = {str(p.relative_to(ROOT)) for p in (ROOT / "results").glob("*") if p.is_dir()}
    assert quoted == folders, "each results/ folder needs its table in the docs"
    stale, _ = stale_tables(doc, ROOT, tmp_path)
    assert stale == [], f"stale tables in docs/experiments.md: {stale}; run python -m mdr.report.docs_tables"


def test_the_docs_check_recomputes_a_table_when_its_inputs_change(tmp_path, monkeypatch):
    """A table is recomputed when its results, the report's code or the table text changed since the lock
    was written, and reported stale when the recomputed numbers differ from the quoted ones."""
    import mdr.report.docs_tables as docs_tables

    root = tmp_path / "repo"
    shutil.copytree(ROOT / "results" / "adversarial_chars", root / "results" / "adversarial_chars")
    doc = root / "doc.md"
    marker = (
        "<!-- report: python report.py results/adversarial_chars --baseline sampler=xx -> adversarial.md -->"
    )
    doc.write_text(f"{marker}\n| old |\n|---|\n\nprose\n")
    docs_tables.refresh(doc, root, permutations=500)
    check = lambda: docs_tables.stale_tables(doc, root, tmp_path / "check", permutations=500)  # noqa: E731
    assert check() == ([], 0)  # nothing changed: nothing recomputed
    config = next((root / "results").rglob("config.yaml"))
    config.write_text(config.read_text() + "\n")  # an input changed, no number did
    assert check() == ([], 1)
    docs_tables.write_lock(doc, root)
    table_line = next(line for line in doc.read_text().splitlines() if line.startswith("| hybrid"))
    doc.write_text(doc.read_text().replace(table_line, table_line.replace("0.", "0.9", 1)))
    assert check() == ([marker], 1)
    doc.write_text(doc.read_text().replace(table_line.replace("0.", "0.9", 1), table_line))
    assert check() == ([], 0)
    extra = tmp_path / "changed_code.py"
    extra.write_text("x = 1\n")
    code = docs_tables.report_code()
    monkeypatch.setattr(docs_tables, "report_code", lambda: [*code, extra])  # the report's code changed
    assert check() == ([], 1)


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


def test_eval_py_refuses_to_take_another_checkpoints_cell_for_its_own(
    tmp_path, tiny_run, tiny_model_dir, data_dir
):
    """Two checkpoints with the same training overrides share a cell name: the second is refused (before, it
    was 'SKIPPED' and never evaluated); the same checkpoint again is skipped."""
    import torch
    from helpers import quick_reeval_overrides, run

    other_run = tmp_path / "other_run"
    shutil.copytree(tiny_run.dir / ".hydra", other_run / ".hydra")
    ckpt = torch.load(tiny_run.dir / "checkpoints" / "best.ckpt", weights_only=False)
    key = next(k for k in ckpt["state_dict"] if k.endswith("weight"))
    ckpt["state_dict"][key] = ckpt["state_dict"][key] + 1.0  # another model, same run folder overrides
    (other_run / "checkpoints").mkdir()
    torch.save(ckpt, other_run / "checkpoints" / "best.ckpt")
    results = tmp_path / "results"

    def score(ckpt_path, name):
        base = quick_reeval_overrides(tmp_path / name, tiny_model_dir, data_dir)
        return run("eval.py", *base, f"ckpt={ckpt_path}", f"results_dir={results}", check=False)

    first = score(tiny_run.dir / "checkpoints" / "best.ckpt", "first")
    assert first.returncode == 0, first.stderr[-2000:]
    again = score(tiny_run.dir / "checkpoints" / "best.ckpt", "again")
    assert again.returncode == 0 and (tmp_path / "again" / "SKIPPED").exists()
    other = score(other_run / "checkpoints" / "best.ckpt", "other")
    errors = [x for x in other.stderr.splitlines() if x.startswith("eval.py: error:")]
    assert (
        other.returncode == 2 and len(errors) == 1 and "holds the results of another checkpoint" in errors[0]
    )
    assert (
        not (tmp_path / "other" / "SKIPPED").exists() and not (tmp_path / "other" / "metrics.json").exists()
    )


def test_markers_on_one_folder_quote_the_verdicts_of_their_own_claims_files(tmp_path):
    """``--claims a.yaml`` and ``--claims a.yaml,b.yaml`` on one folder are two reports, each with its own
    verdicts; a change to b.yaml recomputes only the marker that reads it."""
    from synthetic_results import tatoeba_folder

    import mdr.report.docs_tables as docs_tables

    root = tmp_path / "repo"
    design = {s: [(k, "B1") for k in range(3)] for s in ("hybrid", "mixed", "xx")}
    tatoeba_folder(root / "results" / "syn", design, {"hybrid": 0.03})
    for name, a in (("one", "hybrid"), ("two", "xx")):
        (root / f"{name}.yaml").write_text(
            f"families: {{f_{name}: test}}\nclaims:\n- {{claim: '{a} >= mixed', family: f_{name}, a: sampler={a}, "
            "b: sampler=mixed, dataset: tatoeba, group: all, metric: accuracy, expect: '>=', margin: 0.01, "
            "margin_reason: test}\n"
        )
    alone = "<!-- report: python report.py results/syn --claims one.yaml -> claims.md -->"
    both = "<!-- report: python report.py results/syn --claims one.yaml,two.yaml -> claims.md -->"
    doc = root / "doc.md"
    doc.write_text(f"{alone}\n| old |\n|---|\n\n{both}\n| old |\n|---|\n\nend\n")
    docs_tables.refresh(doc, root, permutations=200)
    first, second = doc.read_text().split(both)
    assert "| hybrid >= mixed |" in first and "xx >= mixed" not in first
    assert "| hybrid >= mixed |" in second and "| xx >= mixed |" in second
    (root / "two.yaml").write_text((root / "two.yaml").read_text() + "\n")
    assert docs_tables.stale_tables(doc, root, tmp_path / "check", permutations=200) == ([], 1)
