"""Hand-written cells vs PyTorch's on the same weights: outputs and gradients, state fed back."""
import pytest
import torch
import torch.nn as nn

from nextchar.cells import TORCH_CELLS, ScratchCell, TwoLinearCell, hidden_of

CASES = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]


def _torch_cell(family, nonlinearity, input_size, hidden_size, dtype):
    extra = {"nonlinearity": nonlinearity} if family == "rnn" else {}
    return TORCH_CELLS[family](input_size, hidden_size, **extra).to(dtype)


def _unroll(cell, xs, state=None):
    """Run a cell over xs (T, [B,] I), feeding its state back; returns stacked h and the last state."""
    hs = []
    for x_t in xs.unbind(0):
        state = cell(x_t, state)
        hs.append(hidden_of(state))
    return torch.stack(hs), state


@pytest.mark.parametrize("family,nonlinearity", CASES)
@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cls", [ScratchCell, TwoLinearCell])
def test_scratch_cell_equals_torch_cell_forward_and_backward(family, nonlinearity, batch, dtype, cls):
    """Same weights, 6 steps with the state fed back: outputs bit-equal in float32 (float64 BLAS
    kernels may depend on memory alignment, so there to round-off); gradients (weights and input)
    bit-equal for rnn and lstm (what the exam's exactness rests on), equal to round-off for gru, whose
    autograd graph accumulates the gradient of h in another order than ATen's GRUCell."""
    torch.manual_seed(0)
    ref = _torch_cell(family, nonlinearity, 5, 4, dtype)
    ours = cls(family, 5, 4, nonlinearity=nonlinearity).to(dtype).copy_from(ref)
    shape = (6, 5) if batch is None else (6, batch, 5)
    x_ref = torch.randn(shape, dtype=dtype, requires_grad=True)
    x_ours = x_ref.detach().clone().requires_grad_(True)
    h_ref, _ = _unroll(ref, x_ref)
    h_ours, _ = _unroll(ours, x_ours)
    if dtype == torch.float32:
        assert torch.equal(h_ours, h_ref)
    torch.testing.assert_close(h_ours, h_ref)
    upstream = torch.randn_like(h_ref)
    (h_ref * upstream).sum().backward()
    (h_ours * upstream).sum().backward()
    exact = {"rtol": 0, "atol": 0} if family != "gru" and dtype == torch.float32 else {}
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **exact)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        torch.testing.assert_close(getattr(ours, name).grad, getattr(ref, name).grad, **exact)


@pytest.mark.parametrize("family", ["rnn", "lstm", "gru"])
def test_explicit_initial_state_is_used(family):
    torch.manual_seed(1)
    ref = TORCH_CELLS[family](3, 2)
    ours = ScratchCell(family, 3, 2).copy_from(ref)
    x = torch.randn(4, 3)
    state = (torch.randn(4, 2), torch.randn(4, 2)) if family == "lstm" else torch.randn(4, 2)
    out_ref, out_ours = ref(x, state), ours(x, state)
    for a, b in zip(out_ours if family == "lstm" else [out_ours], out_ref if family == "lstm" else [out_ref]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("family", ["rnn", "lstm", "gru"])
def test_same_seed_draws_same_initial_weights_as_torch_cell(family):
    torch.manual_seed(7)
    ref = TORCH_CELLS[family](5, 3)
    torch.manual_seed(7)
    ours = ScratchCell(family, 5, 3)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert torch.equal(getattr(ours, name), getattr(ref, name))


def test_edge_sizes_hidden_1_and_length_1():
    torch.manual_seed(2)
    ref = nn.LSTMCell(1, 1)
    ours = ScratchCell("lstm", 1, 1).copy_from(ref)
    x = torch.randn(1, 1)
    assert all(torch.equal(a, b) for a, b in zip(ours(x), ref(x)))


def test_bad_cell_arguments_are_named():
    with pytest.raises(ValueError, match="family must be one of"):
        ScratchCell("transformer", 3, 2)
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        ScratchCell("rnn", 3, 2, nonlinearity="sigmoid")


def test_copy_from_mismatched_shapes_is_refused():
    with pytest.raises(ValueError, match="weight_ih"):
        ScratchCell("lstm", 3, 2).copy_from(nn.LSTMCell(4, 2))
