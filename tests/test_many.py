"""The many-models engine: K models in one call equal K compiled fits, bit for bit (rnn and lstm through the
SIMD-lanes kernel, padded to whole blocks; gru through the per-model kernel)."""
import pytest
import torch

from nextchar.config import ModelConfig
from nextchar.exam.problems import PROBLEMS, build_problem_model
from nextchar.fitting import fit
from nextchar.many import fit_many
from nextchar.model import CharModel, copy_weights
from nextchar.vocab import exam_data


def _alone(model, x, y, epochs, lr):
    """The same weights, trained alone with the compiled engine."""
    c = model.config
    compiled = copy_weights(model, CharModel(ModelConfig(c.vocab_size, c.family, "scratch", c.hidden_size,
                                                         nonlinearity=c.nonlinearity, engine="compiled")))
    return compiled, fit(compiled, x, y, epochs=epochs, lr=lr)


@pytest.mark.parametrize("number", [1, 3, 4, 6])
@pytest.mark.parametrize("count", [4, 33])  # less than one block of lanes, and one more than a block
def test_many_models_equal_each_model_trained_alone(number, count):
    """Seeds and learning rates differ per model; losses, probabilities and weights are bit-equal."""
    _, x, y = exam_data()
    x, y = x[:300], y[:300]
    seeds, lrs = [12345, *range(count - 1)], [(0.1, 0.05, 0.2)[i % 3] for i in range(count)]
    models = [build_problem_model(PROBLEMS[number], seed) for seed in seeds]
    alone = [_alone(m, x, y, 12, lr) for m, lr in zip(models, lrs)]
    many = fit_many(models, x, y, epochs=12, lrs=lrs)
    for (compiled, single), together, model in zip(alone, many, models):
        assert torch.equal(together.probs, single.probs)
        assert [h["loss"] for h in together.history] == [h["loss"] for h in single.history]
        assert [h["accuracy"] for h in together.history] == [h["accuracy"] for h in single.history]
        for name, weights in model.layer_weights()[0].items():
            assert torch.equal(weights, compiled.layer_weights()[0][name]), name
        assert torch.equal(model.head.weight, compiled.head.weight)


def test_many_models_refuse_mixed_sizes_and_bad_learning_rates():
    _, x, y = exam_data()
    a = CharModel(ModelConfig(7, "rnn", "cell", 8))
    b = CharModel(ModelConfig(7, "rnn", "cell", 4))
    with pytest.raises(ValueError, match="must share family, hidden size"):
        fit_many([a, b], x, y, epochs=1)
    with pytest.raises(ValueError, match="learning rates must be > 0"):
        fit_many([a], x, y, epochs=1, lrs=[0.0])
    with pytest.raises(ValueError, match="compiled engine: runs one layer"):
        fit_many([CharModel(ModelConfig(7, "rnn", "cell", 8, num_layers=2))], x, y, epochs=1)


def test_gru_models_equal_each_model_trained_alone():
    _, x, y = exam_data()
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(CharModel(ModelConfig(7, "gru", "cell", 6)))
    alone = [_alone(m, x[:200], y[:200], 8, 0.1)[1] for m in models]
    for single, together in zip(alone, fit_many(models, x[:200], y[:200], epochs=8)):
        assert torch.equal(together.probs, single.probs)
