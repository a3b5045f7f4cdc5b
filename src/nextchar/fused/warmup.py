"""First calls of every fused kernel on tiny arrays: what a fresh process pays to compile or load them."""
from __future__ import annotations

import numpy as np

KERNELS = ("rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward")


def kernel_example_args(name: str, dtype=np.float32, T: int = 3, B: int = 2, H: int = 4) -> tuple:
    """Arguments of the right shapes and dtype for kernels.<name>."""
    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.random(shape).astype(dtype)

    def z(*shape):
        return np.zeros(shape, dtype)

    one = dtype(1)
    return {
        "rnn_forward": (r(T, B, H), r(H, H), r(H), r(B, H), False, one, dtype is np.float32, z(T, B, H)),
        "rnn_backward": (r(T, B, H), r(B, H), r(T, B, H), r(H, H), False, one, z(T, B, H)),
        "lstm_forward": (r(T, B, 4 * H), r(H, 4 * H), r(4 * H), r(B, H), r(B, H), one, dtype is np.float32,
                         z(T, B, H), z(T, B, H), z(T, B, H), z(T, B, 4 * H)),
        "lstm_backward": (r(T, B, H), r(B, H), r(B, H), r(T, B, H), r(T, B, H), r(B, H), r(T, B, 4 * H), r(4 * H, H),
                          one, z(T, B, 4 * H)),
        "gru_forward": (r(T, B, 3 * H), r(H, 3 * H), r(3 * H), r(B, H), one, dtype is np.float32, z(T, B, H),
                        z(T, B, 4 * H)),
        "gru_backward": (r(T, B, H), r(B, H), r(T, B, H), r(B, H), r(T, B, 4 * H), r(3 * H, H), one,
                         z(T, B, 3 * H), z(T, B, 3 * H)),
    }[name]


def first_calls() -> None:
    """Call every recurrence kernel and the compiled-epoch helpers once, in float32 and float64."""
    from . import compiled, kernels

    for dtype in (np.float32, np.float64):
        for name in KERNELS:
            getattr(kernels, name)(*kernel_example_args(name, dtype))
        x, w, b = np.ones((3, 2), dtype), np.ones((4, 2), dtype), np.ones(4, dtype)
        out = np.empty((3, 4), dtype)
        compiled.linear_forward(x, w, b, out)
        compiled.linear_backward(x, out, np.empty_like(w), np.empty_like(b))
        kernels.matmul_into(out, w, np.empty_like(x))
        compiled.softmax_cross_entropy(out, out, dtype(1 / 3), dtype is np.float32, np.empty_like(out),
                                       np.empty_like(out))
        compiled.adam_update(w, w.copy(), w.copy(), w.copy(), *compiled.adam_scalars(1, 0.1, dtype))
