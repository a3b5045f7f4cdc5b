"""Micro-benchmark for #19: the per-step hidden matmul gh (G, L) = W_hh h in lanes layout, three loop orders,
at one lane (the compiled engine) and 32 (the many engine). Same per-element accumulation order (p ascending)."""
import time
import numpy as np
from numba import njit

@njit(cache=False)
def dot_form(h, w, gh, steps):          # w (G, H, L): the current trainer's order
    G, H, L = w.shape
    for _ in range(steps):
        for g in range(G):
            for k in range(L):
                gh[g, k] = 0.0
            for p in range(H):
                for k in range(L):
                    gh[g, k] += h[p, k] * w[g, p, k]

@njit(cache=False)
def outer_form(h, wt, gh, steps):       # wt (H, G, L): p outermost, (g, k) inner
    H, G, L = wt.shape
    for _ in range(steps):
        gh[:] = 0.0
        for p in range(H):
            for g in range(G):
                for k in range(L):
                    gh[g, k] += h[p, k] * wt[p, g, k]

@njit(cache=False)
def flat_form(h, wt, gh, hb, steps):    # (g, k) flattened, h broadcast once per step into hb (H, G*L)
    H, G, L = wt.shape
    n = G * L
    w2, g2 = wt.reshape(H, n), gh.reshape(n)
    for _ in range(steps):
        for p in range(H):
            for g in range(G):
                for k in range(L):
                    hb[p, g * L + k] = h[p, k]
        for m in range(n):
            g2[m] = 0.0
        for p in range(H):
            for m in range(n):
                g2[m] += hb[p, m] * w2[p, m]

for G, H in ((8, 8), (16, 4), (24, 8)):
    for L in (1, 32):
        rng = np.random.default_rng(0)
        h = rng.random((H, L)).astype(np.float32); w = rng.random((G, H, L)).astype(np.float32)
        wt = np.ascontiguousarray(w.transpose(1, 0, 2)); gh = np.empty((G, L), np.float32)
        hb = np.empty((H, G * L), np.float32)
        res = {}
        for name, f, args in (("dot", dot_form, (h, w, gh)), ("outer", outer_form, (h, wt, gh)),
                              ("flat", flat_form, (h, wt, gh, hb))):
            f(*args, 10)
            t = time.perf_counter(); f(*args, 100_000); res[name] = (time.perf_counter() - t) / 100_000 * 1e9
            ref = gh.copy() if name == "dot" else ref
            assert np.array_equal(gh, ref), name
        print(f"G={G} H={H} L={L}: " + ", ".join(f"{k} {v:.0f} ns/step" for k, v in res.items()))
