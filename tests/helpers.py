"""Helpers the test modules share: subprocess runs of train.py / eval.py with tiny-model overrides, and the
small Lightning pieces (a 3-language MLQA-R datamodule, a quiet CPU Trainer) the DDP tests build."""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script, *overrides, cwd=ROOT, check=True, env_extra=None, env_drop=()):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    env.update(env_extra or {})
    for key in env_drop:
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def run_piped(script, *overrides, cwd=ROOT):
    """Run like ``nohup python train.py ... > log``: stdout piped, stderr into it. Returns the exit code and
    each output line with whether the process was still running when the line was read."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / script), *overrides],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = [(line, proc.poll() is None) for line in proc.stdout]
    return proc.wait(timeout=900), lines


# The shared tiny run (conftest ``tiny_run``) also prints what the progress test reads: a progress line every
# 5 steps (by count only, so their number is known).
SHARED_RUN_EXTRAS = ("progress.every_n_steps=5", "progress.every_s=1000")


def tiny_model_overrides(model_dir, data_dir):
    """The tiny random model and the shared data, for either entry point (subprocess or composed in-process)."""
    return [
        f"paths.data_dir={data_dir}",
        f"model.encoder.name={model_dir}",
        "model.encoder.offline_fallback=null",
    ]


def tiny_overrides(model_dir, run_dir, data_dir):
    return [
        f"hydra.run.dir={run_dir}",
        *tiny_model_overrides(model_dir, data_dir),
        "model.encoder.freeze_embeddings=false",
        "model.encoder.query_max_length=32",
        "model.encoder.passage_max_length=48",
        "data.train.langs=[de,en,es]",
        "data.datamodule.batch_size=16",
        "data.datamodule.num_workers=0",
        "data.datamodule.steps_per_epoch=20",
        "data.datamodule.val_batches=2",
        "data.datamodule.dev_max_ids=40",
        "trainer.max_epochs=2",
        "trainer.val_check_interval=1.0",
        "trainer.log_every_n_steps=1",
        "optim.lr=1e-3",
        "optim.warmup_ratio=0.05",
        "eval.datasets=[mlqa_r]",
        "eval.run_files=multi",
        "eval.batch_size=256",
        "eval.precision=fp32",
        "trainer.precision=32-true",
    ]


# A short final evaluation for the end-to-end runs whose point is not what MLQA-R measures (adapters reload,
# resume, same seed, pretraining, GradCache, ...): Tatoeba in 2 languages, 4,000 sentences encoded (~1 s)
# instead of MLQA-R's 24,700 and 132 settings (~15 s). Their metrics are still compared bit for bit.
QUICK_EVAL = ("eval.datasets=[tatoeba]", "eval.tatoeba_langs=[deu,spa]", "eval.run_files=none")


def with_overrides(base, *extra):
    """``base`` with each ``key=value`` of ``extra`` replacing the same key's entry (Hydra takes one value)."""
    keys = {o.split("=", 1)[0] for o in extra}
    return [o for o in base if o.split("=", 1)[0] not in keys] + list(extra)


def quick_tiny_overrides(model_dir, run_dir, data_dir, *extra):
    """:func:`tiny_overrides` with :data:`QUICK_EVAL` and no export."""
    return with_overrides(
        tiny_overrides(model_dir, run_dir, data_dir), *QUICK_EVAL, "export.enabled=false", *extra
    )


def tiny_eval_overrides(out, model_dir, data_dir, *extra):
    """eval.py on the tiny model, fp32 and one big batch, so its numbers equal training's own evaluation."""
    return [
        f"hydra.run.dir={out}",
        *tiny_model_overrides(model_dir, data_dir),
        "eval.batch_size=256",
        "eval.precision=fp32",
        *extra,
    ]


def quick_reeval_overrides(out, model_dir, data_dir, *extra):
    """eval.py scoring what :data:`QUICK_EVAL` scored at the end of training."""
    return with_overrides(reeval_overrides(out, model_dir, data_dir), "data=tatoeba", *QUICK_EVAL[1:], *extra)


