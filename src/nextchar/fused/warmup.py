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
        "rnn_forward": (r(T, B, H), r(H, H), r(H), r(B, H), False, one, z(T, B, H)),
        "rnn_backward": (r(T, B, H), r(B, H), r(T, B, H), r(H, H), False, one, z(T, B, H)),
        "lstm_forward": (r(T, B, 4 * H), r(H, 4 * H), r(4 * H), r(B, H), r(B, H), one,
                         z(T, B, H), z(T, B, H), z(T, B, H), z(T, B, 4 * H)),
        "lstm_backward": (r(T, B, H), r(B, H), r(B, H), r(T, B, H), r(T, B, H), r(B, H), r(T, B, 4 * H), r(4 * H, H),
                          one, z(T, B, 4 * H)),
        "gru_forward": (r(T, B, 3 * H), r(H, 3 * H), r(3 * H), r(B, H), one, z(T, B, H),
                        z(T, B, 4 * H)),
        "gru_backward": (r(T, B, H), r(B, H), r(T, B, H), r(B, H), r(T, B, 4 * H), r(3 * H, H), one,
                         z(T, B, 3 * H), z(T, B, 3 * H)),
    }[name]


def first_calls() -> None:
    """Call every recurrence kernel and the compiled trainer (one lane, and a parallel block of LANES) once,
    in float32 and float64: the family is a value, so one call compiles the trainer for all three."""
    from . import kernels, lane_trainer

    for dtype in (np.float32, np.float64):
        for name in KERNELS:
            getattr(kernels, name)(*kernel_example_args(name, dtype))
        kernels.matmul_into(np.ones((3, 4), dtype), np.ones((4, 2), dtype), np.empty((3, 2), dtype))
        for width in (1, lane_trainer.LANES):  # the compiled engine's width and the many engine's
            args = _trainer_example_args(dtype, width)
            if width == 1:  # the compiled engine calls one block directly
                lane_trainer.train_block(*args[:7], *(a[0] for a in args[7:]))
            else:
                lane_trainer.train_lanes(*args)


def _trainer_example_args(dtype, L: int, T: int = 3, I: int = 2, H: int = 2) -> tuple:
    """One block of L lanes, one epoch of an lstm: train_lanes' arguments of the right shapes and dtype (the
    family and relu are values, not types: one compilation serves them all)."""
    from .compiled import adam_table
    from .lane_trainer import lane_tag

    xs, targets = np.eye(I, dtype=dtype)[[0, 1, 0]], np.eye(I, dtype=dtype)[[1, 0, 1]]
    G = 4 * H
    params = [np.full(shape, 0.1, dtype) for shape in ((1, G, I * L), (1, G, H * L), (1, G * L), (1, G * L),
                                                         (1, I, H * L), (1, I * L))]
    adam = np.repeat(adam_table([0.1], 1, dtype)[..., None], L, axis=3)  # (1 block, 1 epoch, 6, L)
    return (lane_tag(L), 1, False, dtype(1), xs, targets, dtype(1 / T), *params, adam,
            np.zeros((1, 1, L)), np.zeros((1, 1, L), np.int64), np.empty((1, T, I * L), dtype))
