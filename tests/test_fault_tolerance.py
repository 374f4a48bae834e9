"""Killed and stopped runs resume exactly; a SIGTERM stops a run visibly; the same seed gives the same metrics."""

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, expect_failure, in_process, quick_tiny_overrides, run

# 12 steps an epoch, 2 epochs, a validation every 5 batches of an epoch (steps 5, 10, 12, 17, 22, 24)
STEPS_PER_EPOCH, EPOCHS = 12, 2


# Validation every 5 global steps (5, 10, 15, 20), across epochs: the schedule of the fp32 step cap
# (check_val_every_n_epoch=null), where Lightning counts batches over the whole run.
GLOBAL_VALIDATION = ("+trainer.check_val_every_n_epoch=null", "trainer.val_check_interval=5")


def overrides(model_dir, run_dir, data_dir, *extra):
    return quick_tiny_overrides(
        model_dir,
        run_dir,
        data_dir,
        f"data.datamodule.steps_per_epoch={STEPS_PER_EPOCH}",
        f"trainer.max_epochs={EPOCHS}",
        "trainer.val_check_interval=5",
        "checkpoint.every_n_train_steps=1",
        "log_batches=true",
        *extra,
    )


def env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}


def batches(run_dir):
    """The last-trained version of every step (steps after the last checkpoint are re-run on resume)."""
    by_step = {}
    for line in (run_dir / "batches.jsonl").read_text().splitlines():
        row = json.loads(line)
        by_step[row["step"]] = (row["kind"], row["query_langs"], row["passage_langs"], row["ids"])
    return [by_step[s] for s in sorted(by_step)]


def step_losses(run_dir):
    """train/loss per step from every CSV part (a resume keeps the earlier curves as metrics.part<N>.csv)."""
    out = {}
    for path in sorted((run_dir / "csv").glob("metrics*.csv")):
        for row in csv.DictReader(path.open()):
            if row.get("train/loss"):
                out[int(row["step"])] = float(row["train/loss"])
    return out


def start(run_dir, *args, env_extra=None):
    """train.py in its own session (process group), so a test can signal the whole group as SLURM does."""
    log = run_dir.parent / f"{run_dir.name}.log"
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env={**env(), **(env_extra or {})},
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    ), log


def process_group(pgid):
    """The pids of every live process in a process group (Linux /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def wait_for_step(proc, run_dir, step):
    """Block until the batch of ``step`` has started (with checkpoint.every_n_train_steps=1, ``last.ckpt`` is
    written at the start of each batch, before the batch log's line)."""
    log = run_dir / "batches.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        written = (
            log.read_text().rpartition("\n")[0] if log.exists() else ""
        )  # a line still being written waits
        if any(json.loads(x)["step"] >= step for x in written.splitlines()):
            return
        time.sleep(0.01)
    raise AssertionError(f"the run ended (rc {proc.poll()}) before step {step}")


def loss_history(run_dir):
    """Every step's training loss, as the final last.ckpt carries it (restored and continued across resumes)."""
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return state["mdr_loss_history"]


def assert_same_run(resumed_dir, full_dir):
    full = json.loads((full_dir / "metrics.json").read_text())
    resumed = json.loads((resumed_dir / "metrics.json").read_text())
    losses_full, losses_resumed = loss_history(full_dir), loss_history(resumed_dir)
    assert len(losses_full) == STEPS_PER_EPOCH * EPOCHS
    differing = [s for s, (a, b) in enumerate(zip(losses_full, losses_resumed)) if a != b]
    assert not differing, (
        f"the training loss differs from the uninterrupted run from step {min(differing)} on"
    )
    assert losses_resumed == losses_full
    assert batches(resumed_dir) == batches(full_dir)  # every step's ids, languages and batch type
    assert resumed["train"]["steps"] == full["train"]["steps"] == STEPS_PER_EPOCH * EPOCHS
    assert resumed["train"]["loss_first"] == full["train"]["loss_first"]
    assert resumed["train"]["loss_last"] == full["train"]["loss_last"]
    assert resumed["train"]["best_score"] == full["train"]["best_score"]
    assert full["datasets"]["tatoeba"]["per_language"]["deu"]["map"] > 0  # a real ranking, compared exactly
    assert resumed["datasets"]["tatoeba"]["per_language"] == full["datasets"]["tatoeba"]["per_language"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir, data_dir):
    run_dir = tmp_path_factory.mktemp("full")
    run("train.py", *overrides(tiny_model_dir, run_dir, data_dir))
    return run_dir


