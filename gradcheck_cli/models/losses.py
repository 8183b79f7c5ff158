"""Losses, each value next to its gradient.

Shapes: ``m`` samples, ``k`` outputs.  ``value`` accepts leading batch axes
(``(..., m, k)`` -> ``(...)``) so a batch of perturbed outputs is scored in one
call; it always divides by the sample count ``m``.

``mse`` scores the output ``Z^L = sigma_L(A^L)``.  ``bce`` and ``softmax-ce``
are *fused* with their output activation (sigmoid, softmax): they score the
logits ``A^L`` directly, which is both numerically stable and the reason their
gradient with respect to ``A^L`` is the simple ``(P - Y) / m``.

``change`` returns ``value(out + d) - value(out)`` per batch entry, computed
without subtracting two nearly equal totals (the incremental engine's lower
noise floor comes from here).

``rank_one`` serves the commonest change of all: moving one unit ``j`` of the last
hidden layer moves the output by ``t_i w_j`` in sample ``i`` (``w_j``, row ``j`` of
the output weights).  The change is then a polynomial in each ``t_i`` whose
coefficients depend only on ``j`` and ``i`` and are computed once: exact for mse
(order 2), and for the fused losses the Taylor series of the function itself
(``lse`` and ``softplus``), to order 5 (``activations.series_order``), used only where
``|t_i| * spread_j <= SERIES_REACH`` so that the first term left out is below
round-off.  It evaluates the loss's change, never the model's backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .activations import factorial_scaled, sigmoid, softplus, softplus_derivatives

Array = npt.NDArray[Any]


# Where the series is used: the left-out terms are O((|t| spread)^6 / 6!) times the
# loss's own scale, 1e-18 at this reach (measured against extended precision: 2e-19),
# far below a float64 loss's round-off; central steps stay near 1e-5, Richardson's
# first step just inside.
SERIES_REACH = 3e-3


@dataclass(frozen=True)
class RankOne:
    """``value(out + t w_j^T) - value(out) = (1/m) sum_i sum_n coefficients[n-1][j, i] t_i^n``
    for every row ``w_j`` of the output weights (``coefficients``: (rows, m) or
    (rows, 1) each).  ``spread`` (rows,): the exact value is this polynomial only
    where ``|t_i| spread_j <= SERIES_REACH``; None: everywhere (a quadratic loss)."""

    coefficients: list[Array]
    spread: Array | None


@dataclass(frozen=True)
class Loss:
    """A scalar loss of the network output and the targets.

    Its structure, which the incremental engine exploits, is stated here rather
    than recognised from the name: ``rank_one(out, targets, w)`` gives the loss's
    change under ``out + t w_j^T`` as a polynomial in ``t`` (``RankOne``), for the
    rows of the output weights and for the unit rows ``e_j`` (one output column
    moved).
    """

    name: str
    output_activation: str
    fused: bool
    value: Callable[[Array, Array], Array]
    gradient: Callable[[Array, Array], Array]
    change: Callable[[Array, Array, Array], Array]
    make_targets: Callable[[np.random.Generator, int, int], Array]
    min_outputs: int = 1
    rank_one: Callable[[Array, Array, Array], RankOne] | None = None


# ---- mse:  J = 1/(2m) ||Z - Y||_F^2 ------------------------------------------------------


def _mse_value(z: Array, y: Array) -> Array:
    r = z - y
    # r * r, not |r|^2: the square must stay analytic for complex step.
    return cast(Array, (r * r).sum(axis=(-2, -1)) / (2 * z.shape[-2]))


def _mse_gradient(z: Array, y: Array) -> Array:
    """dJ/dZ: (m, k)."""
    return cast(Array, (z - y) / z.shape[-2])


def _mse_change(z: Array, y: Array, d: Array) -> Array:
    # (r + d)^2 - r^2 = d (2 r + d): exact, no large common part.
    return cast(Array, (d * (2.0 * (z - y) + d)).sum(axis=(-2, -1)) / (2 * z.shape[-2]))


def _mse_rank_one(z: Array, y: Array, w: Array) -> RankOne:
    # sum_k (r_ik + t w_jk)^2 - r_ik^2 = 2 t (r_i . w_j) + t^2 |w_j|^2, exactly.
    first = ((z - y) @ w.T).T  # (rows, m)
    second = 0.5 * np.einsum("jk,jk->j", w, w)[:, None]
    return RankOne([np.ascontiguousarray(first), second], None)


def _mse_targets(rng: np.random.Generator, m: int, k: int) -> Array:
    return rng.standard_normal((m, k))


# ---- bce:  J = 1/m sum softplus(s A),  s = 1 - 2Y  (= -y log p - (1-y) log(1-p)) ---------


def _bce_value(a: Array, y: Array) -> Array:
    # For y in {0, 1}: -log sigmoid(a) = softplus(-a), -log(1 - sigmoid(a)) = softplus(a).
    # Every term is non-negative, so no cancellation between terms.
    return cast(Array, softplus((1.0 - 2.0 * y) * a).sum(axis=(-2, -1)) / a.shape[-2])


def _bce_gradient(a: Array, y: Array) -> Array:
    """dJ/dA^L: (m, k)."""
    return cast(Array, (sigmoid(a) - y) / a.shape[-2])


def _bce_change(a: Array, y: Array, d: Array) -> Array:
    # softplus(x + e) - softplus(x) = log1p(sigmoid(x) expm1(e)).
    s = 1.0 - 2.0 * y
    return cast(Array, np.log1p(sigmoid(s * a) * np.expm1(s * d)).sum(axis=(-2, -1)) / a.shape[-2])


def _bce_rank_one(a: Array, y: Array, w: Array) -> RankOne:
    # softplus(x + e) - softplus(x) = sum_n f^(n)(x) e^n / n!, x = s a, e = s t w:
    # the derivatives of softplus are polynomials in sigma = sigmoid(x).
    s = 1.0 - 2.0 * y
    terms = [(fn * s**n) @ (w.T**n) for n, fn in enumerate(softplus_derivatives(sigmoid(s * a)), start=1)]
    coefficients = [np.ascontiguousarray(c.T) for c in factorial_scaled(terms)]  # (rows, m) each
    return RankOne(coefficients, np.abs(w).max(axis=1))


def _bce_targets(rng: np.random.Generator, m: int, k: int) -> Array:
    return rng.integers(0, 2, size=(m, k)).astype(np.float64)


# ---- softmax-ce:  J = 1/m sum_i (logsumexp(A_i) - A_i[y_i]),  y integer labels ---------


def _pick(x: Array, labels: Array) -> Array:
    """``x[..., i, labels[i]]`` for every row ``i``, batch axes kept."""
    index = np.broadcast_to(labels[:, None], (*x.shape[:-1], 1))
    return np.take_along_axis(x, index, axis=-1)[..., 0]


def _log_softmax_at(a: Array, labels: Array) -> Array:
    """-log softmax(a)[label] per row, shifted by the row's real maximum."""
    shift = np.real(a).max(axis=-1, keepdims=True)
    e = np.exp(a - shift)
    lse = np.log(e.sum(axis=-1)) + shift[..., 0]
    return cast(Array, lse - _pick(a, labels))


