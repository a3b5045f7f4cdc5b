"""The nine formulations behind one interface agree on the same weights."""
import pytest
import torch

from nextchar.config import FORMULATIONS, ModelConfig, parse_formulation
from nextchar.model import CharModel, copy_weights

FAMILIES = ["rnn", "lstm", "gru"]


def _trio(family, **kwargs):
    torch.manual_seed(0)
    models = {k: CharModel(ModelConfig(family=family, kind=k, **kwargs)) for k in ("module", "cell", "scratch")}
    for kind in ("cell", "scratch"):
        copy_weights(models["module"], models[kind])
    return models


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch", [None, 4])
@pytest.mark.parametrize("embedding_dim", [None, 5])
def test_three_formulations_agree_forward_and_backward(family, num_layers, batch, embedding_dim):
    """module vs cell loop vs hand-written cell: logits, final state and every gradient; cell == scratch bitwise."""
    models = _trio(family, vocab_size=6, hidden_size=7, num_layers=num_layers, embedding_dim=embedding_dim)
    shape = (9,) if batch is None else (9, batch)
    x = torch.randint(0, 6, shape)
    outs = {}
    for kind, model in models.items():
        logits, state = model(x)
        logits.square().sum().backward()
        outs[kind] = (logits, state, [p.grad for p in model.parameters()])
    for kind in ("cell", "scratch"):
        torch.testing.assert_close(outs[kind][0], outs["module"][0])
        torch.testing.assert_close(outs[kind][1], outs["module"][1])
        for g, ref in zip(outs[kind][2], outs["module"][2]):
            torch.testing.assert_close(g, ref)
    assert torch.equal(outs["scratch"][0], outs["cell"][0])


@pytest.mark.parametrize("kind", ["module", "cell", "scratch"])
@pytest.mark.parametrize("family", FAMILIES)
def test_state_carry_equals_one_long_pass(kind, family):
    """Running two halves with the state carried gives the same logits as one pass over the whole."""
    torch.manual_seed(3)
    model = CharModel(ModelConfig(5, family, kind, hidden_size=4, num_layers=2))
    x = torch.randint(0, 5, (10, 2))
    whole, _ = model(x)
    first, state = model(x[:6])
    second, _ = model(x[6:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_hot_indices_equal_float_one_hot_input(family):
    torch.manual_seed(0)
    model = CharModel(ModelConfig(7, family, "cell", hidden_size=3))
    idx = torch.randint(0, 7, (5,))
    a, _ = model(idx)
    b, _ = model(torch.nn.functional.one_hot(idx, 7).float())
    assert torch.equal(a, b)


def test_formulation_names_round_trip():
    assert len(FORMULATIONS) == 9 + 4  # rnn/lstm/gru x module, cell, scratch; mingru/minlstm x module, scratch
    for name in FORMULATIONS:
        family, kind = parse_formulation(name)
        assert ModelConfig(5, family, kind).formulation == name
    for wrong in ("lstm-fast", "mingru-cell"):
        with pytest.raises(ValueError, match="formulation must be one of"):
            parse_formulation(wrong)


@pytest.mark.parametrize("kwargs,match", [
    ({"kind": "cell"}, "runs as module .its parallel scan. or scratch"),
    ({"kind": "scratch", "engine": "fused"}, "runs on the autograd engine"),
    ({"kind": "scratch", "cell_style": "two-linear"}, "has no i2h/h2h form"),
])
def test_a_minimal_family_refuses_what_it_has_no_form_for(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(5, "mingru", **kwargs)


@pytest.mark.parametrize("family", ["mingru", "minlstm"])
def test_a_minimal_familys_two_forms_share_one_state_dict_and_its_shapes(family):
    torch.manual_seed(0)
    scan = CharModel(ModelConfig(7, family, "module", 6, num_layers=2))
    loop = CharModel(ModelConfig(7, family, "scratch", 6, num_layers=2))
    assert list(scan.state_dict()) == list(loop.state_dict())
    gates = {"mingru": 2, "minlstm": 3}[family]
    assert scan.core.cells[0].weight_ih.shape == (gates * 6, 7) and scan.core.cells[0].weight_hh is None
    loop.load_state_dict(scan.state_dict())
    x = torch.randint(0, 7, (20, 2))
    (a, state_a), (b, state_b) = scan(x), loop(x)
    torch.testing.assert_close(a, b)
    assert state_a.shape == state_b.shape == (2, 2, 6)


@pytest.mark.parametrize("kwargs,match", [
    ({"family": "tcn"}, "family must be one of"),
    ({"kind": "fancy"}, "kind must be one of"),
    ({"hidden_size": 0}, "hidden_size must be >= 1"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"cell_style": "two-linear"}, "needs kind 'scratch'"),
    ({"nonlinearity": "gelu"}, "nonlinearity must be one of"),
])
def test_bad_model_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(5, **kwargs)


def test_wrong_feature_size_is_a_clear_error():
    model = CharModel(ModelConfig(5, "rnn", "module", hidden_size=3))
    with pytest.raises(ValueError, match="size 5"):
        model(torch.zeros(4, 6))


def test_copy_between_different_sizes_is_refused():
    a = CharModel(ModelConfig(5, "lstm", "module", hidden_size=3))
    b = CharModel(ModelConfig(5, "lstm", "cell", hidden_size=4))
    with pytest.raises(ValueError, match="cannot copy"):
        copy_weights(a, b)


def test_same_seed_module_and_cell_draw_the_same_weights():
    """The exam relies on this: nn.RNN(7,8) and nn.RNNCell(7,8) draw the same initial weights."""
    torch.manual_seed(12345)
    module = CharModel(ModelConfig(7, "rnn", "module", hidden_size=8))
    torch.manual_seed(12345)
    cell = CharModel(ModelConfig(7, "rnn", "cell", hidden_size=8))
    for a, b in zip(module.parameters(), cell.parameters()):
        assert torch.equal(a, b)
