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
    """Call every recurrence kernel and the compiled trainer once, in float32 and float64: through its host
    with 1 model (one block, called directly), 2 (one-lane blocks in parallel) and LANES (a block of many
    lanes), the three ways it runs. The family is a value, so one call compiles the trainer for all three."""
    from . import kernels
    from .compiled import train_models
    from .lane_trainer import LANES

    for dtype in (np.float32, np.float64):
        for name in KERNELS:
            getattr(kernels, name)(*kernel_example_args(name, dtype))
        kernels.matmul_into(np.ones((3, 4), dtype), np.ones((4, 2), dtype), np.empty((3, 2), dtype))
        xs, targets = np.eye(2, dtype=dtype)[[0, 1, 0]], np.eye(2, dtype=dtype)[[1, 0, 1]]
        for models in (1, 2, LANES):
            params = [np.full((models, *shape), 0.1, dtype) for shape in ((8, 2), (8, 2), (8,), (8,), (2, 2), (2,))]
            train_models(params, "lstm", False, xs, targets, [0.1] * models, 1)
