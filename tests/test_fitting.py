import pytest
import torch

from nextchar.config import ModelConfig
from nextchar.model import CharModel
from nextchar.sequence.data import exam_data
from nextchar.sequence.fitting import fit
from nextchar.step import NonFiniteLossError


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_fit_learns_the_exam_task(loss):
    _, x, y = exam_data()
    torch.manual_seed(0)
    model = CharModel(ModelConfig(7, "lstm", "module", hidden_size=8))
    result = fit(model, x, y, epochs=60, lr=0.1, loss=loss)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.history[-1]["accuracy"] > 0.95


def test_non_finite_loss_names_the_epoch():
    _, x, y = exam_data()
    model = CharModel(ModelConfig(7, "rnn", "module", hidden_size=4))
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="epoch 1.*lower learning rate"):
        fit(model, x, y, epochs=3)


@pytest.mark.parametrize("kwargs,match", [
    ({"optimizer": "lbfgs2"}, "optimizer must be one of"),
    ({"loss": "hinge"}, "loss must be one of"),
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"lr": -1.0}, "lr must be > 0"),
    ({"device": "tpu"}, "device: must be one of"),
])
def test_bad_training_arguments_are_named(kwargs, match):
    _, x, y = exam_data()
    model = CharModel(ModelConfig(7, "rnn", "module", hidden_size=4))
    args = {"epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit(model, x, y, **args)