@pytest.fixture(scope="module")
def uninterrupted_global(tmp_path_factory, tiny_model_dir, data_dir):
    run_dir = tmp_path_factory.mktemp("full_global")
    run("train.py", *overrides(tiny_model_dir, run_dir, data_dir, *GLOBAL_VALIDATION))
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


# SIGKILL once this step's batch has started; the run resumes from the checkpoint written at its start
KILL_POINTS = {
    "inside the first epoch, before any validation": 3,
    "right after a validation (global step 5)": 5,
    "at the epoch boundary": STEPS_PER_EPOCH,
    "inside the second epoch, after the validation at step 15": 16,
}


@pytest.mark.slow
def test_sigkill_at_any_step_then_resume_is_bit_identical(
    uninterrupted_global, tmp_path, tiny_model_dir, data_dir
):
    """One run killed four times, each time resumed, with validation every 5 global steps: every step's loss,
    batch, the best checkpoint's score and the final metrics equal the uninterrupted run's (a stray draw from
    the RNG, or a validation moved by one step, shows as a loss that differs from that step on). The SIGTERM
    test below covers validation counted within each epoch."""
    run_dir = tmp_path / "killed"
    args = overrides(tiny_model_dir, run_dir, data_dir, *GLOBAL_VALIDATION)
    for i, (where, step) in enumerate(KILL_POINTS.items()):
        proc, _ = start(run_dir, *args, *(["ckpt_path=last"] if i else []))
        wait_for_step(proc, run_dir, step)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (run_dir / "metrics.json").exists(), where
        assert sorted(p.name for p in (run_dir / "checkpoints").glob("last*")) == ["last.ckpt"], where
    run("train.py", *args, "ckpt_path=last")
    assert_same_run(run_dir, uninterrupted_global)


