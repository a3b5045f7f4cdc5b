"""The many-models engine on the CPU: K independent models of one family and size, trained in one call.

Each model is one :func:`compiled.train_epochs` call, the same compiled code the compiled engine runs for
one model, so each model's result equals training it alone with ``engine="compiled"``, bit for bit.
The models are spread over the CPU cores with numba's ``prange``.

Shapes: K models; parameters stacked on a leading K axis (``w_ih`` (K, G, I), ``b_ih`` (K, G), ...);
``adam`` (K, E, 6): each model's Adam scalars per epoch (its own learning rate); ``losses`` and
``correct`` (K, E); ``probs`` (K, T, V): each model's last forward pass.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .compiled import train_epochs


@njit(cache=True, parallel=True)
def train_many(family, relu, fast_exp, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam,
               losses, correct, probs):
    """Train every model in place; returns each model's completed epochs (K,)."""
    K = w_ih.shape[0]
    done = np.zeros(K, np.int64)
    for k in prange(K):
        done[k] = train_epochs(family, relu, fast_exp, one, xs, targets, scale, w_ih[k], w_hh[k], b_ih[k], b_hh[k],
                               w_out[k], b_out[k], adam[k], losses[k], correct[k], probs[k])
    return done
