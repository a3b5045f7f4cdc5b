"""K models as one torch module: each stacked model computes what it computes alone."""
import torch

from nextchar.exam.claims.memory import new_model
from nextchar.stacked import StackedRecurrent


def test_stacked_models_equal_each_model_alone():
    """The claims' many-models trainer: K stacked models compute what each model computes alone."""


    for family in ("rnn", "lstm", "gru"):
        models = []
        for seed in range(3):
            torch.manual_seed(seed)
            models.append(new_model(family, 5))
        stacked = StackedRecurrent.from_models(models)
        x = torch.randint(0, 8, (6, 3, 4))  # (T, K, B)
        logits, _ = stacked(x)
        for k, model in enumerate(models):
            alone, _ = model(x[:, k])
            torch.testing.assert_close(logits[:, k], alone)
