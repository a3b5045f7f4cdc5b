"""The GPU trainer (``fused/cuda_trainer.py``) against the CPU trainer, on numba's CUDA simulator, and its
kernel typed for a real GPU where the CUDA toolkit's compiler (NVVM) is installed.

Each runs in a fresh process: the simulator is chosen when numba.cuda is first imported
(``NUMBA_ENABLE_CUDASIM=1``), and the simulator runs every thread in Python, so the runs are short (a
150-step text crosses one BPTT chunk boundary; K = 3 models, not a multiple of the warp).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.slow]  # end to end: CI runs it

_AGAINST_CPU = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from nextchar.fused.compiled import train_models

    family, relu, dtype = sys.argv[1], sys.argv[2] == "relu", np.dtype(sys.argv[3]).type
    H, G = {"rnn": (3, 3), "lstm": (3, 12), "gru": (3, 9)}[family]
    text = "hi?hello!!" * 15
    chars = sorted(set(text))
    V, T, K, E = len(chars), len(text) - 1, 3, 3
    codes = np.array([chars.index(c) for c in text])
    xs, targets = np.eye(V, dtype=dtype)[codes[:-1]], np.eye(V, dtype=dtype)[codes[1:]]
    rng = np.random.default_rng(0)
    init = [rng.uniform(-0.6, 0.6, (K, *shape)).astype(dtype) for shape in ((G, V), (G, H), (G,), (G,), (V, H), (V,))]
    lrs = [0.01, 0.03, 0.1]

    alone = []  # each model by the CPU trainer, one lane
    for k in range(K):
        params = [p[k:k + 1].copy() for p in init]
        alone.append((params, train_models(params, family, relu, xs, targets, lrs[k:k + 1], E)))

    together = [p.copy() for p in init]  # one block of K lanes on the GPU
    run = train_models(together, family, relu, xs, targets, lrs, E, on_gpu=True)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for k, (params, cpu) in enumerate(alone):
        assert run.done[k] == cpu.done[0] == E, (run.done, cpu.done)
        torch.testing.assert_close(torch.from_numpy(run.losses[k]), torch.from_numpy(cpu.losses[0]), **tol)
        assert (run.correct[k] == cpu.correct[0]).all()
        torch.testing.assert_close(torch.from_numpy(run.probs[k]), torch.from_numpy(cpu.probs[0]), **tol)
        for trained, expected in zip(together, params):
            torch.testing.assert_close(torch.from_numpy(trained[k]), torch.from_numpy(expected[0]), **tol)
    # the models learned something: the check above could not pass on untouched weights
    assert np.abs(together[1] - init[1]).max() > 1e-3
    print("ok")
""")


def _run(code: str, *args: str, simulator: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1" if simulator else "0"}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("family, activation, dtype", [
    ("rnn", "tanh", "float32"), ("rnn", "relu", "float32"), ("lstm", "tanh", "float32"), ("gru", "tanh", "float32"),
    ("lstm", "tanh", "float64")])
def test_gpu_trainer_matches_the_cpu_trainer_on_the_simulator(family, activation, dtype):
    out = _run(_AGAINST_CPU, family, activation, dtype, simulator=True)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-4000:]


_TYPED_FOR_A_GPU = textwrap.dedent("""
    import numpy as np
    import numba.cuda.dispatcher
    from numba import cuda, typeof
    from numba.cuda.cudadrv import nvvm
    from nextchar.fused.cuda_trainer import train_kernel
    from nextchar.fused.workspace import Record, Weights, problem, workspace

    if not nvvm.is_available():
        print("no nvvm")
        raise SystemExit

    class Hopper:  # numba compiles each device function for the current GPU's compute capability: there is none
        compute_capability = (9, 0)

    numba.cuda.dispatcher.get_current_device = lambda: Hopper
    T, V, H, G, L, E = 9, 7, 4, 16, 33, 2
    f = np.float32
    a = lambda *shape: np.zeros(shape, f)
    text = problem(1, False, a(T, V), a(T, V))
    weights = Weights(a(G, V * L), a(G, H * L), a(G * L), a(G * L), a(V, H * L), a(V * L))
    flat = (a(100), a(100), a(100), a(100))
    record = Record(np.zeros((E, L)), np.zeros((E, L), np.int64), a(T, V * L))
    args = (text, weights, weights, flat, a(E, 6, L), record, workspace(text, weights, L), np.zeros(L, np.int64))
    ptx, _ = cuda.compile_ptx(train_kernel.py_func, tuple(typeof(x) for x in args), cc=(9, 0))
    assert ".entry" in ptx and "ex2" in ptx
    print("ok")
""")


def test_gpu_trainer_kernel_compiles_for_a_gpu():
    """The simulator runs Python; this types and compiles the real kernel (to PTX, sm_90), with no GPU needed."""
    out = _run(_TYPED_FOR_A_GPU, simulator=False)
    if out.stdout.strip() == "no nvvm" or "NvvmSupportError" in out.stderr:
        pytest.skip("the CUDA toolkit's NVVM is not installed")
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-4000:]


def test_many_on_cuda_without_a_gpu_is_a_clear_error_before_any_work():
    import torch

    from nextchar.config import ModelConfig
    from nextchar.model import CharModel
    from nextchar.sequence.data import exam_data
    from nextchar.sequence.many import fit_many

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    _, x, y = exam_data()
    model = CharModel(ModelConfig(7, "rnn", "cell", 8))
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="cuda"):
        fit_many([model], x, y, epochs=2, device="cuda")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
