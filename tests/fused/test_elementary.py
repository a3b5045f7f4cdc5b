"""The vectorizable exp and log (fused/elementary.py) against exact values in float32 ulps, and at the edges."""
import math

import numpy as np
import pytest
from numba import njit

from nextchar.fused.elementary import exp_of, log_of


@njit(cache=True)
def _exp_all(x, out):
    for q in range(x.size):
        out[q] = exp_of(x[q])


@njit(cache=True)
def _log_all(x, out):
    for q in range(x.size):
        out[q] = log_of(x[q])


def _ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in units of float32's spacing at the exact value (exact in float64)."""
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / spacing


def _run(kernel, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    kernel(x, out)
    return out


def test_float32_exp_is_within_an_ulp_and_saturates_at_cephes_clamp():
    rng = np.random.default_rng(0)
    x = rng.uniform(-87, 88, 200_000).astype(np.float32)
    assert _ulps(_run(_exp_all, x), np.exp(x.astype(np.float64))).max() < 1.5
    edges = np.array([0, -0.0, -1e4, -np.inf], np.float32)
    np.testing.assert_array_equal(_run(_exp_all, edges), [1, 1, 0, 0])
    top = _run(_exp_all, np.array([89, 1e4, np.inf], np.float32))  # clamped at 88.38: finite, not inf
    assert (top == top[0]).all() and 2e38 < top[0] < np.finfo(np.float32).max
    assert np.isnan(_run(_exp_all, np.array([np.nan], np.float32))).all()


def test_float32_log_is_within_an_ulp_over_the_whole_range_and_right_at_the_edges():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(0.5, 8, 100_000), np.exp(rng.uniform(-87, 88, 100_000)),
                        rng.uniform(1e-45, 1.1e-38, 10_000)]).astype(np.float32)  # the last: subnormal
    assert _ulps(_run(_log_all, x), np.log(x.astype(np.float64))).max() < 1.0
    edges = np.array([1, 0, -0.0, np.inf], np.float32)
    np.testing.assert_array_equal(_run(_log_all, edges), [0, -np.inf, -np.inf, np.inf])
    assert np.isnan(_run(_log_all, np.array([-1, -np.inf, np.nan], np.float32))).all()


@pytest.mark.parametrize("kernel,reference", [(_exp_all, math.exp), (_log_all, math.log)])
def test_float64_is_libms(kernel, reference):
    x = np.random.default_rng(2).uniform(0.01, 50, 1000)
    np.testing.assert_array_equal(_run(kernel, x), [reference(v) for v in x])


def test_uncompiled_they_are_numpys():
    x = np.float32(3)
    assert exp_of(x) == np.exp(x) and log_of(x) == np.log(x)
