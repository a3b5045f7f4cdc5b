"""Where the compiled trainer's epoch goes: each phase of ``fused/lane_trainer.train_block`` timed alone, at one lane
(the compiled engine) and at 32 (a block of the many engine), on one core, exam sizes (T 999, V 7).

    python bench/trainer_phases.py [--family rnn --family lstm ...] [--lanes 1 --lanes 32] [--reps 5]

Prints a table of µs per model-epoch for each phase and one JSON line ({"phases": [...]}) at the end. Each
figure is the minimum over ``--reps`` runs of ``--epochs`` calls (the machine is shared: the minimum is
the least disturbed). The phases are the trainer's own functions on buffers shaped as train_block's.
"""
import argparse
import json
import time

import numpy as np
from numba import njit

from nextchar.fused.compiled import FAMILY_CODES
from nextchar.fused.lane_trainer import adam_step, bptt_pass, forward_pass, gradient_pass, head_pass
from nextchar.fused.lanes import lane_tag, transpose
from nextchar.fused.workspace import BPTT_CHUNK, Weights, like, problem, workspace
from nextchar.sequence.protocol import HIDDEN_SIZE

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@njit(error_model="numpy")
def _time_forward(n, text, weights, work, grads, lanes):
    T, rows = text.xs.shape[0], work.logits.shape[0]
    for _ in range(n):
        for t0 in range(0, T, rows):
            forward_pass(text, t0, min(T, t0 + rows), weights, work, lanes)


@njit(error_model="numpy")
def _time_head(n, text, weights, work, grads, lanes):
    T, rows = text.xs.shape[0], work.logits.shape[0]
    probs = np.zeros((T, weights.b_out.shape[0]), text.xs.dtype)
    for _ in range(n):
        for t0 in range(0, T, rows):
            head_pass(text, t0, min(T, t0 + rows), weights, work, probs, grads, lanes)


@njit(error_model="numpy")
def _time_backward(n, text, weights, work, grads, lanes):
    T = text.xs.shape[0]
    for _ in range(n):
        for t1 in range(T, 0, -BPTT_CHUNK):
            bptt_pass(text, max(0, t1 - BPTT_CHUNK), t1, weights, work, lanes)


@njit(error_model="numpy")
def _time_gradients(n, text, weights, work, grads, lanes):
    T = text.xs.shape[0]
    for _ in range(n):
        for t1 in range(T, 0, -BPTT_CHUNK):
            gradient_pass(text, max(0, t1 - BPTT_CHUNK), t1, work, grads, lanes)


@njit(error_model="numpy")
def _time_adam(n, text, weights, work, grads, lanes):
    means, squares = like(weights), like(weights)
    a = np.full((6, work.total.shape[0]), 1e-3, text.xs.dtype)
    for _ in range(n):
        adam_step(weights, grads, means, squares, a, lanes)


PHASES = {"forward": _time_forward, "head + loss": _time_head, "backward": _time_backward,
          "gradients": _time_gradients, "adam": _time_adam}


def phase_times(family: str, L: int, epochs: int, reps: int, T: int = 999, V: int = 7) -> dict:
    """µs per model-epoch of each phase for ``family`` at L lanes, on the trainer's own buffers
    (``workspace.workspace``, as ``train_block`` makes them)."""
    H = HIDDEN_SIZE[family]
    G, HL, dt = GATES[family] * H, H * L, np.float32
    rng = np.random.default_rng(0)
    lanes = lane_tag(L)
    xs, targets = np.eye(V, dtype=dt)[rng.integers(0, V, T)], np.eye(V, dtype=dt)[rng.integers(0, V, T)]

    def r(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(dt)

    text = problem(FAMILY_CODES[family], False, xs, targets)
    weights = Weights(r(G, V * L), r(G, HL), r(G * L), r(G * L), r(V, HL), r(V * L))
    work = workspace(text, weights, L)
    transpose(weights.w_ih, work.w_ih_t, lanes), transpose(weights.w_hh, work.w_hh_t, lanes)
    transpose(weights.w_out, work.w_out_t, lanes)
    work.hs[:], work.cs[:] = 0, 0
    args = (text, weights, work, like(weights), lanes)
    out = {}
    for name, run in PHASES.items():
        run(1, *args)  # compile
        best = min(_seconds(run, epochs, args) for _ in range(reps))
        out[name] = 1e6 * best / epochs / L
    return out


def _seconds(run, n, args) -> float:
    start = time.perf_counter()
    run(n, *args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", action="append", choices=list(GATES))
    parser.add_argument("--lanes", action="append", type=int)
    parser.add_argument("--epochs", type=int, default=20, help="calls per timing (default 20)")
    parser.add_argument("--reps", type=int, default=5, help="timings per phase; the minimum is kept (default 5)")
    args = parser.parse_args()
    rows = []
    for family in args.family or list(GATES):
        for L in args.lanes or [1, 32]:
            times = phase_times(family, L, args.epochs, args.reps)
            rows.append({"family": family, "lanes": L, "us_per_model_epoch": times, "total": sum(times.values())})
            print(f"{family:5s} L={L:3d} " + ", ".join(f"{k} {v:.1f}" for k, v in times.items())
                  + f"; total {rows[-1]['total']:.1f} us per model-epoch (one core)", flush=True)
    print(json.dumps({"phases": rows}))


if __name__ == "__main__":
    main()
