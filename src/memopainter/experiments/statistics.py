"""Summary statistics the experiments report: means with Student t-intervals, without a statistics package."""

from __future__ import annotations

import math


def format_interval(mean: float, low: float | None, high: float | None, digits: int = 2) -> str:
    """'+0.12 [-0.05, +0.29]', or the mean alone when there is no interval (fewer than two values)."""
    if low is None or high is None:
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def t_interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """Mean and 95% Student t-interval of `values`; the bounds are None with fewer than 2 values."""
    if not values:
        raise ValueError("t_interval needs at least one value")
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None, None
    sd = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


# Student t 0.975 quantiles (two-sided 95%) for 1..30 degrees of freedom, then anchors at 40, 60, 120 and
# infinity interpolated in 1/df; standard table values, so the core install needs no statistics package.
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
_T975_TAIL = ((30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980))


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (table, to about 1e-3)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    anchors = (*_T975_TAIL, (math.inf, 1.960))
    for (df0, t0), (df1, t1) in zip(anchors, anchors[1:], strict=False):
        if df <= df1:
            x0, x1, x = 1 / df0, 1 / df1, 1 / df  # 1/inf is 0
            return t0 + (t1 - t0) * (x - x0) / (x1 - x0)
    return 1.960
