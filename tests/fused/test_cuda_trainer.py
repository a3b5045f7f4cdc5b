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
    from nextchar.fused.compiled import FAMILY_CODES, adam_table
    from nextchar.fused.cuda_trainer import train_on_gpu
    from nextchar.fused.lane_trainer import lane_tag, train_block
    from nextchar.sequence.many import _flat_lanes, _from_lanes, _to_lanes

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
    adam = adam_table(lrs, E, dtype)  # (K, E, 6)

    alone = []  # each model by the CPU trainer, one lane
    for k in range(K):
        params = [p[k].copy() for p in init]
        losses, correct = np.zeros((E, 1)), np.zeros((E, 1), np.int64)
        probs = np.empty((T, V), dtype)
        done = train_block(lane_tag(1), FAMILY_CODES[family], relu, dtype(1), xs, targets, dtype(1 / T), *params,
                           adam[k][..., None], losses, correct, probs)
        alone.append((params, losses[:, 0], correct[:, 0], probs, done))

    laned = [_to_lanes(p, K)[0] for p in init]  # one block of K lanes
    losses, correct = np.zeros((E, K)), np.zeros((E, K), np.int64)
    probs = np.empty((T, V, K), dtype)
    done = train_on_gpu(FAMILY_CODES[family], relu, dtype(1), xs, targets, dtype(1 / T),
                        *[_flat_lanes(p[None])[0] for p in laned], _to_lanes(adam, K)[0], losses, correct,
                        probs.reshape(T, V * K))
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for k, (params, loss, right, p, epochs) in enumerate(alone):
        assert done[k] == epochs == E, (done, epochs)
        torch.testing.assert_close(torch.from_numpy(losses[:, k]), torch.from_numpy(loss), **tol)
        assert (correct[:, k] == right).all()
        torch.testing.assert_close(torch.from_numpy(probs[..., k]), torch.from_numpy(p), **tol)
        for trained, expected in zip(laned, params):
            torch.testing.assert_close(torch.from_numpy(_from_lanes(trained[None], K)[k]), torch.from_numpy(expected),
                                       **tol)
    # the models learned something: the check above could not pass on untouched weights
    assert np.abs(laned[1] - _to_lanes(init[1], K)[0]).max() > 1e-3
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
    from nextchar.fused.cuda_trainer import _train_kernel

    if not nvvm.is_available():
        print("no nvvm")
        raise SystemExit

    class Hopper:  # numba compiles each device function for the current GPU's compute capability: there is none
        compute_capability = (9, 0)

    numba.cuda.dispatcher.get_current_device = lambda: Hopper
    T, V, H, G, L, E = 9, 7, 4, 16, 33, 2
    f = np.float32
    a = lambda *shape: np.zeros(shape, f)
    views = [a(G, V * L), a(G, H * L), a(G * L), a(G * L), a(V, H * L), a(V * L)]
    args = (1, True, f(1), a(T, V), a(T, V), np.zeros(T, np.int32), a(T), f(1), a(100), *views, a(100), *views,
            a(100), a(100), a(E, 6, L), np.zeros((E, L)), np.zeros((E, L), np.int64), a(T, V * L), a(T + 1, H * L),
            a(T + 1, H * L), a(T, H * L), a(T, 4 * H * L), a(T, H * L), a(V * L), a(H * L), a(H * L), a(8, G * L),
            a(8, G * L), np.zeros(L, np.int64))
    ptx, _ = cuda.compile_ptx(_train_kernel.py_func, tuple(typeof(x) for x in args), cc=(9, 0))
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