def reeval_overrides(out, model_dir, data_dir, *extra):
    """eval.py with the tiny training runs' lengths, scoring MLQA-R like training's final evaluation did."""
    return tiny_eval_overrides(
        out,
        model_dir,
        data_dir,
        "model.encoder.query_max_length=32",
        "model.encoder.passage_max_length=48",
        "data=mlqa_r",
        "eval.run_files=none",
        *extra,
    )


def tiny_datamodule(data_dir, encoder, steps_per_epoch, seed, batch_size=6):
    """Hybrid batches over MLQA-R's de/en/es, no validation: what the multi-process tests train on."""
    from mdr.training.datamodule import RetrievalDataModule
    from mdr.training.samplers import HybridSampler

    dm = RetrievalDataModule(
        {"kind": "lareqa", "name": "mlqa_r", "langs": ["de", "en", "es"]},
        str(data_dir),
        HybridSampler,
        encoder=encoder,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        val_batches=0,
        seed=seed,
    )
    return dm


def cpu_trainer(max_steps, callbacks, devices=1, **kwargs):
    """A quiet CPU Trainer; devices=2 spawns two gloo ranks. The datamodule's samplers shard, not Lightning."""
    if devices > 1:
        kwargs.setdefault("strategy", "ddp_spawn")
        kwargs.setdefault("enable_checkpointing", False)
    return L.Trainer(
        accelerator="cpu",
        devices=devices,
        max_steps=max_steps,
        logger=False,
        enable_progress_bar=False,
        use_distributed_sampler=False,
        limit_val_batches=0,
        callbacks=callbacks,
        **kwargs,
    )


# ---- in-process runs of the entry points (bad input: a clear error costs no subprocess start-up) ----
def compose_cfg(name, overrides, return_hydra_config=False):
    from hydra import compose, initialize_config_dir

    from mdr.cli.schema import register

    register()  # the typed schemas, as each entry point registers them before composing
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def in_process(overrides):
    """Subprocess overrides for a composed config: the run folder is ``paths.output_dir`` (no Hydra runtime)."""
    return [o.replace("hydra.run.dir=", "paths.output_dir=", 1) for o in overrides]


def results_snapshot(run_dir: Path) -> dict:
    """Hashes of a run folder's result files. provenance.json is not a result: it records, from the first
    moment, what a run (a failed one too) ran on."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in run_dir.rglob("*")
        if p.is_file() and p.suffix in (".json", ".ckpt", ".npz", ".csv") and p.name != "provenance.json"
    }


def expect_failure(entry, cfg_name, overrides, run_dir, exc, message):
    """``train``/``eval`` in-process must raise ``exc`` matching ``message``, write or change no result, and
    leave a FAILED marker that names the reason."""
    from mdr.cli.evaluate import evaluate
    from mdr.cli.train import train

    run_dir.mkdir(parents=True, exist_ok=True)
    before = results_snapshot(run_dir)
    cfg = compose_cfg(cfg_name, overrides)
    with pytest.raises(exc, match=message):
        (train if entry == "train" else evaluate)(cfg)
    assert results_snapshot(run_dir) == before, "a failed run wrote or changed results"
    assert not (run_dir / "metrics.json").exists() or "metrics.json" in before
    assert not list(run_dir.glob("checkpoints/*.ckpt")) or any(k.endswith(".ckpt") for k in before)
    assert (run_dir / "FAILED").read_text().strip(), "the FAILED marker names the reason"


def run_entry(script, *args):
    """An entry point as a user runs it (offline), its output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"},
    )


def assert_one_line(proc, prog, message):
    """Bad input as a user sees it: exit 2, no traceback, exactly one '<prog>: error: ' line matching ``message``."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [x for x in proc.stderr.splitlines() if x.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert re.search(message, errors[0]), errors[0]


def bad_eval_overrides(run_dir, tiny_model_dir, data_dir, *extra):
    """eval.py in-process on the tiny model and MLQA-R, no TREC runs: the bad-input cases' base."""
    return [
        f"paths.output_dir={run_dir}",
        *tiny_model_overrides(tiny_model_dir, data_dir),
        "data=mlqa_r",
        "eval.run_files=none",
        *extra,
    ]
