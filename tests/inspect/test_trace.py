"""The trace equals the model's own forward: bit for bit where the cells promise it (hand-written cells and
loops over nn.*Cell, CPU, float32), to round-off for the built-in sequence modules."""
import pytest
import torch

from nextchar.config import FORMULATIONS, ModelConfig, parse_formulation
from nextchar.inspect.trace import hand_written_twin, trace
from nextchar.model import CharModel
from nextchar.vocab import Vocab

TEXT = "hello, world! hi?hello!!\nthe quick brown fox"
VOCAB = Vocab.from_text(TEXT)


def _model(formulation, num_layers, embedding_dim, cell_style="torch"):
    family, kind = parse_formulation(formulation)
    torch.manual_seed(0)
    return CharModel(ModelConfig(len(VOCAB), family, kind, hidden_size=6, num_layers=num_layers,
                                 embedding_dim=embedding_dim, cell_style=cell_style if kind == "scratch" else "torch"))


def _check(got, want, exact, what):
    if exact:
        assert torch.equal(got, want), f"{what}: max |diff| {(got - want).abs().max():.3g}"
    else:
        torch.testing.assert_close(got, want, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("embedding_dim", [None, 5])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_the_trace_equals_the_models_own_forward(formulation, num_layers, embedding_dim):
    model = _model(formulation, num_layers, embedding_dim).eval()
    exact = model.config.kind != "module"
    result = trace(model, VOCAB, TEXT)
    x = VOCAB.encode(TEXT)
    with torch.no_grad():
        logits, state = model(x)
        last_layer, _ = model.core(model.encode(x))  # (T, H): the top layer's h at every position
    _check(result.probs, logits.softmax(-1), exact, "probabilities")
    _check(result.layers[-1].h, last_layer, exact, "top layer h")
    hidden, cell = (state if isinstance(state, tuple) else (state, None))
    for k, layer in enumerate(result.layers):
        _check(layer.h[-1], hidden[k], exact, f"layer {k} last h")
        if cell is not None:
            _check(layer.c[-1], cell[k], exact, f"layer {k} last c")
        assert all(g.shape == (len(TEXT), 6) for g in layer.gates.values())


def test_the_exams_two_linear_cell_is_traced_bit_equal():
    model = _model("lstm-scratch", 1, None, cell_style="two-linear").eval()
    result = trace(model, VOCAB, TEXT)
    with torch.no_grad():
        logits, _ = model(VOCAB.encode(TEXT))
    assert torch.equal(result.probs, logits.softmax(-1))
    assert sorted(result.layers[0].gates) == ["f", "g", "i", "o"]


@pytest.mark.parametrize("family,gates", [("rnn", ["pre"]), ("lstm", ["i", "f", "g", "o"]), ("gru", ["r", "z", "n"])])
def test_the_gates_are_the_cells_own(family, gates):
    """The recorded gates recompute the step: for the LSTM c = f c_prev + i g and h = o tanh(c)."""
    result = trace(_model(family, 1, None), VOCAB, TEXT)
    layer = result.layers[0]
    assert list(layer.gates) == gates
    if family == "lstm":
        g = layer.gates
        c_prev = torch.cat([torch.zeros(1, 6), layer.c[:-1]])
        torch.testing.assert_close(layer.c, g["f"] * c_prev + g["i"] * g["g"])
        torch.testing.assert_close(layer.h, g["o"] * torch.tanh(layer.c))
    if family == "rnn":
        torch.testing.assert_close(layer.h, torch.tanh(layer.gates["pre"]))


def test_a_long_text_traced_in_chunks_equals_one_pass():
    model = _model("gru", 2, 5)
    whole, chunked = trace(model, VOCAB, TEXT * 3), trace(model, VOCAB, TEXT * 3, chunk=7)
    for a, b in zip(whole.layers, chunked.layers):
        assert torch.equal(a.h, b.h) and all(torch.equal(a.gates[g], b.gates[g]) for g in a.gates)
    torch.testing.assert_close(whole.probs, chunked.probs)


def test_tracing_leaves_the_model_and_the_random_state_alone():
    model = _model("lstm", 1, None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    twin = hand_written_twin(model)
    assert twin is not model and torch.equal(torch.rand(3), expected)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_an_unknown_character_and_an_empty_text_are_named():
    model = _model("rnn", 1, None)
    with pytest.raises(ValueError, match=r"\['Z'\] are not in the model's vocabulary"):
        trace(model, VOCAB, "hZ")
    with pytest.raises(ValueError, match="at least one character"):
        trace(model, VOCAB, "")
