"""Killed runs resume exactly; the same seed gives the same metrics twice."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, expect_failure, in_process, quick_tiny_overrides, run


def overrides(model_dir, run_dir, data_dir):
    return quick_tiny_overrides(
        model_dir,
        run_dir,
        data_dir,
        "data.datamodule.steps_per_epoch=12",
        "trainer.max_epochs=2",
        "checkpoint.every_n_train_steps=2",
        "log_batches=true",
    )


def batches(run_dir):
    """The last-trained version of every step (steps after the last checkpoint are re-run on resume)."""
    by_step = {}
    for line in (run_dir / "batches.jsonl").read_text().splitlines():
        row = json.loads(line)
        by_step[row["step"]] = (row["kind"], row["query_langs"], row["passage_langs"], row["ids"])
    return [by_step[s] for s in sorted(by_step)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir, data_dir):
    run_dir = tmp_path_factory.mktemp("full")
    run("train.py", *overrides(tiny_model_dir, run_dir, data_dir))
    return run_dir


@pytest.mark.slow
def test_same_seed_same_metrics(uninterrupted, tmp_path, tiny_model_dir, data_dir):
    again = tmp_path / "again"
    run("train.py", *overrides(tiny_model_dir, again, data_dir))
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (uninterrupted, again))
    assert a["headline"] == b["headline"]
    assert a["datasets"]["tatoeba"]["per_language"]["deu"]["map"] > 0  # a real ranking, compared exactly
    assert a["datasets"]["tatoeba"]["per_language"] == b["datasets"]["tatoeba"]["per_language"]
    assert a["train"]["loss_last"] == b["train"]["loss_last"]
    assert batches(uninterrupted) == batches(again)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(uninterrupted, tmp_path, tiny_model_dir, data_dir):
    run_dir = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *overrides(tiny_model_dir, run_dir, data_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log, ckpt = run_dir / "batches.jsonl", run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 17 and ckpt.exists():
            break  # in the second epoch, past a step-16 checkpoint
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(log.read_text().splitlines())
    assert killed_at < 24 and not (run_dir / "metrics.json").exists()
    run("train.py", *overrides(tiny_model_dir, run_dir, data_dir), "ckpt_path=last")
    assert batches(run_dir) == batches(uninterrupted)  # every step's ids, languages and batch type
    full = json.loads((uninterrupted / "metrics.json").read_text())
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert resumed["train"]["steps"] == full["train"]["steps"] == 24
    # CPU, same seed, RNG states restored from the checkpoint: the metrics are bit-identical (measured)
    for lang, row in full["datasets"]["tatoeba"]["per_language"].items():
        assert resumed["datasets"]["tatoeba"]["per_language"][lang] == row, lang


def test_resume_without_checkpoint_fails_clearly(tmp_path, tiny_model_dir, data_dir):
    run_dir = tmp_path / "nothing"
    resume = in_process([*overrides(tiny_model_dir, run_dir, data_dir), "ckpt_path=last"])
    expect_failure("train", "train", resume, run_dir, FileNotFoundError, "no checkpoint to resume")
