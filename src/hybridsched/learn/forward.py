"""The pair scorer's forward pass, compiled: what the hybrid scores its shortlists with.

Kept apart from :mod:`hybridsched.learn.network` so that loading the policies
(and every CLI call) does not import torch; the weights come from a torch
model only when a policy is built (:func:`compiled_weights`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from hybridsched.learn.network import PairScorer

NEG = -1e9
"""Logit given to masked (infeasible) nodes; finite so that all-masked rows stay finite."""


def compiled_weights(model: PairScorer) -> tuple:
    """The weights of ``model`` as float32 arrays, for :func:`block_logits`.

    ``(w1 (F, H), b1, w2 (H, H), b2, head (H,), head bias (1,), prior (F,))``,
    the trunk's layers transposed; ``F`` is ``model.n_features``.
    """

    def arr(t: Any) -> np.ndarray:
        return np.array(t.detach().numpy(), dtype=np.float32, order="C")  # a copy

    first, second = model.trunk[0], model.trunk[2]
    return (
        arr(first.weight.T),
        arr(first.bias),
        arr(second.weight.T),
        arr(second.bias),
        arr(model.head.weight[0]),
        arr(model.head.bias),
        arr(model.prior.weight[0]),
    )


@njit(cache=True, error_model="numpy")
def _tanh(x):
    # A rational approximation on [-c, c] (odd degree 13 over even degree 6, the
    # coefficients of Eigen's fast float tanh): within 3e-7 of tanh everywhere,
    # about float32's rounding. No call into libm and no division check (the
    # denominator is > 0.004): loops over it vectorise.
    x = min(max(x, -7.90531110763549805), 7.90531110763549805)
    x2 = x * x
    p = -2.76076847742355e-16
    p = p * x2 + 2.00018790482477e-13
    p = p * x2 - 8.60467152213735e-11
    p = p * x2 + 5.12229709037114e-08
    p = p * x2 + 1.48572235717979e-05
    p = p * x2 + 6.37261928875436e-04
    p = p * x2 + 4.89352455891786e-03
    q = 1.19825839466702e-06
    q = q * x2 + 1.18534705686654e-04
    q = q * x2 + 2.26843463243900e-03
    q = q * x2 + 4.89352518554385e-03
    return p * x / q


@njit(cache=True, error_model="numpy")
def block_logits(xt, net, h1, h2, out):
    """:meth:`PairScorer.score` of a block of pairs, compiled, in float32 as torch's.

    Equal to torch's forward to about 1e-5 (tanh approximated within 3e-7, the
    sums in another order); a block's pairs side by side so that every loop
    runs over them (vectorised).

    Args:
        xt: ``(>= F, P)`` the pairs' features, one column per pair (the
            network reads the first ``F`` rows, ``F = n_features``).
        net: :func:`compiled_weights`.
        h1, h2: scratch, ``(H, >= P)`` float32.
        out: ``(>= P,)`` float64, the scores (written in ``0..P-1``).
    """
    w1, b1, w2, b2, wh, bh, wp = net
    n = xt.shape[1]
    for o in range(b1.shape[0]):
        _unit(xt, w1, b1[o], o, n, h1[o])
    for q in range(n):
        out[q] = bh[0]
    for o in range(b2.shape[0]):
        _unit(h1, w2, b2[o], o, n, h2[o])
        w = wh[o]
        for q in range(n):
            out[q] += w * h2[o, q]
    prior = h1[0]  # the linear term, after the trunk no longer needs h1
    prior[:n] = 0.0
    for f in range(wp.shape[0]):
        w = wp[f]
        x = xt[f]
        for q in range(n):
            prior[q] += w * x[q]
    for q in range(n):
        out[q] += prior[q]


@njit(cache=True, error_model="numpy")
def _unit(x, w, bias, o, n, h):
    # one hidden unit over a block of pairs: h[q] = tanh(bias + sum_f w[f, o] x[f, q]), the
    # sum in f order; four inputs per pass over the pairs, each pair's partial sum held in a
    # register between them (the same additions in the same order: the same bits, measured
    # 20-28 % faster than one input per pass)
    nf = w.shape[0]
    f4 = nf - nf % 4
    for q in range(n):
        h[q] = bias
    for f in range(0, f4, 4):
        w0, w1, w2, w3 = w[f, o], w[f + 1, o], w[f + 2, o], w[f + 3, o]
        x0, x1, x2, x3 = x[f], x[f + 1], x[f + 2], x[f + 3]
        for q in range(n):
            a = h[q]
            a += w0 * x0[q]
            a += w1 * x1[q]
            a += w2 * x2[q]
            a += w3 * x3[q]
            h[q] = a
    for f in range(f4, nf):
        wf = w[f, o]
        xf = x[f]
        for q in range(n):
            h[q] += wf * xf[q]
    for q in range(n):
        h[q] = _tanh(h[q])
