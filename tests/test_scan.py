"""The minimal families (mingru, minlstm) exact, and shown to be (issue 31):

(a) the sequential cell equals the reference implementation's one-step path (``mingru-pytorch`` 0.2.1, its
    ``minGRU`` and ``minLSTM`` with the weights copied, biases zero) bit for bit in float32 on the CPU, step
    after step with the state fed back;
(b) the parallel form (``scan.py``: the CPU's linear scan and Heinsen's log-space scan alike) equals the
    sequential cell to float round-off over T = 2,048 steps, forward and every gradient, in both dtypes;
(c) a window-by-window run with the state carried equals one long call; the reference's minLSTM does not
    (its parallel path takes log_g of the carried h, which is already a state, not a pre-activation).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nextchar.scan as scan_module
from nextchar.cells import MIN_FAMILIES, ScratchCell
from nextchar.config import ModelConfig
from nextchar.model import CharModel
from nextchar.scan import log_coefficients, log_scan

H, B = 16, 3


def _reference(family: str):
    from minGRU_pytorch.minGRU import minGRU
    from minGRU_pytorch.minLSTM import minLSTM

    return (minGRU if family == "mingru" else minLSTM)(H)


def _reference_weight(reference) -> torch.Tensor:
    return reference.to_hidden_and_gate.weight if hasattr(reference, "to_hidden_and_gate") else \
        reference.to_hidden_and_f_i_gate.weight


@pytest.mark.parametrize("family", MIN_FAMILIES)
def test_the_sequential_cell_equals_the_references_step_bit_for_bit(family):
    torch.manual_seed(0)
    reference = _reference(family)
    cell = ScratchCell(family, H, H)
    with torch.no_grad():
        cell.weight_ih.copy_(_reference_weight(reference))
        cell.bias_ih.zero_()
    x = torch.randn(B, 64, H)
    ours, theirs = None, None
    with torch.no_grad():
        for t in range(x.shape[1]):
            out, theirs = reference(x[:, t:t + 1], theirs, return_next_prev_hidden=True)
            ours = cell(x[:, t], ours)
            assert torch.equal(ours, out[:, 0]) and torch.equal(ours, theirs[:, 0]), f"step {t}"
    assert ours.abs().max() > 0.1  # the state moved: equality above was not of zeros


def _pair(family: str, dtype: torch.dtype, layers: int = 1) -> tuple[CharModel, CharModel]:
    """The parallel form (kind module) and the sequential cell (scratch) on the same weights."""
    torch.manual_seed(1)
    parallel = CharModel(ModelConfig(7, family, "module", H, num_layers=layers)).to(dtype)
    sequential = CharModel(ModelConfig(7, family, "scratch", H, num_layers=layers)).to(dtype)
    sequential.load_state_dict(parallel.state_dict())  # one checkpoint serves both forms
    return parallel, sequential


@pytest.fixture(params=["linear", "log"])
def scan_kind(request, monkeypatch):
    """Each implementation of the parallel form: the CPU's (linear) and Heinsen's log-space scan (the GPU's)."""
    if request.param == "log":
        monkeypatch.setattr(scan_module, "scan", lambda family, gi, h0=None: log_scan(*log_coefficients(family, gi),
                                                                                      h0))
    return request.param


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


SCAN_TOLERANCE = {torch.float32: (2e-6, 1e-5), torch.float64: (2e-12, 1e-10)}
"""(forward, gradients) relative to the largest magnitude, over T = 2,048 (measured by bench/scan_accuracy.py:
float32 2.6e-7 and 1.4e-6, float64 2.3e-13 and 8.5e-12; the scan's running sums are float64)."""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("family", MIN_FAMILIES)
def test_the_parallel_scan_equals_the_sequential_cell_forward_and_every_gradient(family, dtype, scan_kind):
    parallel, sequential = _pair(family, dtype, layers=2)
    x, y = torch.randint(0, 7, (2048, B)), torch.randint(0, 7, (2048, B))
    state = (torch.rand(2, B, H, dtype=dtype) + 0.1)  # a carried state (positive, as every h is)
    forward_tol, grad_tol = SCAN_TOLERANCE[dtype]
    grads = []
    for model in (parallel, sequential):
        start = state.clone().requires_grad_()
        logits, last = model(x, start)
        F.cross_entropy(logits.reshape(-1, 7), y.reshape(-1)).backward()
        grads.append(([p.grad for p in model.parameters()], start.grad, logits.detach(), last.detach()))
    (p_grads, p_state, p_logits, p_last), (s_grads, s_state, s_logits, s_last) = grads
    assert _relative(p_logits, s_logits) < forward_tol and _relative(p_last, s_last) < forward_tol
    assert all(_relative(a, b) < grad_tol for a, b in zip(p_grads, s_grads))
    assert _relative(p_state, s_state) < grad_tol
    assert all(g.abs().max() > 0 for g in s_grads)  # every parameter takes part


@pytest.mark.parametrize("family", MIN_FAMILIES)
def test_windows_with_the_state_carried_equal_one_long_call_and_the_references_minlstm_does_not(family, scan_kind):
    parallel, _ = _pair(family, torch.float32)
    x = torch.randint(0, 7, (512, B))
    with torch.no_grad():
        whole, whole_last = parallel(x)
        parts, state = [], None
        for start in range(0, 512, 64):
            logits, state = parallel(x[start:start + 64], state)
            parts.append(logits)
    ours = _relative(torch.cat(parts), whole)
    assert ours < 1e-6 and _relative(state, whole_last) < 1e-6, ours

    torch.manual_seed(0)
    reference, inputs = _reference(family), torch.rand(B, 512, H)
    with torch.no_grad():
        long = reference(inputs)
        pieces, hidden = [], None
        for start in range(0, 512, 64):
            out, hidden = reference(inputs[:, start:start + 64], hidden, return_next_prev_hidden=True)
            pieces.append(out)
    theirs = _relative(torch.cat(pieces, dim=1), long)
    if family == "minlstm":  # mingru-pytorch 0.2.1's minLSTM: log_g(prev_hidden) where log(prev_hidden) is meant
        assert theirs > 1e-2, theirs
    else:  # its minGRU takes prev_hidden.log(): right (to its float32 scan's round-off)
        assert theirs < 1e-4, theirs
    print(f"{family}: windows vs one call, relative: nextchar {ours:.1e}, mingru-pytorch 0.2.1 {theirs:.1e}")


def test_a_negative_state_is_refused_by_the_parallel_form_naming_it():
    parallel, sequential = _pair("mingru", torch.float32)
    x, state = torch.randint(0, 7, (5, B)), -torch.rand(1, B, H)
    with pytest.raises(ValueError, match="mingru state must be >= 0 .* got a minimum of -"):
        parallel(x, state)
    sequential(x, state)  # the cell's own step takes any state
