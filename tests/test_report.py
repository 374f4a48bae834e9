"""The report tool on synthetic run folders with known values."""

import json
import math

import pytest
import yaml
from helpers import ROOT

from mdr.report.collect import collect
from mdr.report.tables import to_latex, to_markdown
from mdr.report.write import write_report


def make_run(
    root,
    name,
    sampler,
    seed,
    mono,
    cross,
    multi,
    rd,
    model="me5_small",
    mode="full",
    status="ok",
    alpha=0.5,
    overrides=None,
    extra_datasets=None,
    unseen=None,
):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    if overrides is not None:
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {
        "sampler": {"_target_": f"mdr.samplers.{sampler}", "alpha": alpha},
        "model": {"name": model},
        "finetune": {"mode": mode},
        "seed": seed,
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if status == "failed":
        (run / "FAILED").write_text("ValueError: sampler.alpha=2 must be in [0, 1]\n")
        (run / "metrics.json.partial").write_text("{")  # a half-written file must never be read
        return
    if status == "incomplete":
        return
    summary = {
        "mono": {"map": mono, "p@1": mono - 0.1, "mrr@5": mono - 0.05},
        "cross": {"map": cross, "p@1": cross - 0.1, "mrr@5": cross - 0.05},
        "multi": {"map": multi, "rank_distance": rd},
    }
    if unseen is not None:
        summary["unseen"] = {"cross": {"map": unseen, "p@1": unseen - 0.2, "mrr@5": unseen - 0.1}}
    datasets = {"xquad_r": {"summary": summary}}
    for ds, (m, c, x) in (extra_datasets or {}).items():
        datasets[ds] = {"summary": {"mono": {"map": m}, "cross": {"map": c}, "multi": {"map": x}}}
    (run / "metrics.json").write_text(json.dumps({"config": config, "datasets": datasets}))


@pytest.fixture
def sweep(tmp_path):
    for seed, (m, c, x, rd) in enumerate(
        [(0.80, 0.60, 0.30, 1000), (0.82, 0.62, 0.34, 900), (0.78, 0.61, 0.32, 1100)]
    ):
        make_run(tmp_path, f"xx_{seed}", "XXSampler", seed, m, c, x, rd)
    for seed, (m, c, x, rd) in enumerate(
        [(0.77, 0.68, 0.56, 350), (0.79, 0.70, 0.58, 340), (0.78, 0.69, 0.57, 360)]
    ):
        make_run(tmp_path, f"hy_{seed}", "HybridSampler", seed, m, c, x, rd)
    make_run(tmp_path, "hy_bad", "HybridSampler", 9, 0, 0, 0, 0, status="failed")
    make_run(tmp_path, "hy_killed", "HybridSampler", 10, 0, 0, 0, 0, status="incomplete")
    return tmp_path


def test_means_intervals_and_best(sweep):
    r = collect(sweep)
    xx, hy = r.rows[("xx", "me5_small", "full")], r.rows[("hybrid", "me5_small", "full")]
    c = xx["xquad_r|mono mAP"]
    assert c.n == 3 and c.mean == pytest.approx(0.80)
    # t(0.975, 2) = 4.302652..., sd = 0.02, half-width = 4.3027 * 0.02 / sqrt(3)
    assert c.half_width == pytest.approx(4.302652729911275 * 0.02 / math.sqrt(3), rel=1e-9)
    assert hy["xquad_r|multi mAP"].mean == pytest.approx(0.57)
    assert r.best[("xquad_r", "mono mAP")] == ("xx", "me5_small", "full")
    assert r.best[("xquad_r", "cross mAP")] == ("hybrid", "me5_small", "full")
    assert r.best[("xquad_r", "rank dist")] == ("hybrid", "me5_small", "full")  # lower is better
    assert len(r.complete) == 6 and len(r.failed) == 1 and len(r.incomplete) == 1


def test_a_column_only_one_row_fills_marks_no_best(tmp_path):
    """Domain-shift sweeps evaluate each row on a different set: one value per column is not a 'best'."""
    make_run(
        tmp_path, "a", "HybridSampler", 0, 0.7, 0.6, 0.5, 400, extra_datasets={"mlqa_r": (0.61, 0.51, 0.41)}
    )
    make_run(tmp_path, "b", "XXSampler", 0, 0.8, 0.5, 0.4, 500)
    r = collect(tmp_path)
    assert r.best[("xquad_r", "mono mAP")] == ("xx", "me5_small", "full")
    assert ("mlqa_r", "mono mAP") not in r.best
    assert "**0.6100**" not in to_markdown(r) and "| 0.6100 |" in to_markdown(r)


def test_outputs_list_failed_runs_and_mark_best(sweep, tmp_path):
    r = write_report(sweep, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    assert "**0.8000 ± 0.0497**" in md  # xx mono: best, with its interval
    assert "Failed runs (1)" in md and "sampler.alpha=2" in md and "hy_bad" in md
    assert "Incomplete runs (1" in md and "hy_killed" in md
    assert r"\textbf{0.5700 $\pm$ 0.0248}" in to_latex(r)
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert rows[0].startswith("sampler,model,finetune,dataset,metric,mean,ci95_half_width")
    assert len(rows) == 1 + 2 * 6
    assert to_markdown(r).count("| hybrid |") == 1


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run folders"):
        collect(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        collect(tmp_path / "nope")


@pytest.mark.slow
def test_two_cell_multirun_to_table(tmp_path, tiny_model_dir, data_dir):
    from helpers import quick_tiny_overrides, run

    sweep_dir = tmp_path / "sweep"
    overrides = [
        o
        for o in quick_tiny_overrides(tiny_model_dir, tmp_path / "unused", data_dir)
        if not o.startswith("hydra.run")
    ]
    overrides = [
        o for o in overrides if not o.startswith(("data.datamodule.steps_per_epoch", "trainer.max_epochs"))
    ]
    proc = run(
        "train.py",
        "-m",
        "sampler=xx,hybrid",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
        "data.datamodule.steps_per_epoch=6",
        "trainer.max_epochs=1",
    )
    assert (sweep_dir / "0" / "metrics.json").exists() and (sweep_dir / "1" / "metrics.json").exists()
    r = run("report.py", str(sweep_dir))
    assert "| xx | tiny_model" in r.stdout or "| xx |" in r.stdout
    assert "| hybrid |" in r.stdout and "Complete runs: 2." in r.stdout
    assert (sweep_dir / "results.tex").exists() and proc.returncode == 0


def test_alpha_sweep_becomes_a_column_and_a_curve(tmp_path):
    from mdr.report.derived import alpha_curve

    values = {0.0: (0.70, 0.70, 0.60), 0.5: (0.76, 0.68, 0.56), 1.0: (0.80, 0.62, 0.35)}
    for a, (m, c, x) in values.items():
        for seed in (0, 1):
            d = 0.01 * seed
            make_run(
                tmp_path,
                f"a{a}_{seed}",
                "HybridSampler",
                seed,
                m + d,
                c + d,
                x + d,
                500,
                alpha=a,
                overrides=["experiment=paper_table", "sampler=hybrid", f"sampler.alpha={a}", f"seed={seed}"],
            )
    r = write_report(tmp_path, tmp_path / "out")
    assert r.key_names == ["sampler", "model", "finetune", "sampler.alpha"]
    assert set(r.rows) == {("hybrid", "me5_small", "full", str(a)) for a in values}
    curve = alpha_curve(r)[("me5_small", "full")]
    assert list(curve) == [0.0, 0.5, 1.0]
    assert curve[1.0]["xquad_r|multi mAP"].mean == pytest.approx(0.355)
    assert curve[0.0]["xquad_r|cross mAP"].n == 2
    md = (tmp_path / "out" / "alpha_curve.md").read_text()
    assert "| 0.5 | 2 | 0.7650 ± 0.0635 |" in md  # mono: mean 0.765, t(.975,1)=12.706 * 0.00707 / sqrt(2)
    for png in ("alpha_curve.png", "results_bars.png", "bias.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unseen_subset_and_robustness_drops(tmp_path):
    from mdr.report.derived import robustness

    for seed in (0, 1):
        for sampler, unseen, noisy in (("XXSampler", 0.40, 0.20), ("HybridSampler", 0.60, 0.55)):
            make_run(
                tmp_path,
                f"{sampler}_{seed}",
                sampler,
                seed,
                0.8,
                0.6,
                0.5,
                400,
                unseen=unseen + 0.02 * seed,
                extra_datasets={"xquad_r~word_drop@0.3": (0.7, noisy, 0.5 - 0.1 * seed)},
            )
    r = collect(tmp_path, subset="unseen")
    assert r.rows[("xx", "me5_small", "full")]["xquad_r|cross mAP"].mean == pytest.approx(0.41)
    assert r.best[("xquad_r", "cross mAP")] == ("hybrid", "me5_small", "full")
    assert all("~" not in ds for ds, _, _ in r.columns)  # perturbed sets are not table columns
    drops = robustness(collect(tmp_path))
    xx = drops[("xx", "me5_small", "full")]["xquad_r~word_drop@0.3"]
    assert xx["cross mAP"].mean == pytest.approx(0.6 - 0.2)
    assert xx["multi mAP"].mean == pytest.approx(0.05)  # 0.5 - (0.5, 0.4) averaged
    assert xx["mono mAP"].mean == pytest.approx(0.1)
    write_report(tmp_path, tmp_path / "out")
    md = (tmp_path / "out" / "robustness.md").read_text()
    assert "| hybrid | me5_small | full | +0.100 / +0.050 / +0.050 |" in md
    write_report(tmp_path, tmp_path / "out", subset="unseen")
    assert "xquad_r (unseen) cross mAP" in (tmp_path / "out" / "results_unseen.md").read_text()


def test_pareto_front_by_hand():
    from mdr.report.plots import pareto_front

    points = {"a": (0.69, 0.30), "b": (0.67, 0.57), "c": (0.66, 0.55), "d": (0.69, 0.57), "e": (0.70, 0.10)}
    assert pareto_front(points) == {"d", "e"}  # d beats a, b, c; e is alone best on x
    assert pareto_front({"a": (1, 1), "b": (1, 1)}) == {"a", "b"}  # ties dominate nobody


def test_every_pareto_row_has_its_own_colour_and_marker():
    """The legend is how a reader finds a row in the cluster: no two rows may share a style, up to 110 rows."""
    from mdr.report.plots import pareto_styles

    keys = [(f"recipe{i}", "e5", "full") for i in range(110)] + [("untrained", "e5", "full")]
    styles = pareto_styles(keys)
    trained = [styles[k] for k in keys[:-1]]
    assert len(set(trained)) == 110
    assert styles[("untrained", "e5", "full")] == ("black", "*") and ("black", "*") not in trained


def test_the_pareto_figure_has_every_recipe_and_the_backbone(tmp_path):
    """results/decisive holds XQuAD-R and Tatoeba rows and the untrained backbone: report.py draws pareto.png."""
    from mdr.report.collect import collect
    from mdr.report.plots import pareto_points, plot_pareto

    r = collect(ROOT / "results" / "decisive")
    points = pareto_points(r)
    assert "untrained" in {k[0] for k in points}
    assert {k[0] for k in points} >= {"xx", "xy", "hybrid", "mixed"}
    assert plot_pareto(r, tmp_path / "pareto.png") and (tmp_path / "pareto.png").stat().st_size > 10_000


def test_pareto_rows_below_three_seeds_have_no_whiskers_and_the_legend_groups_recipes():
    """Issue #43: a 2-seed row's t(1) interval would fill the panel; it is drawn as a point marked n < 3."""
    from mdr.report.collect import collect
    from mdr.report.plots import _pareto_label, legend_columns, pareto_points, pareto_whisker

    r = collect(ROOT / "results" / "decisive")
    points = pareto_points(r)
    by_seeds = {key: cells["tatoeba|acc"].n for key, cells in points.items()}
    two = next(k for k, n in by_seeds.items() if n == 2)
    ten = next(k for k, n in by_seeds.items() if n == 10)
    assert pareto_whisker(points[two]["tatoeba|acc"]) == 0.0 and points[two]["tatoeba|acc"].half_width > 0.01
    assert pareto_whisker(points[ten]["tatoeba|acc"]) == points[ten]["tatoeba|acc"].half_width > 0
    assert "n < 3" in _pareto_label(r, two, 2) and "n < 3" not in _pareto_label(r, ten, 10)
    columns = legend_columns(list(points))
    assert len({len(c) for c in columns}) == 1  # padded to one height
    for column in columns:
        assert len({k[0] for k in column if k is not None}) == 1  # one recipe per column
    assert columns[-1][0][0] == "untrained"
    assert sorted(k for c in columns for k in c if k is not None) == sorted(points)
