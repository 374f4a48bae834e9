"""Weight-space merging: WiSE-FT rows at the end of training, soups of checkpoints, and the refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_cfg, quick_reeval_overrides, quick_tiny_overrides, run
from test_finetune import train_steps

from mdr.modeling.encoder import DualEncoder
from mdr.modeling.finetune import finetune_mode
from mdr.modeling.merging import (
    interpolate,
    load_plain_state,
    plain_state,
    weighted_average,
)
from mdr.runtime.errors import InputError

TEXTS = ["Who wrote the book?", "Der Zug fährt um zwölf Uhr ab.", "列车中午出发。"]


def embed(enc):
    return enc.encode(TEXTS, "query", show_progress=False, precision="fp32")


@pytest.fixture(scope="module")
def trained(tiny_model_dir):
    """A tiny encoder after a few full fine-tuning steps, and the untouched backbone."""
    torch.manual_seed(0)
    enc = DualEncoder(str(tiny_model_dir))
    train_steps(enc)
    return enc, DualEncoder(str(tiny_model_dir))


def test_lambda_0_and_1_are_the_two_models_and_half_is_the_midpoint(trained, tiny_model_dir):
    enc, base = trained
    ft, pre = plain_state(enc), plain_state(base)
    assert any(not torch.equal(ft[k], pre[k]) for k in ft)  # training changed the weights
    for lam, want in ((0.0, pre), (1.0, ft)):
        merged = interpolate(pre, ft, lam)
        assert all(torch.equal(merged[k], want[k]) for k in want), lam
    half = interpolate(pre, ft, 0.5)
    k = next(k for k in ft if not torch.equal(ft[k], pre[k]))
    torch.testing.assert_close(half[k], (pre[k] + ft[k]) / 2)
    target = DualEncoder(str(tiny_model_dir))
    load_plain_state(target, interpolate(pre, ft, 1.0))
    np.testing.assert_array_equal(embed(target), embed(enc))


def test_a_soup_of_a_model_with_itself_is_the_model(trained):
    enc, _ = trained
    s = plain_state(enc)
    soup = weighted_average({"a": s, "b": s}, [0.5, 0.5])
    assert all(torch.equal(soup[k], s[k]) for k in s)
    three = weighted_average({"a": s, "b": s, "c": s}, [0.25, 0.25, 0.5])
    assert all(torch.equal(three[k], s[k]) for k in s)


def test_lora_merge_equals_the_merged_export(tmp_path, tiny_model_dir):
    """LoRA is merged into the backbone before merging: its plain state is what its export holds, and
    interpolating with the backbone scales the low-rank update (theta_pre + lambda * B A)."""
    from mdr.modeling.export import export_encoder, load_export

    torch.manual_seed(1)
    enc = DualEncoder(str(tiny_model_dir))
    finetune_mode(dict(mode="lora", r=4, alpha=8, dropout=0.0)).apply(enc)
    train_steps(enc)
    state = plain_state(enc)
    out = export_encoder(enc, tmp_path / "export")
    exported = load_export(out)[0].auto_model.state_dict()
    assert set(exported) == {k.removeprefix("model.") for k in state}
    for k, v in exported.items():
        torch.testing.assert_close(state[f"model.{k}"], v.float(), rtol=0, atol=0)
    pre = plain_state(DualEncoder(str(tiny_model_dir)))
    delta = {k: state[k] - pre[k] for k in state}
    assert any(d.abs().max() > 0 for d in delta.values())
    quarter = interpolate(pre, state, 0.25)
    for k in state:
        torch.testing.assert_close(quarter[k], pre[k] + 0.25 * delta[k])


@pytest.fixture(scope="module")
def wider_model(tmp_path_factory):
    from conftest import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("wider"), hidden=48)


def test_refusals_name_the_problem(trained, tiny_model_dir, wider_model):
    enc, base = trained
    ft, pre = plain_state(enc), plain_state(base)
    other = plain_state(DualEncoder(str(wider_model)))
    with pytest.raises(
        InputError, match=r"differ in shape at model\.embeddings.* merge checkpoints of one model"
    ):
        weighted_average({"mine.ckpt": ft, "wider.ckpt": other}, [0.5, 0.5])
    fewer = {k: v for k, v in ft.items() if "layer.1." not in k}
    with pytest.raises(InputError, match=r"are not the same backbone: \d+ weights only in"):
        weighted_average({"a.ckpt": ft, "b.ckpt": fewer}, [0.5, 0.5])
    with pytest.raises(InputError, match=r"merge.weights \[0.5, 0.6\] sum to 1.1, not 1"):
        weighted_average({"a": ft, "b": pre}, [0.5, 0.6])
    with pytest.raises(InputError, match="negative weight"):
        weighted_average({"a": ft, "b": pre}, [1.5, -0.5])
    assert weighted_average({"a": ft, "b": pre}, [1.5, -0.5], extrapolate=True)  # allowed on purpose
    with pytest.raises(InputError, match=r"lambda=1.5 is outside \[0, 1\].*merge.extrapolate=true"):
        interpolate(pre, ft, 1.5)
    adapters = DualEncoder(str(tiny_model_dir))
    finetune_mode(dict(mode="adapter")).apply(adapters)
    with pytest.raises(InputError, match="has bottleneck adapters: weight-space merging is defined for full"):
        plain_state(adapters, "the adapter run")


def test_train_refuses_a_bad_lambda_before_loading(tmp_path, tiny_model_dir, data_dir):
    from helpers import expect_failure, in_process

    run_dir = tmp_path / "run"
    overrides = in_process(quick_tiny_overrides(tiny_model_dir, run_dir, data_dir, "merge.wise=[0.5,2]"))
    overrides = [o for o in overrides if not o.startswith("model.encoder.name")] + [
        "model.encoder.name=/nope"
    ]
    expect_failure("train", "train", overrides, run_dir, InputError, r"lambda=2(\.0)? is outside \[0, 1\]")


def test_merge_py_refuses_before_writing(tmp_path, tiny_run, tiny_model_dir, data_dir):

    best = tiny_run.dir / "checkpoints" / "best.ckpt"
    out = tmp_path / "out"
    cases = [
        ([f"checkpoints=[{best},{best}]", "weights=[0.5,0.4]"], r"sum to 0.9, not 1"),
        ([f"checkpoints=[{best}]", "weights=[0.5,0.5]"], "weights has 2 values for 1 checkpoints"),
        (
            [f"checkpoints=[{tmp_path / 'nope.ckpt'}]", "weights=[1.0]"],
            "checkpoint .*nope.ckpt does not exist",
        ),
        (["checkpoints=[]", "weights=[]"], "checkpoints=\\[...\\] is empty"),
        ([f"checkpoints=[{best},{best}]", "weights=[nan,1.0]"], "holds a value that is not a finite number"),
        ([f"checkpoints=[{best}]", "weights=[1.0]", "pretrained_weight=nan"], "not a finite number"),
    ]
    for extra, message in cases:
        merge_refused(tmp_path, tiny_model_dir, out, extra, message)


def merge_refused(tmp_path, tiny_model_dir, out, extra: list[str], message: str) -> None:
    """merge.py with ``extra`` stops with ``message`` and writes nothing to ``out``."""
    from mdr.cli.merge import merge

    cfg = compose_cfg(
        "merge",
        [
            f"paths.output_dir={tmp_path / 'run'}",
            f"model.encoder.name={tiny_model_dir}",
            f"out={out}",
            *extra,
        ],
    )
    with pytest.raises(InputError, match=message):
        merge(cfg)
    assert not out.exists()


@pytest.mark.slow
def test_merge_py_soup_of_a_checkpoint_with_itself_scores_like_it(
    tmp_path, tiny_run, tiny_model_dir, data_dir
):
    """merge.py writes an export of the soup; eval.py scores the export exactly like the checkpoint."""
    best = tiny_run.dir / "checkpoints" / "best.ckpt"
    out = tmp_path / "soup"
    run(
        "merge.py",
        f"hydra.run.dir={tmp_path / 'merge_run'}",
        f"model.encoder.name={tiny_model_dir}",
        "model.encoder.offline_fallback=null",
        f"checkpoints=[{best},{best}]",
        "weights=[0.5,0.5]",
        f"out={out}",
    )
    assert json.loads((out / "merge.json").read_text())["weights"] == [0.5, 0.5]
    from_ckpt, from_export = tmp_path / "ckpt_eval", tmp_path / "export_eval"
    run("eval.py", *quick_reeval_overrides(from_ckpt, tiny_model_dir, data_dir), f"ckpt={best}")
    run(
        "eval.py",
        *quick_reeval_overrides(from_export, tiny_model_dir, data_dir),
        f"model.encoder.name={out}",
    )
    a, b = (
        json.loads((d / "metrics.json").read_text())["datasets"]["tatoeba"] for d in (from_ckpt, from_export)
    )
    assert a["per_language"]["deu"]["map"] > 0 and a["per_language"] == b["per_language"]


@pytest.mark.slow
def test_wise_rows_at_the_end_of_training(tmp_path, tiny_model_dir, data_dir):
    """merge.wise=[0, 1]: lambda 0 scores like the untrained backbone, lambda 1 like the trained model; the base
    metrics are identical with merging on and off; each merged row is its own results cell, archived with the
    base, and the base cell is not done without them."""
    from mdr.cli.results_archive import archived_cell
    from mdr.runtime.run_folder import RunFolder, cell_name

    results = tmp_path / "results"
    merged_dir, plain_dir = tmp_path / "merged", tmp_path / "plain"
    run(
        "train.py",
        *quick_tiny_overrides(
            tiny_model_dir, merged_dir, data_dir, "merge.wise=[0.0,1.0]", f"results_dir={results}"
        ),
    )
    run("train.py", *quick_tiny_overrides(tiny_model_dir, plain_dir, data_dir))
    base, plain = (json.loads((d / "metrics.json").read_text()) for d in (merged_dir, plain_dir))
    assert base["datasets"] == plain["datasets"] and base["train"]["loss_last"] == plain["train"]["loss_last"]
    one, zero = (
        json.loads((merged_dir / "merged" / n / "metrics.json").read_text()) for n in ("wise1", "wise0")
    )
    assert one["datasets"]["tatoeba"]["per_language"] == base["datasets"]["tatoeba"]["per_language"]
    untrained = tmp_path / "untrained"
    run("eval.py", *quick_reeval_overrides(untrained, tiny_model_dir, data_dir))
    backbone = json.loads((untrained / "metrics.json").read_text())
    assert zero["datasets"]["tatoeba"]["per_language"] == backbone["datasets"]["tatoeba"]["per_language"]
    assert zero["datasets"]["tatoeba"]["per_language"] != base["datasets"]["tatoeba"]["per_language"]
    assert zero["merged"]["lambda"] == 0.0 and one["merged"]["kind"] == "wise"
    assert zero["provenance"] == base["provenance"]  # the run's start block: where and on what code it ran
    overrides = RunFolder(merged_dir).overrides()
    base_cell = results / cell_name(overrides)
    names = sorted(p.name for p in results.iterdir())
    assert names == sorted(
        [base_cell.name, *(cell_name([*overrides[:-2], o]) for o in ("merge=wise0", "merge=wise1"))]
    ) or (len(names) == 3 and base_cell.name in names and sum("merge=wise" in n for n in names) == 2)
    assert not any("merge.wise" in n for n in names)  # which rows a run adds is not the base cell's identity
    merged_cells = [
        [o for o in overrides if not o.startswith("merge.")] + [f"merge=wise{x}"] for x in ("0", "1")
    ]
    assert archived_cell(results, overrides, merged_cells) == base_cell
    import shutil

    shutil.rmtree(results / cell_name(merged_cells[1]))
    assert (
        archived_cell(results, overrides, merged_cells) is None
    )  # a base cell without its merged rows is not done
    assert archived_cell(results, overrides) == base_cell  # a run that adds no merged rows: done


def test_report_keys_merged_rows_apart(tmp_path):
    """A merged row (overrides: merge=wise0.5) is its own row; the merge.* settings of the base are not."""
    from mdr.report.collect import NOT_A_ROW_PREFIX

    assert "merge." in NOT_A_ROW_PREFIX and not Path("merge").name.startswith(NOT_A_ROW_PREFIX)


def test_soup_cells_are_keyed_by_their_parents():
    from mdr.cli.results_archive import soup_cell
    from mdr.modeling.merging import merge_name
    from mdr.runtime.run_folder import cell_name

    xx, xy = ["experiment=decisive", "sampler=xx", "seed=5"], ["experiment=decisive", "sampler=xy", "seed=5"]
    assert merge_name([0.5, 0.5]) == "soup" and merge_name([1 / 3] * 3) == "soup"
    assert merge_name([0.7, 0.3]) == "avg0.7_0.3" and merge_name([0.5], 0.5) == "avg0.5+pre0.5"
    assert cell_name(soup_cell([xx, xy], "soup")) == "experiment=decisive,merge=soup,sampler=xx+xy,seed=5"
    other_seed = ["experiment=decisive", "sampler=xy", "seed=6", "finetune=lora", "paths.data_dir=/x"]
    assert cell_name(soup_cell([xx, other_seed], "avg0.7_0.3")) == (
        "experiment=decisive,finetune=default+lora,merge=avg0.7_0.3,sampler=xx+xy,seed=5+6"
    )


@pytest.mark.slow
def test_merge_py_scores_and_archives_a_soup_row(tmp_path, tiny_model_dir, data_dir):
    """merge.py results_dir=...: the soup of an X-X and an X-Y run of one seed is scored with the parents' own
    eval settings and archived as the row merge=soup,sampler=xx+xy; the soup of a run with itself scores exactly
    like the run; the report keys the row by its parents and pairs it by seed; a second launch skips it."""
    from mdr.report.collect import collect

    runs = {s: tmp_path / s for s in ("xx", "xy")}
    for sampler, run_dir in runs.items():
        run(
            "train.py",
            *quick_tiny_overrides(tiny_model_dir, run_dir, data_dir, f"sampler={sampler}", "seed=3"),
        )
    best = {s: d / "checkpoints" / "best.ckpt" for s, d in runs.items()}
    results = tmp_path / "results"

    def merge_py(name, a, b):
        return run(
            "merge.py",
            f"hydra.run.dir={tmp_path / name}",
            f"model.encoder.name={tiny_model_dir}",
            "model.encoder.offline_fallback=null",
            f"paths.data_dir={data_dir}",
            f"checkpoints=[{a},{b}]",
            "weights=[0.5,0.5]",
            f"results_dir={results}",
        )

    merge_py("soup", best["xx"], best["xy"])
    merge_py("self", best["xx"], best["xx"])
    from mdr.report.collect import read_overrides

    cells = {read_overrides(p)["sampler"]: p for p in results.iterdir()}  # long names end in a hash
    assert set(cells) == {"xx+xy", "xx"}
    assert read_overrides(cells["xx+xy"])["merge"] == "soup" and read_overrides(cells["xx+xy"])["seed"] == "3"
    soup, self_soup, parent_xx, parent_xy = (
        json.loads(p.read_text())
        for p in (
            cells["xx+xy"] / "metrics.json",
            cells["xx"] / "metrics.json",
            runs["xx"] / "metrics.json",
            runs["xy"] / "metrics.json",
        )
    )
    assert self_soup["datasets"] == parent_xx["datasets"]  # scored exactly as the parent was
    lang = lambda m: m["datasets"]["tatoeba"]["per_language"]  # noqa: E731
    assert lang(soup) != lang(parent_xx) and lang(soup) != lang(parent_xy)
    assert soup["merged"]["weights"] == [0.5, 0.5] and soup["config"]["seed"] == 3
    report = collect(results)
    keys = {rv.key[0]: rv for rv in report.runs}
    assert set(keys) == {"xx", "xx+xy"} and keys["xx+xy"].seed == 3
    again = merge_py("again", best["xx"], best["xy"])
    assert (tmp_path / "again" / "SKIPPED").exists() and "soup" not in again.stdout.split("merged")[0]


def test_nan_weights_and_lambdas_are_refused():
    """A NaN passed every old check (NaN compares false) and wrote an export of NaN weights."""
    from mdr.modeling.merging import check_lambda, check_weights

    with pytest.raises(InputError, match="not a finite number"):
        check_weights([float("nan"), 1.0], 2, extrapolate=True)
    with pytest.raises(InputError, match="not a finite number"):
        check_lambda(float("nan"), extrapolate=True)
    check_weights([0.5, 0.5], 2)  # a sound soup passes


def test_wise_in_train_py_and_merge_py_are_one_implementation(trained):
    """merge.wise's interpolation and merge.py's average with a pretrained share give the same bits."""
    enc, base = trained
    ft, pre = plain_state(enc), plain_state(base)
    for lam in (0.3, 0.7, 0.123):
        wise = interpolate(pre, ft, lam)
        soup = weighted_average({"ckpt": ft, "the pretrained backbone": pre}, [lam, 1 - lam])
        assert all(torch.equal(wise[k], soup[k]) for k in ft), lam


def test_train_refuses_wise_rows_of_adapters_before_loading(tmp_path, tiny_model_dir, data_dir):
    """It failed only after training, losing the base cell's archive (issue #46)."""
    from helpers import expect_failure, in_process

    run_dir = tmp_path / "run"
    overrides = in_process(
        quick_tiny_overrides(tiny_model_dir, run_dir, data_dir, "finetune=adapter", "merge.wise=[0.5]")
    )
    overrides = [o for o in overrides if not o.startswith("model.encoder.name")] + [
        "model.encoder.name=/nope"
    ]
    expect_failure("train", "train", overrides, run_dir, InputError, "merge.wise=.*with finetune=adapter")


