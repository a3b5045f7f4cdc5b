"""The many-models engine: K models in one call equal K compiled fits, bit for bit (every family through the
compiled trainer's SIMD lanes, padded to whole blocks)."""
import pytest
import torch

from nextchar.config import ModelConfig
from nextchar.exam.problems import PROBLEMS, build_problem_model
from nextchar.fused.compiled import ONE_LANE_BELOW, lane_width
from nextchar.model import CharModel, copy_weights
from nextchar.sequence.data import exam_data
from nextchar.sequence.fitting import fit
from nextchar.sequence.many import fit_many, fit_stacked, models_memory
from nextchar.step import NonFiniteLossError


def _alone(model, x, y, epochs, lr):
    """The same weights (in the model's dtype), trained alone by the compiled trainer."""
    c = model.config
    compiled = CharModel(ModelConfig(c.vocab_size, c.family, "scratch", c.hidden_size, nonlinearity=c.nonlinearity,
                                     engine="fused")).to(model.head.weight.dtype)
    compiled = copy_weights(model, compiled)
    return compiled, fit(compiled, x, y, epochs=epochs, lr=lr, trainer="compiled")


def _assert_equal_alone(alone, many, models):
    """Each model trained together equals it trained alone: probabilities, losses, accuracies, weights."""
    for (compiled, single), together, model in zip(alone, many, models):
        assert torch.equal(together.probs, single.probs)
        assert [h["loss"] for h in together.history] == [h["loss"] for h in single.history]
        assert [h["accuracy"] for h in together.history] == [h["accuracy"] for h in single.history]
        for name, weights in model.layer_weights()[0].items():
            assert torch.equal(weights, compiled.layer_weights()[0][name]), name
        assert torch.equal(model.head.weight, compiled.head.weight)


@pytest.mark.parametrize("number", [1, 3, 4, 6])
@pytest.mark.parametrize("count", [4, 9, 33])  # one lane each, less than one block of lanes, one more than a block
def test_many_models_equal_each_model_trained_alone(number, count):
    """Seeds and learning rates differ per model; losses, probabilities and weights are bit-equal."""
    _, x, y = exam_data()
    x, y = x[:300], y[:300]
    seeds, lrs = [12345, *range(count - 1)], [(0.1, 0.05, 0.2)[i % 3] for i in range(count)]
    models = [build_problem_model(PROBLEMS[number], seed) for seed in seeds]
    alone = [_alone(m, x, y, 12, lr) for m, lr in zip(models, lrs)]
    _assert_equal_alone(alone, fit_many(models, x, y, epochs=12, lrs=lrs), models)


def test_many_models_refuse_mixed_sizes_and_bad_learning_rates():
    _, x, y = exam_data()
    a = CharModel(ModelConfig(7, "rnn", "cell", 8))
    b = CharModel(ModelConfig(7, "rnn", "cell", 4))
    with pytest.raises(ValueError, match="must share family, hidden size"):
        fit_many([a, b], x, y, epochs=1)
    with pytest.raises(ValueError, match="learning rates must be > 0"):
        fit_many([a], x, y, epochs=1, lrs=[0.0])
    with pytest.raises(ValueError, match="compiled trainer: runs rnn, lstm or gru, one layer"):
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


@pytest.mark.parametrize("family", ["rnn", "gru"])
def test_a_diverging_model_is_recorded_and_the_others_equal_training_them_alone(family):
    """With diverged="record" a model whose loss becomes NaN ends alone; its block's other lanes (which stop
    with it in the kernel) are trained again, so every other result equals that model trained alone."""
    _, x, y = exam_data()

    def fresh(seed):
        torch.manual_seed(seed)
        return CharModel(ModelConfig(7, family, "cell", 8))

    lrs = [0.1, float("inf"), 0.05, 0.1]
    results = fit_many([fresh(s) for s in range(4)], x, y, epochs=6, lrs=lrs, labels=[f"seed {s}" for s in range(4)],
                       diverged="record")
    assert results[1].diverged_at_epoch == 2 and results[1].final_loss is None and results[1].probs is None
    for k in (0, 2, 3):
        alone = fit_many([fresh(k)], x, y, epochs=6, lrs=lrs[k])[0]
        assert results[k].diverged_at_epoch is None and torch.equal(results[k].probs, alone.probs), k
    with pytest.raises(NonFiniteLossError, match="epoch 2 of seed 1"):
        fit_many([fresh(s) for s in range(4)], x, y, epochs=6, lrs=lrs, labels=[f"seed {s}" for s in range(4)])


def test_the_stacked_engine_records_a_diverging_model_and_trains_the_others_as_before():
    _, x, y = exam_data()

    def fresh(seed):
        torch.manual_seed(seed)
        return CharModel(ModelConfig(7, "rnn", "cell", 8))

    lrs = [0.1, float("inf"), 0.05]
    results = fit_stacked([fresh(s) for s in range(3)], x, y, epochs=5, lrs=lrs, diverged="record")
    assert results[1].diverged_at_epoch == 2 and results[1].probs is None
    healthy = fit_stacked([fresh(0), fresh(2)], x, y, epochs=5, lrs=[0.1, 0.05])
    for got, want in zip((results[0], results[2]), healthy):
        torch.testing.assert_close(got.probs, want.probs)
        assert [h["loss"] for h in got.history] == pytest.approx([h["loss"] for h in want.history])


@pytest.mark.slow
@pytest.mark.parametrize("family,nonlinearity,dtype", [("rnn", "relu", torch.float32), ("rnn", "tanh", torch.float64),
                                                       ("lstm", "tanh", torch.float64), ("gru", "tanh", torch.float64)])
def test_relu_and_float64_models_equal_each_model_trained_alone(family, nonlinearity, dtype):
    """The trainer's relu branch and its float64 path (libm's exp, not the float32 expf): each of 35 models
    (a whole block and three more) is bit-equal to training it alone with the compiled engine (one lane)."""
    _, x, y = exam_data()
    x, y = x[:150].to(dtype), y[:150].to(dtype)
    models = []
    for seed in range(35):
        torch.manual_seed(seed)
        models.append(CharModel(ModelConfig(7, family, "cell", 5, nonlinearity=nonlinearity)).to(dtype))
    lrs = [(0.1, 0.03)[k % 2] for k in range(35)]
    alone = [_alone(model, x, y, 9, lr) for model, lr in zip(models, lrs)]
    many = fit_many(models, x, y, epochs=9, lrs=lrs)
    assert all(together.probs.dtype == dtype for together in many)
    _assert_equal_alone(alone, many, models)


def test_a_few_models_run_one_lane_each_not_padded_to_a_block(monkeypatch):
    """fit_many([one model]) padded it to 32 lanes, 31 of them idle (issue 30, item 2)."""
    from nextchar.fused.lane_trainer import LANES

    monkeypatch.delenv("NEXTCHAR_MEMORY_GB", raising=False)
    _, x, _ = exam_data()
    models = [build_problem_model(PROBLEMS[1], seed) for seed in range(ONE_LANE_BELOW)]
    one = models_memory(models[:1], x, 10)
    assert lane_width(1, one) == 1 and lane_width(ONE_LANE_BELOW - 1, one) == 1
    assert lane_width(ONE_LANE_BELOW, one) == LANES
