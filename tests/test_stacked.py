"""K models as one torch module: each stacked model computes what it computes alone."""
import torch

from nextchar.exam.claims.memory import new_model
from nextchar.sequence.stacked import StackedRecurrent


def test_stacked_models_equal_each_model_alone():
    """The claims' many-models trainer: K stacked models compute what each model computes alone, their
    logits, last states and gradients (the minimal families: K scans at once)."""
    for family in ("rnn", "lstm", "gru", "mingru", "minlstm"):
        models = []
        for seed in range(3):
            torch.manual_seed(seed)
            models.append(new_model(family, 5))
        stacked = StackedRecurrent.from_models(models)
        x = torch.randint(0, 8, (6, 3, 4))  # (T, K, B)
        logits, state = stacked(x)
        logits.square().sum().backward()
        for k, model in enumerate(models):
            alone, alone_state = model(x[:, k])
            alone.square().sum().backward()
            torch.testing.assert_close(logits[:, k], alone)
            torch.testing.assert_close(state[0][k] if family == "lstm" else state[k],
                                       alone_state[0][0] if family == "lstm" else alone_state[0])
            torch.testing.assert_close(stacked.weight_ih.grad[k], model.layer_weights()[0]["weight_ih"].grad)
            torch.testing.assert_close(stacked.head_weight.grad[k], model.head.weight.grad)
        assert (stacked.weight_hh is None) == family.startswith("min")


def _stacked_params(K: int, dtype, seed: int = 0) -> list[torch.Tensor]:
    """Three parameters of K models each (leading axis), with gradients."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(K, *shape, generator=g, dtype=dtype, requires_grad=True) for shape in ((4, 3), (4,), (2, 4))]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=dtype) * 3
    return params


def test_stacked_adam_equals_torchs_adam_run_per_model():
    """StackedAdam (one learning rate per model) against torch.optim.Adam run on each model's slices alone,
    over five steps with fresh gradients each step (float64: equal to round-off)."""
    from nextchar.sequence.stacked import StackedAdam

    K, lrs = 3, [0.1, 0.01, 0.3]
    stacked = _stacked_params(K, torch.float64)
    alone = [[p[k].detach().clone().requires_grad_(True) for p in stacked] for k in range(K)]
    optimizers = [torch.optim.Adam(params, lr=lr, foreach=False) for params, lr in zip(alone, lrs)]
    stacked_adam = StackedAdam(stacked, lrs)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        for p in stacked:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        for k, params in enumerate(alone):
            for p, s in zip(params, stacked):
                p.grad = s.grad[k].clone()
        stacked_adam.step()
        for optimizer in optimizers:
            optimizer.step()
    for k, params in enumerate(alone):
        for p, s in zip(params, stacked):
            torch.testing.assert_close(s[k], p, rtol=1e-13, atol=1e-15)


def test_per_model_clipping_equals_clip_grad_norm_per_model():
    """clip_per_model scales each model's gradients as torch's clip_grad_norm_ does for that model alone (a
    model under the limit is left as it is), and returns each model's norm."""
    from nextchar.sequence.stacked import clip_per_model

    stacked = _stacked_params(4, torch.float32)
    stacked[0].grad[2] *= 1e-3  # model 2 under the limit: unscaled
    alone = [[p.grad[k].clone() for p in stacked] for k in range(4)]
    norms = clip_per_model(stacked, max_norm=1.0)
    for k, grads in enumerate(alone):
        params = [torch.zeros_like(grad, requires_grad=True) for grad in grads]
        for p, grad in zip(params, grads):
            p.grad = grad
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        torch.testing.assert_close(norms[k], norm)
        for p, s in zip(params, stacked):
            torch.testing.assert_close(s.grad[k], p.grad)
    assert torch.equal(stacked[0].grad[2], alone[2][0])