def _softmax(a: Array) -> Array:
    e = np.exp(a - np.real(a).max(axis=-1, keepdims=True))
    return cast(Array, e / e.sum(axis=-1, keepdims=True))


def _ce_value(a: Array, labels: Array) -> Array:
    return cast(Array, _log_softmax_at(a, labels).sum(axis=-1) / a.shape[-2])


def _one_hot(labels: Array, k: int, dtype: np.dtype) -> Array:
    out = np.zeros((labels.shape[0], k), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def _ce_gradient(a: Array, labels: Array) -> Array:
    """dJ/dA^L: (m, k) = (softmax(A) - onehot(y)) / m."""
    return cast(Array, (_softmax(a) - _one_hot(labels, a.shape[-1], a.dtype)) / a.shape[-2])


def _ce_change(a: Array, labels: Array, d: Array) -> Array:
    # lse(a + d) - lse(a) - d[y] = log(sum_j p_j e^{d_j}) - d[y]
    #                            = log1p(sum_j p_j expm1(d_j)) - d[y].
    p = _softmax(a)
    grown = np.log1p((p * np.expm1(d)).sum(axis=-1))
    return cast(Array, (grown - _pick(d, labels)).sum(axis=-1) / a.shape[-2])


def _ce_rank_one(a: Array, labels: Array, w: Array) -> RankOne:
    # lse(a + t w) - lse(a) - t w[y] = K(t) - t w[y], K the cumulant generating
    # function of w's entries under softmax(a): K(t) = sum_n kappa_n t^n / n!.
    p = _softmax(a)  # (m, k)
    mean = p @ w.T  # (m, rows)
    centred = w[None, :, :] - mean[:, :, None]  # (m, rows, k)
    moments = {}
    power = centred * centred
    for n in (2, 3, 4, 5):
        moments[n] = np.einsum("ik,ijk->ij", p, power)
        power = power * centred
    cumulants = [
        mean - w[:, labels].T,  # the first, less the label's own term
        moments[2],
        moments[3],
        moments[4] - 3.0 * moments[2] ** 2,
        moments[5] - 10.0 * moments[3] * moments[2],
    ]
    coefficients = [np.ascontiguousarray(c.T) for c in factorial_scaled(cumulants)]  # (rows, m) each
    return RankOne(coefficients, w.max(axis=1) - w.min(axis=1))


def _ce_targets(rng: np.random.Generator, m: int, k: int) -> Array:
    return rng.integers(0, k, size=m)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss(
            "mse",
            "identity",
            False,
            _mse_value,
            _mse_gradient,
            _mse_change,
            _mse_targets,
            rank_one=_mse_rank_one,
        ),
        Loss(
            "bce",
            "sigmoid",
            True,
            _bce_value,
            _bce_gradient,
            _bce_change,
            _bce_targets,
            rank_one=_bce_rank_one,
        ),
        Loss(
            "softmax-ce",
            "softmax",
            True,
            _ce_value,
            _ce_gradient,
            _ce_change,
            _ce_targets,
            min_outputs=2,
            rank_one=_ce_rank_one,
        ),
    )
}


def get_loss(name: str) -> Loss:
    """Look a loss up by name; raises ``KeyError`` listing the valid names."""
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}") from None
