"""The fused engine (numba forward + backward-through-time) against autograd on the same weights."""
import re

import numba
import numpy as np
import pytest
import torch

from nextchar.config import ModelConfig
from nextchar.exam.problems import run_problem
from nextchar.fused import kernels
from nextchar.fused.warmup import KERNELS, kernel_example_args
from nextchar.model import CharModel, copy_weights

CASES = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]


def _pair(family, nonlinearity="tanh", dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    config = dict(vocab_size=6, family=family, kind="scratch", hidden_size=5, nonlinearity=nonlinearity, **kwargs)
    reference = CharModel(ModelConfig(**config)).to(dtype)
    fused = copy_weights(reference, CharModel(ModelConfig(**config, engine="fused")).to(dtype))
    return reference, fused


def _relative(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("family,nonlinearity", CASES)
@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("embedding_dim", [None, 4])
def test_fused_equals_autograd_loss_and_gradients(family, nonlinearity, batch, num_layers, dtype, embedding_dim):
    """Loss, logits, final state and every gradient (incl. through a given initial state) match autograd:
    to float32 round-off (relative 1e-5 of each tensor's largest gradient), and 1e-12 in float64."""
    reference, fused = _pair(family, nonlinearity, dtype, num_layers=num_layers, embedding_dim=embedding_dim)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    shape = (9,) if batch is None else (9, batch)
    x, y = torch.randint(0, 6, shape), torch.randint(0, 6, shape)
    state_shape = (num_layers, 5) if batch is None else (num_layers, batch, 5)
    results = []
    for model in (reference, fused):
        h0 = torch.randn(state_shape, dtype=dtype, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        state = (h0, h0 * 0.5) if family == "lstm" else h0
        logits, last = model(x, state)
        last_h = last[0] if family == "lstm" else last
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 6), y.reshape(-1)) + 0.1 * last_h.sum()
        loss.backward()
        results.append((loss.detach(), logits.detach(), last_h.detach(), h0.grad, [p.grad for p in model.parameters()]))
    (l_ref, o_ref, s_ref, h_ref, g_ref), (l_f, o_f, s_f, h_f, g_f) = results
    assert abs(l_f - l_ref) <= tol * abs(l_ref), f"loss {l_f} vs {l_ref}"
    for what, got, want in [("logits", o_f, o_ref), ("final h", s_f, s_ref), ("grad of h0", h_f, h_ref)]:
        assert _relative(got, want) <= tol, f"{what}: relative difference {_relative(got, want):.3g} > {tol}"
    for (name, _), got, want in zip(fused.named_parameters(), g_f, g_ref):
        assert _relative(got, want) <= tol, f"grad of {name}: relative difference {_relative(got, want):.3g} > {tol}"


def test_a_fused_models_weights_load_into_the_step_by_step_model():
    """Checkpoints are interchangeable between engines: weights trained on the fused engine, loaded into a
    freshly seeded autograd model, give that model the fused model's outputs."""
    reference, fused = _pair("lstm", num_layers=2)
    x = torch.randn(6, 3, fused.config.vocab_size)
    opt = torch.optim.Adam(fused.parameters(), lr=0.1)
    fused(x)[0].square().sum().backward()
    opt.step()  # the fused model's weights now differ from the reference's
    assert not torch.equal(fused(x)[0], reference(x)[0])
    reference.load_state_dict(fused.state_dict())
    torch.testing.assert_close(reference(x)[0], fused(x)[0])


def test_state_carried_between_windows_matches_one_pass():
    _, fused = _pair("gru", num_layers=2)
    x = torch.randint(0, 6, (12, 2))
    whole, _ = fused(x)
    first, state = fused(x[:5])
    second, _ = fused(x[5:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)


@pytest.mark.slow
@pytest.mark.parametrize("number", [3, 6])
def test_exam_trained_with_fused_engine_matches_autograd(number):
    """The exam's protocol (a shortened run): fitted probabilities agree to float32 training noise."""
    autograd = run_problem(number, epochs=30)
    fused = run_problem(number, epochs=30, engine="fused")
    assert (fused.fit.probs - autograd.fit.probs).abs().max().item() < 1e-3


def test_fused_engine_refuses_what_it_does_not_support():
    _, fused = _pair("rnn")
    with pytest.raises(ValueError, match="fused engine: supports"):
        fused.core(torch.zeros(3, 6, dtype=torch.float16))
    with pytest.raises(ValueError, match="needs kind 'scratch'"):
        ModelConfig(6, "rnn", "module", engine="fused")


@pytest.mark.parametrize("name", KERNELS)
def test_float32_kernels_do_no_float64_arithmetic(name):
    """A float64 literal would silently promote a float32 kernel: its machine code would show double math."""
    kernel = numba.njit(getattr(kernels, name).py_func)  # uncached, so its LLVM IR can be read
    kernel(*kernel_example_args(name, np.float32))
    (ir,) = kernel.inspect_llvm().values()
    assert re.findall(r"\b(?:fadd|fsub|fmul|fdiv)(?: \w+)* float\b", ir)
    assert not re.findall(r"\b(?:fadd|fsub|fmul|fdiv)(?: \w+)* double\b", ir)
    assert "fpext float" not in ir


@pytest.mark.parametrize("family,nonlinearity,hidden", [("rnn", "tanh", 8), ("rnn", "relu", 8), ("lstm", "tanh", 4),
                                                        ("gru", "tanh", 6)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_epochs_match_autograd_training(family, nonlinearity, hidden, dtype):
    """fit(..., trainer="compiled") runs whole compiled epochs (forward, loss, BPTT, Adam); its losses and
    fitted probabilities match autograd training on the same weights (float32 noise; 1e-9 in float64)."""
    from nextchar.sequence.data import exam_data
    from nextchar.sequence.fitting import fit

    _, x, y = exam_data()
    x, y = x[:300].to(dtype), y[:300].to(dtype)  # a shorter sequence keeps the autograd side quick
    config = dict(vocab_size=7, family=family, kind="scratch", hidden_size=hidden, nonlinearity=nonlinearity)
    torch.manual_seed(0)
    reference = CharModel(ModelConfig(**config)).to(dtype)
    fused = copy_weights(reference, CharModel(ModelConfig(**config, engine="fused")).to(dtype))
    a = fit(reference, x, y, epochs=15, lr=0.05)
    b = fit(fused, x, y, epochs=15, lr=0.05, trainer="compiled")
    tol = 2e-4 if dtype == torch.float32 else 1e-9
    assert max(abs(p["loss"] - q["loss"]) for p, q in zip(a.history, b.history)) <= tol
    assert (a.probs - b.probs).abs().max().item() <= tol
    for p, q in zip(reference.parameters(), fused.parameters()):
        torch.testing.assert_close(q, p, atol=tol, rtol=0)


@pytest.mark.slow
def test_kernels_give_the_same_numbers_without_jit(tmp_path):
    """NUMBA_DISABLE_JIT=1 runs the kernels as plain Python (to step through BPTT); same numbers."""
    import subprocess
    import sys

    script = (
        "import torch; from nextchar.config import ModelConfig; from nextchar.model import CharModel\n"
        "out = {}\n"
        "for family in ('rnn', 'lstm', 'gru'):\n"
        "    torch.manual_seed(0)\n"
        "    m = CharModel(ModelConfig(5, family, 'scratch', hidden_size=3, engine='fused'))\n"
        "    logits, _ = m(torch.arange(5).repeat(2).reshape(5, 2))\n"
        "    logits.square().sum().backward()\n"
        "    out[family] = [logits.detach()] + [p.grad for p in m.parameters()]\n"
        f"torch.save(out, {str(tmp_path)!r} + '/' + __import__('os').environ.get('TAG', 'x') + '.pt')\n"
    )
    for tag, disable in (("jit", "0"), ("python", "1")):
        env = {**__import__("os").environ, "NUMBA_DISABLE_JIT": disable, "TAG": tag}
        subprocess.run([sys.executable, "-c", script], check=True, env=env)
    jit, python = torch.load(tmp_path / "jit.pt"), torch.load(tmp_path / "python.pt")
    for family in jit:
        for a, b in zip(jit[family], python[family]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # libm vs numpy exp: an ulp apart


def test_fit_on_the_fused_engine_runs_the_kernels_under_torchs_optimizer(monkeypatch):
    """engine='fused' never switches to the compiled epoch: it trains with the optimizer asked for (SGD here,
    which the compiled epoch does not run) and equals autograd training to float32 round-off."""
    from nextchar.fused import compiled
    from nextchar.sequence.data import exam_data
    from nextchar.sequence.fitting import fit

    def refuse(*args, **kwargs):
        raise AssertionError("the compiled epoch ran for a fused-engine model")

    monkeypatch.setattr(compiled, "compiled_fit", refuse)
    _, x, y = exam_data()
    for optimizer in ("adam", "sgd"):
        torch.manual_seed(0)
        reference = CharModel(ModelConfig(7, "lstm", "scratch", 5))
        fused = copy_weights(reference, CharModel(ModelConfig(7, "lstm", "scratch", 5, engine="fused")))
        a = fit(reference, x[:200], y[:200], epochs=5, lr=0.05, optimizer=optimizer)
        b = fit(fused, x[:200], y[:200], epochs=5, lr=0.05, optimizer=optimizer)
        torch.testing.assert_close(b.probs, a.probs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("change,reason", [
    ({"num_layers": 2}, "num_layers 2"), ({"dropout": 0.1}, "dropout 0.1"), ({"embedding_dim": 3}, "embedding_dim 3"),
])
def test_compiled_engine_refuses_what_it_cannot_run_and_names_it(change, reason):
    from nextchar.sequence.data import exam_data
    from nextchar.sequence.fitting import fit

    _, x, y = exam_data()
    model = CharModel(ModelConfig(7, "rnn", "scratch", 4, engine="fused", **change))
    with pytest.raises(ValueError, match=f"compiled trainer: runs rnn, lstm or gru, one layer.*got {reason}.*--engine "
                                         "fused"):
        fit(model, x, y, epochs=1, trainer="compiled")
    with pytest.raises(ValueError, match="optimizer 'sgd'"):
        fit(CharModel(ModelConfig(7, "rnn", "scratch", 4, engine="fused")), x, y, epochs=1, optimizer="sgd",
            trainer="compiled")
    with pytest.raises(ValueError, match="trainer must be None .* or 'compiled', got 'fast'"):
        fit(model, x, y, epochs=1, trainer="fast")


def test_the_compiled_trainer_is_asked_for_by_name_not_a_models_engine(tmp_path):
    """ModelConfig.engine is autograd or fused again (issue 30, item 2); a checkpoint that says engine
    'compiled' (written before) still loads, as the fused model it is."""
    import json

    from nextchar.run.checkpoint import load_checkpoint
    from tests.helpers import checkpoint_parts, model_checkpoint, with_metadata

    with pytest.raises(ValueError, match="engine must be one of .*fit\\(..., trainer='compiled'\\)"):
        ModelConfig(7, "rnn", "scratch", 4, engine="compiled")
    model_checkpoint(tmp_path / "m.safetensors", family="gru", kind="scratch")
    raw = (tmp_path / "m.safetensors").read_bytes()
    _, meta = checkpoint_parts(raw)
    meta["model_config"]["engine"] = "compiled"
    (tmp_path / "old.safetensors").write_bytes(with_metadata(raw, json.dumps(meta)))
    assert load_checkpoint(tmp_path / "old.safetensors").model_config.engine == "fused"


def test_the_compiled_trainer_refuses_a_minimal_family_before_any_work():
    from nextchar.sequence.data import exam_data
    from nextchar.sequence.fitting import fit

    _, x, y = exam_data()
    model = CharModel(ModelConfig(7, "mingru", "scratch", 4))
    before = model.core.cells[0].weight_ih.detach().clone()
    with pytest.raises(ValueError, match="compiled trainer: runs rnn, lstm or gru.*got family 'mingru'"):
        fit(model, x, y, epochs=2, trainer="compiled")
    assert torch.equal(before, model.core.cells[0].weight_ih)


def test_compiled_epochs_stop_on_a_non_finite_loss_naming_the_epoch():
    """The whole run is one compiled call; a non-finite loss still stops it, before that epoch's step."""
    from nextchar.sequence.data import exam_data
    from nextchar.sequence.fitting import fit
    from nextchar.step import NonFiniteLossError

    _, x, y = exam_data()
    model = CharModel(ModelConfig(7, "gru", "scratch", 4, engine="fused"))
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    before = model.core.cells[0].weight_hh.detach().clone()
    with pytest.raises(NonFiniteLossError, match="at epoch 1;"):
        fit(model, x, y, epochs=5, trainer="compiled")
    assert torch.equal(model.core.cells[0].weight_hh, before)