@pytest.mark.slow
def test_sigterm_stops_visibly_requeues_and_resumes(uninterrupted, tmp_path, tiny_model_dir, data_dir):
    """SIGTERM (a SLURM preemption) to the run's whole process group, DataLoader worker included, as SLURM
    signals every process of a job step: one last.ckpt, FAILED with the resume command, exit 128 + 15, SLURM
    asked to requeue (preemption.requeue=true, a stand-in scontrol); the resume command then finishes the run
    exactly (the uninterrupted run loads in the main process: workers change nothing in the stream), with a
    progress line that counts the whole run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    run_dir = tmp_path / "stopped"
    args = overrides(
        tiny_model_dir,
        run_dir,
        data_dir,
        "checkpoint.every_n_train_steps=null",
        "preemption.requeue=true",
        "progress.mode=lines",
        "progress.every_n_steps=3",
        "data.datamodule.num_workers=1",
    )
    slurm = {"SLURM_JOB_ID": "4242", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc, log = start(run_dir, *args, env_extra=slurm)
    wait_for_step(proc, run_dir, 7)
    assert len(process_group(proc.pid)) >= 2, (
        "the DataLoader worker should be running beside the main process"
    )
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    failed = (run_dir / "FAILED").read_text()
    assert failed.startswith("TrainingStopped: stopped by signal SIGTERM at step ")
    step = int(failed.split("at step ")[1].split(";")[0])
    assert 8 <= step < STEPS_PER_EPOCH * EPOCHS
    assert "SLURM requeued the job" in failed
    assert calls.read_text().split() == ["requeue", "4242"]
    command = failed.split("resume with: ", 1)[1].strip()
    assert command in log.read_text()  # the last log line says the same
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "eval").exists()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]

    words = shlex.split(command)
    assert words[:2] == ["python", "train.py"] and words[-1] == "ckpt_path=last"
    assert f"hydra.run.dir={run_dir}" in words
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *words[2:]],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (run_dir / "FAILED").exists()
    assert_same_run(run_dir, uninterrupted)
    curves = step_losses(run_dir)  # the curves before the stop are kept beside the resumed run's
    assert set(curves) == set(step_losses(uninterrupted)) and curves == step_losses(uninterrupted)
    output = resumed.stdout + resumed.stderr
    assert "not resumable" not in output and "(resumed) steps" not in output
    total = STEPS_PER_EPOCH * EPOCHS
    lines = [x for x in output.splitlines() if "mdr.progress" in x and " train " in x and "steps (" in x]
    assert lines and all(f"/{total} steps (" in x and f"resumed at step {step}" in x for x in lines), lines
    first = int(lines[0].split(" train ")[1].split("/")[0])
    assert first > step and f"({100 * first / total:.0f}%)" in lines[0]


def test_resume_without_checkpoint_fails_clearly(tmp_path, tiny_model_dir, data_dir):
    run_dir = tmp_path / "nothing"
    resume = in_process([*overrides(tiny_model_dir, run_dir, data_dir), "ckpt_path=last"])
    expect_failure("train", "train", resume, run_dir, FileNotFoundError, "no checkpoint to resume")


def test_resume_auto_without_checkpoint_starts_fresh(tmp_path):
    from mdr.training.checkpointing import resolve_resume

    assert resolve_resume("auto", tmp_path) is None
    torch.save({"state_dict": {}}, tmp_path / "last.ckpt")
    assert resolve_resume("auto", tmp_path) == str(tmp_path / "last.ckpt")
    assert resolve_resume("last", tmp_path) == str(tmp_path / "last.ckpt")


def test_resume_command_keeps_the_run_overrides_and_drops_its_folder():
    from mdr.training.preemption import resume_command

    cmd = resume_command(Path("/runs/a b"), ["sampler=xy", "ckpt_path=x", "hydra.run.dir=/old", "seed=3"])
    assert shlex.split(cmd) == [
        "python",
        "train.py",
        "sampler=xy",
        "seed=3",
        "hydra.run.dir=/runs/a b",
        "ckpt_path=last",
    ]


def test_requeue_names_the_array_task(monkeypatch):
    from mdr.training import preemption

    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert preemption.slurm_job_id() == "7_3"
    seen = []
    monkeypatch.setattr(preemption.subprocess, "call", lambda cmd: seen.append(cmd) or 0)
    assert preemption.requeue_slurm_job() and seen == [["scontrol", "requeue", "7_3"]]
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
    monkeypatch.delenv("SLURM_JOB_ID")
    assert not preemption.requeue_slurm_job()  # not a SLURM job: nothing to requeue


@pytest.mark.slow
def test_a_run_stopped_in_its_evaluation_resumes_there(tmp_path, tiny_model_dir, data_dir):
    """A sweep cell killed in its (hour-long) evaluation: ckpt_path=auto in its folder does not train again
    (checkpoints/TRAINED.json), keeps every set that had finished and computes the rest, and its metrics equal
    the uninterrupted run's; keep=best cells have no last.ckpt to resume from."""
    run_dir = tmp_path / "cell"
    args = quick_tiny_overrides(
        tiny_model_dir,
        run_dir,
        data_dir,
        "keep=best",
        "eval.datasets=[mlqa_r,tatoeba]",
        "eval.perturb=[{kind: char_noise, rate: 0.1}]",
    )
    run("train.py", *args)
    first = json.loads((run_dir / "metrics.json").read_text())
    assert (run_dir / "checkpoints" / "TRAINED.json").is_file() and not (
        run_dir / "checkpoints" / "last.ckpt"
    ).exists()
    stopped = "mlqa_r~char_noise@0.1"  # the set in progress when the run was killed: its record never written
    (run_dir / "eval" / stopped / "set_record.json").unlink()
    (run_dir / "metrics.json").unlink()
    best = run_dir / "checkpoints" / "best.ckpt"
    mtime = best.stat().st_mtime_ns
    run("train.py", *args, "ckpt_path=auto")
    again = json.loads((run_dir / "metrics.json").read_text())
    assert best.stat().st_mtime_ns == mtime  # not trained again
    assert again["train"] == first["train"] and list(again["datasets"]) == list(first["datasets"])
    assert again["datasets"] == first["datasets"]  # the recomputed set equals the uninterrupted run's
    for kept in ("mlqa_r", "tatoeba"):
        assert again["timing_s"][kept] == first["timing_s"][kept]  # kept, not computed again
    assert again["timing_s"][stopped] != first["timing_s"][stopped]
