"""Statistics over seeds: a cell's mean and the half-width of its 95% t-interval."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Cell:
    mean: float
    half_width: float | None  # None with one seed
    n: int


def t_quantile_975(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def mean_ci(values: list[float]) -> Cell:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Cell(mean, None, n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Cell(mean, t_quantile_975(n - 1) * sd / math.sqrt(n), n)
