"""Typed configs: every experiment composes under every entry point against the schemas (mdr.cli.schema), and
a mistyped key or a value of the wrong type inside each typed group is refused, by every entry point that has
the group, before any data or model loads; through train.py / eval.py / merge.py that refusal is one line and
exit 2."""

from pathlib import Path

import pytest
from helpers import ROOT, compose_cfg, run
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from mdr.cli.common import make
from mdr.cli.schema import check_settings
from mdr.eval.attack import AttackSettings
from mdr.runtime.errors import InputError

EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
EVAL_EXPERIMENTS = ["adversarial", "robustness"]  # the ones eval.py takes; the rest configure training
ENTRIES = [("train", e) for e in [None, *EXPERIMENTS]] + [("eval", e) for e in [None, *EVAL_EXPERIMENTS]]
ENTRIES += [("merge", None)]
PATHS = ["paths.data_dir=/d", "paths.output_dir=/o"]
# (group, a mistyped key, a value of the wrong type) for every typed group composed at the entry point
TYPED = {
    "eval": ("eval.batch_sise=8", "eval.batch_size=abc"),
    "progress": ("progress.every_n_step=5", "progress.every_s=abc"),
    "compute": ("compute.lenght_chunks=2", "compute.length_chunks=abc"),
    "merge": ("merge.wisee=[0.5]", "merge.wise=abc"),
    "preemption": ("preemption.requeu=true", "preemption.requeue=maybe"),
}
GROUPS = {"train": ["eval", "progress", "compute", "merge", "preemption"], "eval": ["eval", "progress"],
          "merge": ["progress"]}  # fmt: skip


def _compose(entry, experiment, *overrides):
    return compose_cfg(entry, [*PATHS, *([f"experiment={experiment}"] if experiment else []), *overrides])


@pytest.mark.parametrize("entry, experiment", ENTRIES, ids=[f"{e}-{x}" for e, x in ENTRIES])
def test_every_experiment_composes_and_refuses_mistyped_keys_in_each_group(entry, experiment):
    cfg = _compose(entry, experiment)
    check_settings(cfg)  # the composed defaults are in range
    for group in GROUPS[entry]:
        for bad in TYPED[group]:
            with pytest.raises((HydraException, OmegaConfBaseException)) as err:
                _compose(entry, experiment, bad)
            assert bad.split("=")[0].split(".")[-1] in str(err.value) + str(err.value.__cause__), bad
    if "eval" in GROUPS[entry]:  # the mapping-valued settings are typed when the settings are made
        shards = _compose(entry, experiment, "eval.corpus_shards={shard_size: 100, nprob: 4}")
        with pytest.raises(InputError, match=r"eval.corpus_shards has unknown key\(s\) \['nprob'\]"):
            make(shards.eval)
        typed = make(_compose(entry, experiment, "eval.corpus_shards={shard_size: 100, nprobe: 4}").eval)
        assert typed.corpus_shards.nprobe == 4 and typed.corpus_shards.nlist == 1024  # the one default
        with pytest.raises(InputError, match=r"eval.corpus_shards.shard_size='x': expected int"):
            make(_compose(entry, experiment, "eval.corpus_shards={shard_size: x}").eval)
        with pytest.raises(InputError, match=r"eval.attack has unknown key\(s\) \['budget'\]"):
            AttackSettings.from_config({"budget": [1]})


def test_the_typed_defaults_compose_to_the_values_the_yaml_held():
    """The defaults moved from YAML into the schemas: composing gives what the YAML files said before."""
    cfg = _compose("train", "decisive")
    assert (cfg.compute.length_chunks, cfg.compute.grad_cache_chunk, cfg.compute.cpu_fp32_max_steps) == (
        4,
        32,
        None,
    )
    assert list(cfg.merge.wise) == [] and cfg.merge.extrapolate is False and cfg.preemption.requeue is False
    assert (cfg.progress.mode, cfg.progress.every_n_steps, cfg.progress.every_s) == ("auto", 20, 60.0)
    assert (cfg.eval.batch_size, cfg.eval.run_files, cfg.eval.run_depth, cfg.eval.search) == (
        64,
        "multi",
        100,
        "torch",
    )
    assert cfg.eval.tatoeba_langs == "all" and list(cfg.eval.datasets) == ["xquad_r", "tatoeba"]
    assert _compose("train", None).compute.cpu_fp32_max_steps == 80


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.datamodule.batch_size=abc", "data.datamodule.batch_size='abc': expected an integer"),
        ("sampler.alpha=abc", "sampler.alpha='abc': expected a number"),
        ("trainer.max_steps=abc", "trainer.max_steps='abc': expected an integer"),
        ("optim.lr=-1", "optim.lr=-1: must be > 0"),
        ("data.datamodule.num_workers=-1", "data.datamodule.num_workers=-1: must be >= 0"),
        ("compute.lenght_chunks=2", "Key 'lenght_chunks' not in 'ComputeSettings'"),
        ("eval.corpus_shards={shard_size: 10, nprob: 4}", "eval.corpus_shards has unknown key(s) ['nprob']"),
    ],
)
def test_train_py_refuses_bad_settings_in_one_line(tmp_path: Path, override, message):
    proc = run("train.py", override, f"hydra.run.dir={tmp_path / 'run'}", check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("train.py: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert (
        not (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "run" / "checkpoints").exists()
    )


@pytest.mark.parametrize("script", ["eval.py", "merge.py"])
def test_the_other_entry_points_refuse_a_mistyped_progress_key_in_one_line(tmp_path, script):
    proc = run(script, "progress.every_n_step=5", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"{script}: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "every_n_step" in errors[0], proc.stderr[-2000:]


def test_a_batch_larger_than_the_training_ids_is_one_line(tmp_path):
    proc = run(
        "train.py", "data.datamodule.batch_size=100000", f"hydra.run.dir={tmp_path / 'run'}", check=False
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("train.py: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert (
        "global batch size 100000 is larger than the" in errors[0]
        and "lower data.datamodule.batch_size" in errors[0]
    )
