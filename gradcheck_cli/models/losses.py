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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .activations import sigmoid, softplus

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Loss:
    """A scalar loss of the network output and the targets.

    Its structure, which the incremental engine exploits, is stated here rather
    than recognised from the name: ``column_local`` when the loss is a sum over
    output columns of terms that each see only their own column (a change of one
    output column is scored from that column alone); ``quadratic`` when it is
    ``1/(2m) ||out - Y||^2`` (a rank-1 change of the output has a closed-form
    effect).
    """

    name: str
    output_activation: str
    fused: bool
    value: Callable[[Array, Array], Array]
    gradient: Callable[[Array, Array], Array]
    change: Callable[[Array, Array, Array], Array]
    make_targets: Callable[[np.random.Generator, int, int], Array]
    min_outputs: int = 1
    column_local: bool = False
    quadratic: bool = False


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
            column_local=True,
            quadratic=True,
        ),
        Loss("bce", "sigmoid", True, _bce_value, _bce_gradient, _bce_change, _bce_targets, column_local=True),
        Loss("softmax-ce", "softmax", True, _ce_value, _ce_gradient, _ce_change, _ce_targets, min_outputs=2),
    )
}


def get_loss(name: str) -> Loss:
    """Look a loss up by name; raises ``KeyError`` listing the valid names."""
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}") from None
