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
    """Call every recurrence kernel and the compiled trainer (each family, one lane and a parallel block)
    once, in float32 and float64."""
    from . import kernels, trainer

    for dtype in (np.float32, np.float64):
        for name in KERNELS:
            getattr(kernels, name)(*kernel_example_args(name, dtype))
        kernels.matmul_into(np.ones((3, 4), dtype), np.ones((4, 2), dtype), np.empty((3, 2), dtype))
        for family, gates in ((0, 1), (1, 4), (2, 3)):
            for relu in ((False, True) if family == 0 else (False,)):
                trainer.train_lanes(*_trainer_example_args(family, relu, gates, dtype))


def _trainer_example_args(family: int, relu: bool, gates: int, dtype, T: int = 3, I: int = 2, H: int = 2,
                          L: int = 2) -> tuple:
    """One block of L lanes, one epoch: train_lanes' arguments of the right shapes and dtype."""
    from .compiled import adam_scalars

    xs, targets = np.eye(I, dtype=dtype)[[0, 1, 0]], np.eye(I, dtype=dtype)[[1, 0, 1]]
    params = [np.full(shape, 0.1, dtype) for shape in ((1, gates * H, I, L), (1, gates * H, H, L), (1, gates * H, L),
                                                         (1, gates * H, L), (1, I, H, L), (1, I, L))]
    adam = np.repeat(np.array(adam_scalars(1, 0.1, dtype), dtype)[None, None, :, None], L, axis=3)
    return (family, relu, dtype is np.float32, dtype(1), xs, targets, dtype(1 / T), *params, adam,
            np.zeros((1, 1, L)), np.zeros((1, 1, L), np.int64), np.empty((1, T, I, L), dtype))