def fake_parent(tmp_path, tiny_run, name: str, **config) -> Path:
    """A copy of the tiny run's folder whose recorded config says ``config`` (an adapter run, a pretrained
    run); its best.ckpt is the tiny run's."""
    import shutil

    import yaml

    folder = tmp_path / name
    shutil.copytree(tiny_run.dir / ".hydra", folder / ".hydra")
    (folder / "checkpoints").mkdir()
    shutil.copy(tiny_run.dir / "checkpoints" / "best.ckpt", folder / "checkpoints" / "best.ckpt")
    path = folder / ".hydra" / "config.yaml"
    recorded = yaml.safe_load(path.read_text())
    for key, value in config.items():
        recorded[key] = {**(recorded.get(key) or {}), **value}
    path.write_text(yaml.safe_dump(recorded))
    return folder / "checkpoints" / "best.ckpt"


def test_merge_py_refuses_adapters_and_an_unknown_pretrained_end(tmp_path, tiny_run, tiny_model_dir):

    adapter = fake_parent(tmp_path, tiny_run, "adapter", finetune={"mode": "adapter"})
    dapt = fake_parent(tmp_path, tiny_run, "dapt", pretrain={"enabled": True})
    dapt2 = fake_parent(tmp_path, tiny_run, "dapt2", pretrain={"enabled": True})
    plain = tiny_run.dir / "checkpoints" / "best.ckpt"
    out = tmp_path / "out"

    def refused(extra, message):
        merge_refused(tmp_path, tiny_model_dir, out, extra, message)

    refused([f"checkpoints=[{adapter},{plain}]", "weights=[0.5,0.5]"], "was trained with finetune=adapter")
    refused(  # a pretrained parent without its start.pt: its pretrained end is unknown, not the backbone
        [f"checkpoints=[{dapt}]", "weights=[0.5]", "pretrained_weight=0.5"], "start.pt is missing"
    )
    refused(
        [f"checkpoints=[{dapt},{plain}]", "weights=[0.25,0.25]", "pretrained_weight=0.5"], "did not pretrain"
    )
    torch.save({"model.x": torch.zeros(1)}, dapt.parent / "start.pt")
    torch.save({"model.x": torch.ones(1)}, dapt2.parent / "start.pt")
    refused(
        [f"checkpoints=[{dapt},{dapt2}]", "weights=[0.25,0.25]", "pretrained_weight=0.5"],
        "started from different pretrained models",
    )
