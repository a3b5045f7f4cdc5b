"""Influence is the gradient of the next character's log probability with respect to earlier inputs: checked
against central finite differences of the model's own forward (float64), for every family and formulation."""
import pytest
import torch

from nextchar.config import ModelConfig, parse_formulation
from nextchar.inspect.influence import influence, influence_positions, states_of
from nextchar.inspect.trace import trace
from nextchar.model import CharModel
from nextchar.vocab import Vocab

TEXT = "hi?hello!! the (quick) brown fox\n"
VOCAB = Vocab.from_text(TEXT)
HORIZON = 6


def _model(formulation, num_layers=2, embedding_dim=None):
    family, kind = parse_formulation(formulation)
    torch.manual_seed(1)
    config = ModelConfig(len(VOCAB), family, kind, hidden_size=5, num_layers=num_layers, embedding_dim=embedding_dim)
    return CharModel(config).double().eval()


def _finite_differences(model, text, t, target, horizon, eps=1e-6):
    """|d log p(target at t) / d input_{t-k}| for k = 0..K by central differences of model(features)."""
    with torch.no_grad():
        features = model.encode(VOCAB.encode(text))  # (T, I)
        index = VOCAB.chars.index(target)
        norms = []
        for k in range(horizon + 1):
            if t - k < 0:
                norms.append(0.0)
                continue
            grad = torch.zeros(features.shape[1], dtype=torch.float64)
            for i in range(features.shape[1]):
                values = []
                for sign in (1, -1):
                    moved = features.clone()
                    moved[t - k, i] += sign * eps
                    values.append(model(moved)[0][t].log_softmax(-1)[index])
                grad[i] = (values[0] - values[1]) / (2 * eps)
            norms.append(grad.norm().item())
    return torch.tensor(norms)


@pytest.mark.parametrize("embedding_dim", [None, 3])
@pytest.mark.parametrize("formulation", ["rnn", "rnn-cell", "rnn-scratch", "lstm", "lstm-cell", "lstm-scratch",
                                         "gru", "gru-cell", "gru-scratch"])
def test_influence_equals_finite_differences(formulation, embedding_dim):
    model = _model(formulation, embedding_dim=embedding_dim)
    state_at = states_of(trace(model, VOCAB, TEXT))
    for t in (3, 20, len(TEXT) - 1):  # a window cut by the text's start, a full one, the last position
        result = influence(model, VOCAB, TEXT, t, state_at, HORIZON, positions=[t])
        want = TEXT[t + 1] if t + 1 < len(TEXT) else result.target
        assert result.target == want
        expected = _finite_differences(model, TEXT, t, want, HORIZON)
        torch.testing.assert_close(torch.tensor(result.by_distance), expected, rtol=1e-5, atol=1e-8)
        assert result.by_distance[0] > 0 and all(v == 0 for v in result.by_distance[t + 1:])


def test_the_last_positions_target_is_the_models_guess():
    model = _model("lstm")
    tr = trace(model, VOCAB, TEXT)
    result = influence(model, VOCAB, TEXT, len(TEXT) - 1, states_of(tr), HORIZON, positions=[])
    assert result.target == VOCAB.chars[tr.probs[-1].argmax()]


def test_the_memory_horizon_is_the_mean_over_positions_that_reach_each_distance():
    model = _model("gru", num_layers=1)
    state_at = states_of(trace(model, VOCAB, TEXT))
    positions = [2, 10, 25]
    singles = [influence(model, VOCAB, TEXT, t, state_at, HORIZON, positions=[]).by_distance for t in positions]
    result = influence(model, VOCAB, TEXT, 10, state_at, HORIZON, positions=positions)  # batched by window size
    for k in range(HORIZON + 1):
        reached = [s[k] for s, t in zip(singles, positions) if t - k >= 0]
        assert result.mean_by_distance[k] == pytest.approx(sum(reached) / len(reached), rel=1e-12)
    assert result.by_distance == pytest.approx(singles[1], rel=1e-12)


def test_positions_spread_over_the_text_from_the_horizon_on():
    assert influence_positions(1000, 32, 4) == [32, 274, 516, 758]
    assert influence_positions(10, 32, 64) == list(range(10))
    assert influence_positions(1, 32) == [0]
