"""The start-of-run cost estimate: its calibration reproduces the measured default-run times, its reference
work is the default run's as conf/ defines it today, and the probe leaves the seeded RNG alone."""

import pytest
import torch
from helpers import compose_cfg

from mdr.runtime.cost import REFERENCE_UNITS, estimate_minutes, matmul_gflops

# the default `python train.py` on 2-core CPUs: (matmul probe GFLOP/s, measured minutes); README, cost.py
MEASURED = [(320, 8.58), (185, 9.95), (46, 30.47)]


@pytest.mark.parametrize("gflops, minutes", MEASURED)
def test_the_calibration_reproduces_each_measured_default_run(gflops, minutes):
    assert estimate_minutes(REFERENCE_UNITS, gflops) == pytest.approx(minutes, rel=0.10)
    assert estimate_minutes(2 * REFERENCE_UNITS, gflops) == pytest.approx(
        2 * estimate_minutes(REFERENCE_UNITS, gflops)
    )


def test_the_probe_draws_no_random_numbers():
    state = torch.get_rng_state()
    assert matmul_gflops(seconds=0.05, n=128) > 0
    assert torch.equal(torch.get_rng_state(), state)


def test_reference_work_is_the_default_runs(tmp_path):
    """REFERENCE_UNITS is what the default config counts today (re-measure the default run if this fails)."""
    from mdr.cli.common import make
    from mdr.cli.train import check_config
    from mdr.training.cost_estimate import run_work

    cfg = compose_cfg("train", [f"paths.output_dir={tmp_path}"])
    plan = check_config(cfg)
    dm = make(cfg.data.datamodule, sampler_factory=make(cfg.sampler, _partial_=True), seed=cfg.seed)
    dm.load_data()
    encoder = make(cfg.model.encoder)
    work = run_work(encoder, dm, int(cfg.compute.cpu_fp32_max_steps), 1, plan, evaluations=1)
    assert work == pytest.approx(REFERENCE_UNITS, rel=0.01)


def test_a_run_says_its_cost_at_the_start(tiny_run):
    line = next(line for line in tiny_run.output.splitlines() if "cost estimate: about" in line)
    assert "GFLOP/s" in line and "training steps" in line
    import json

    estimate = json.loads((tiny_run.dir / "metrics.json").read_text())["train"]["cost_estimate"]
    assert estimate["minutes"] >= 0 and estimate["probe_gflops"] > 0
