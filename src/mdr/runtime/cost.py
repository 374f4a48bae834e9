"""What a CPU run will cost, said at its start: a short fp32 matmul probe of this machine, and a work count of
the run (tokens encoded, forward and backward, times the encoder's non-embedding parameters) scaled against the
default run's measured wall time.

The default ``python train.py`` took, on 2-core CPUs (matmul probe in GFLOP/s -> minutes): an Intel Xeon with
AVX-512 (~320 -> 8.6), an AMD EPYC with AVX-512 (185 -> 9.95), a first-generation AMD EPYC with AVX2 only
(~46 -> 30.5). Wall time is not matmul-bound at the fast end, so it is fitted as ``fixed + per_gflop / probe``
minutes (least squares over the three): predictions within 8% of each. Other runs scale by their work
against the default run's ``REFERENCE_UNITS``. An estimate, said as one; GPUs are not estimated.
"""

from __future__ import annotations

import time

import torch

FIXED_MIN, PER_GFLOP_MIN = (
    4.17,
    1206.0,
)  # the default run's minutes: FIXED_MIN + PER_GFLOP_MIN / probe GFLOP/s
REFERENCE_UNITS = 2.344e13  # work_units of the default run (tests/test_cost.py recomputes it from conf/)
BACKWARD_FACTOR = 3.0  # a training token costs a forward and a backward pass (about twice the forward)
CHARS_PER_TOKEN = 4.0  # a rough SentencePiece rate over the sets' languages; only ratios between runs matter


def matmul_gflops(seconds: float = 0.3, n: int = 1024) -> float:
    """fp32 GFLOP/s of an n x n matmul on this machine's CPU threads (draws no random numbers)."""
    a = torch.ones(n, n)
    b = torch.ones(n, n)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def tokens(texts, max_length: int) -> float:
    """Tokens an encoder sees for ``texts``: characters / CHARS_PER_TOKEN, each text capped at ``max_length``."""
    return float(sum(min(len(t) / CHARS_PER_TOKEN, max_length) + 2 for t in texts))


def work_units(train_tokens: float, eval_tokens: float, nonembedding_params: int) -> float:
    return (BACKWARD_FACTOR * train_tokens + eval_tokens) * nonembedding_params


def estimate_minutes(units: float, gflops: float) -> float:
    return units / REFERENCE_UNITS * (FIXED_MIN + PER_GFLOP_MIN / gflops)
