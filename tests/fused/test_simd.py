"""fused/simd.py: a few lanes of a row as one LLVM vector; each operation the scalar one on every lane."""
import numpy as np
import pytest
from numba import njit

from nextchar.fused.lanes import lane_tag
from nextchar.fused.simd import load, store, vector_width


@njit(cache=True)
def _lane_ops(a, b, out, r, c):
    """out[r, c : c + n] = (a + b) * a - b over one Vec, from a, b at the same place."""
    x, y = load(a, r, c), load(b, r, c)
    store(out, r, c, (x + y) * x - y)
    return vector_width(a)


@pytest.mark.parametrize("dtype,lanes", [(np.float32, 8), (np.float64, 4)])
def test_a_vec_computes_what_the_scalars_compute_lane_by_lane(dtype, lanes):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 40)).astype(dtype), rng.standard_normal((3, 40)).astype(dtype)
    out = np.zeros_like(a)
    assert _lane_ops(a, b, out, 1, 5) == lanes
    expected = np.zeros_like(a)
    expected[1, 5:5 + lanes] = (a[1, 5:5 + lanes] + b[1, 5:5 + lanes]) * a[1, 5:5 + lanes] - b[1, 5:5 + lanes]
    assert np.array_equal(out, expected)  # bit for bit, and nothing outside the Vec written


def test_a_vec_honours_a_views_row_stride():
    a = np.arange(60, dtype=np.float32).reshape(6, 10)
    b = np.zeros_like(a)
    out = np.zeros_like(a)
    _lane_ops(a[::2], b[::2], out[::2], 1, 2)  # row 1 of the view is row 2 of a
    assert np.array_equal(out[2, 2:10], a[2, 2:10] ** 2) and not out[[0, 1, 3, 4, 5]].any()


def test_a_block_of_lanes_is_one_model_or_a_multiple_of_32():
    assert lane_tag(1) == (1,) and lane_tag(64) == (64, 64)
    for width in (0, 8, 48):
        with pytest.raises(ValueError, match=f"multiple of 32 models, not {width}"):
            lane_tag(width)
