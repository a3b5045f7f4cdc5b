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

from nextchar.fused import lane_trainer as tr
from nextchar.fused import lanes as ln
from nextchar.sequence.protocol import HIDDEN_SIZE

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
FAMILY = {"rnn": 0, "lstm": 1, "gru": 2}


@njit(error_model="numpy")
def _time_forward(n, rows, family, one, xs, w_ih_t, b_ih, gi, w_hh_t, b_hh, gh, hs, cs, tanh_cs, gates, lanes):
    T = hs.shape[0] - 1
    for _ in range(n):
        for t0 in range(0, T, rows):
            tr._forward(family, False, one, t0, min(T, t0 + rows), xs, w_ih_t, b_ih, gi, w_hh_t, b_hh, gh, hs, cs,
                        tanh_cs, gates, lanes)


@njit(error_model="numpy")
def _time_head(n, rows, hs, w_out, w_out_t, b_out, targets, target_t, best_target, mass, scale, logits, probs,
               dlogits, tops, denom, best, right, total, dhs, d_w_out, d_b_out, lanes):
    T = targets.shape[0]
    for _ in range(n):
        for t0 in range(0, T, rows):
            tr._head(t0, min(T, t0 + rows), hs, w_out, w_out_t, b_out, targets, target_t, best_target, mass, scale,
                     logits, probs, dlogits, tops, denom, best, right, total, dhs, d_w_out, d_b_out, lanes)


@njit(error_model="numpy")
def _time_backward(n, rows, family, one, dhs, w_hh, hs, cs, tanh_cs, gates, dh_next, dc_next, dgh, dgi, lanes):
    T = dhs.shape[0]
    for _ in range(n):
        for t1 in range(T, 0, -rows):
            tr._backward(family, False, one, max(0, t1 - rows), t1, dhs, w_hh, hs, cs, tanh_cs, gates, dh_next,
                         dc_next, dgh, dgi, lanes)


@njit(error_model="numpy")
def _time_gradients(n, rows, family, xs, hs, dgh, dgi, grads, lanes):
    T = hs.shape[0] - 1
    for _ in range(n):
        for t1 in range(T, 0, -rows):
            tr._gradients(family, max(0, t1 - rows), t1, xs, hs, dgh, dgi, grads, lanes)


@njit(error_model="numpy")
def _time_adam(n, rows, params, grads, means, squares, a, lanes):
    for _ in range(n):
        tr._adam_all(params, grads, means, squares, a, lanes)


def phase_times(family: str, L: int, epochs: int, reps: int, T: int = 999, V: int = 7) -> dict:
    """µs per model-epoch of each phase for ``family`` at L lanes."""
    H = HIDDEN_SIZE[family]
    G, HL, dt, one = GATES[family] * H, H * L, np.float32, np.float32(1)
    rng = np.random.default_rng(0)
    lanes = ln.lane_tag(L)
    xs, targets = np.eye(V, dtype=dt)[rng.integers(0, V, T)], np.eye(V, dtype=dt)[rng.integers(0, V, T)]

    def r(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(dt)

    params = (r(G, V * L), r(G, HL), r(G * L), r(G * L), r(V, HL), r(V * L))
    w_ih, w_hh, b_ih, b_hh, w_out, b_out = params
    w_ih_t, w_hh_t, w_out_t = np.empty((V, G * L), dt), np.empty((H, G * L), dt), np.empty((H, V * L), dt)
    ln.transpose(w_ih, w_ih_t, lanes), ln.transpose(w_hh, w_hh_t, lanes), ln.transpose(w_out, w_out_t, lanes)
    head_rows, project_rows = tr.pass_rows(L, T)  # the passes train_block makes
    B = tr.BPTT_CHUNK
    gi, gh = np.empty((project_rows, G * L), dt), np.empty((1, G * L), dt)
    hs, cs, tanh_cs, gates = np.zeros((T + 1, HL), dt), np.zeros((T + 1, HL), dt), np.empty((T, HL), dt), \
        np.empty((T, 4 * HL), dt)
    probs, (logits, dlogits) = np.zeros((T, V * L), dt), (np.zeros((head_rows, V * L), dt) for _ in range(2))
    dhs = np.empty((T, HL), dt)
    best_target, mass, target_t = tr._shared_targets(targets)
    grads = tuple(np.zeros_like(p) for p in params)
    means, squares = tuple(np.zeros_like(p) for p in params), tuple(np.zeros_like(p) for p in params)
    code = FAMILY[family]
    phases = {
        "forward": (_time_forward, (head_rows, code, one, xs, w_ih_t, b_ih, gi, w_hh_t, b_hh, gh, hs, cs, tanh_cs,
                                    gates, lanes)),
        "head + loss": (_time_head, (head_rows, hs, w_out, w_out_t, b_out, targets, target_t, best_target, mass,
                                     dt(1 / T),
                                     logits, probs, dlogits, np.empty((head_rows, L), dt), np.empty(L, dt),
                                     np.zeros(L, np.int32), np.zeros(L, np.int64),
                                     np.zeros(L), dhs, grads[4], grads[5], lanes)),
        "backward": (_time_backward, (B, code, one, dhs, w_hh, hs, cs, tanh_cs, gates, np.empty((1, HL), dt),
                                      np.empty((1, HL), dt), np.empty((B, G * L), dt), np.empty((B, G * L), dt),
                                      lanes)),
        "gradients": (_time_gradients, (B, code, xs, hs, np.zeros((B, G * L), dt), np.zeros((B, G * L), dt), grads,
                                        lanes)),
        "adam": (_time_adam, (0, params, grads, means, squares, np.full((6, L), 1e-3, dt), lanes)),
    }
    out = {}
    for name, (run, args) in phases.items():
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
