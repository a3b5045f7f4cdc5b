"""One step of each numba cell (``fused/lane_cells.py``), forward and backward, against ``cells.py``'s step
under torch autograd on the same numbers, per family, in float32 and float64, at one lane and at 32 (the
many engine's layout). A slip in one hand-derived backward formula fails here, not only end to end.

The reference runs in float64. The step's inputs are ``gi`` (W_ih x + b_ih, a leaf) and the previous state;
``gh`` = W_hh h + b_hh is built from it, so autograd's gradient of ``h`` is what the numba step sends back
(``dh_next``), and the gradients of ``gi`` and ``gh`` are its ``dgi`` and ``dgh``.
"""
import numpy as np
import pytest
import torch

from nextchar import cells
from nextchar.fused import lane_cells
from nextchar.fused.lanes import lane_tag

H, SEED = 5, 7
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _lanes(a: torch.Tensor) -> np.ndarray:
    """(K, R, C) or (K, C) per model -> the lanes layout (R, C·K) or (C·K,): entry c of model k at c·K + k."""
    a = a.detach()
    if a.dim() == 2:
        return a.T.reshape(-1).numpy()
    return a.permute(1, 2, 0).reshape(a.shape[1], -1).numpy()


def _models(family: str, K: int):
    """Per model: gi (G), W_hh (G, H), b_hh (G), h and c (H), and the gradients arriving at h' and c'."""
    g = torch.Generator().manual_seed(SEED)
    G = GATES[family] * H

    def draw(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale)
    return {"gi": draw(K, G), "w_hh": draw(K, G, H, scale=0.5), "b_hh": draw(K, G, scale=0.5), "h": draw(K, H),
            "c": draw(K, H), "dh": draw(K, H), "dc": draw(K, H)}


def _reference(family: str, nonlinearity: str, m: dict) -> dict:
    """cells.py's step under autograd: h' (and c'), and the gradients of gi, gh, h (and c)."""
    gi, h, c = (m[k].clone().requires_grad_(True) for k in ("gi", "h", "c"))
    gh = torch.einsum("kgh,kh->kg", m["w_hh"], h) + m["b_hh"]
    gh.retain_grad()
    if family == "lstm":
        h_new, c_new = cells.lstm_step(gi, gh, (h, c))
        loss = (m["dh"] * h_new).sum() + (m["dc"] * c_new).sum()
    else:
        step = cells.rnn_step(gi, gh, h, nonlinearity) if family == "rnn" else cells.gru_step(gi, gh, h)
        h_new, c_new = step, None
        loss = (m["dh"] * h_new).sum()
    loss.backward()
    return {"h": h_new, "c": c_new, "dgi": gi.grad, "dgh": gh.grad, "dh_prev": h.grad, "dc_prev": c.grad}


def _numba_step(family: str, nonlinearity: str, m: dict, K: int, dtype) -> dict:
    """The numba step at t = 0 on the lanes layout, then its backward (row 0 of the chunk)."""
    lanes, one = lane_tag(K), dtype(1)
    G = GATES[family] * H

    def arr(a):
        return np.ascontiguousarray(_lanes(a), dtype=dtype)
    gi = arr(m["gi"])[None, :]  # (1, G·K): step 0's input projection
    w_hh = arr(m["w_hh"])  # (G, H·K)
    w_hh_t = arr(m["w_hh"].transpose(1, 2))  # (H, G·K)
    b_hh = arr(m["b_hh"])
    gh = np.zeros((1, G * K), dtype)
    hs = np.zeros((2, H * K), dtype)
    hs[0] = arr(m["h"])
    dhs = arr(m["dh"])[None, :]
    dh_next = np.zeros((1, H * K), dtype)
    dgh = np.zeros((1, G * K), dtype)
    out = {}
    if family == "rnn":
        relu = nonlinearity == "relu"
        lane_cells.rnn_step(0, gi, 0, w_hh_t, b_hh, gh, relu, one, hs, lanes)
        lane_cells.rnn_step_back(0, 0, dhs, dh_next, hs, w_hh, relu, one, dgh, lanes)
        out["dgi"] = dgh
    elif family == "lstm":
        cs = np.zeros((2, H * K), dtype)
        cs[0] = arr(m["c"])
        tanh_cs, gates = np.zeros((1, H * K), dtype), np.zeros((1, G * K), dtype)
        lane_cells.lstm_step(0, gi, 0, w_hh_t, b_hh, gh, one, hs, cs, tanh_cs, gates, lanes)
        dc_next = arr(m["dc"])[None, :].copy()
        lane_cells.lstm_step_back(0, 0, dhs, dh_next, dc_next, cs, tanh_cs, gates, w_hh, one, dgh, lanes)
        out.update(c=cs[1], dc_prev=dc_next[0], dgi=dgh)
    else:
        gates = np.zeros((1, 4 * H * K), dtype)
        lane_cells.gru_step(0, gi, 0, w_hh_t, b_hh, gh, one, hs, gates, lanes)
        dgi, direct = np.zeros((1, G * K), dtype), np.zeros((1, H * K), dtype)
        lane_cells.gru_step_back(0, 0, dhs, dh_next, hs, gates, w_hh, one, dgi, dgh, direct, lanes)
        out["dgi"] = dgi
    out.update(h=hs[1], dgh=dgh, dh_prev=dh_next[0])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 32])
@pytest.mark.parametrize("family,nonlinearity", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)])
def test_a_numba_cell_step_and_its_backward_equal_cells_py_under_autograd(family, nonlinearity, K, dtype):
    m = _models(family, K)
    expected = _reference(family, nonlinearity, m)
    got = _numba_step(family, nonlinearity, m, K, dtype)
    tolerance = {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    for name, value in got.items():
        want = _lanes(expected[name].reshape(K, -1) if expected[name].dim() > 1 else expected[name])
        torch.testing.assert_close(torch.from_numpy(np.asarray(value, np.float64)).reshape(-1),
                                   torch.from_numpy(want).reshape(-1), msg=lambda text, name=name: f"{name}: {text}",
                                   **tolerance)
