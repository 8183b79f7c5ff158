"""Elementwise activations: each one's forward, derivative and engine kernels together.

Every ``derivative`` takes the *pre-activation* ``A = Z W + b``: it is the seed's
``sigma'(Z^l W^{l+1})``.  The seed writes ``sigma'(Z^{l+1})`` as a shorthand; that
shortcut (the derivative computed from the *output* ``Z = sigma(A)``) is only valid
when the derivative can be written as a function of the output.  Each activation
records that form in ``derivative_from_output`` so the shortcut can be used, and
tested, where it is valid; feeding the output to ``derivative`` instead is the
classic bug that keeps every dimension right.

Forward functions accept complex arrays so the complex-step method can run the
built-in models: functions with a kink branch on the real part, so a tiny
imaginary step never changes the branch taken.

The engine kernels (``prepare``, ``exact_change``) compute ``forward(a + d) -
forward(a)`` without subtracting two nearly equal values; they evaluate the
function, never its derivative, so the numerical side stays independent of the
analytic one.  ``taylor`` gives the same change as a polynomial in ``d`` (the
function's Taylor series at ``a``, to ``TAYLOR_ORDER``) for the engine to carry
through a layer at once; a piecewise-linear function's series is exact up to its
kink, a smooth one's to round-off for ``|d| <= TAYLOR_REACH``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0


def _positive(a: Array) -> Array:
    """``Re(a) > 0``: the branch test that complex step leaves untouched."""
    return np.real(a) > 0


TAYLOR_ORDER = 5
# (1e-3)^6 / 6! of the function's scale: the first term left out, below round-off.
TAYLOR_REACH = 1e-3
# A series of changes up to ``reach`` keeps the terms until reach^(n+1), the first
# left out, is below this share of the function's scale.
SERIES_NEGLIGIBLE = 1e-18


def series_order(reach: float, most: int = TAYLOR_ORDER) -> int:
    """How many terms a series of changes up to ``reach`` needs: 2 at least, ``most``
    at most (central differences' steps need three, Richardson's five)."""
    order = 2
    while order < most and reach ** (order + 1) > SERIES_NEGLIGIBLE:
        order += 1
    return order


@dataclass(frozen=True)
class Taylor:
    """``forward(a + d) - forward(a) = sum_n coefficients[n-1] d^n``, elementwise.
    ``exact``: for every ``|d| < margin`` (piecewise linear); otherwise to round-off
    for ``|d| <= TAYLOR_REACH`` and ``|d| < margin``.  ``margin``: the distance to the
    kink (``|a|``), None for a smooth function."""

    coefficients: list[Array]
    exact: bool
    margin: Array | None


@dataclass(frozen=True)
class Activation:
    """An elementwise activation ``Z = forward(A)`` and its derivative.

    ``kink`` is True when the function is not smooth at ``A = 0``: relu and
    leaky_relu are not differentiable there, elu not twice differentiable.  The
    checker shrinks the step of any entry whose finite-difference steps cross that
    point, and judges an entry sitting on it by the subgradient rule.  ``linear``
    marks the identity, whose change is the input change itself.
    """

    name: str
    forward: Callable[[Array], Array]
    derivative: Callable[[Array], Array]
    derivative_from_output: Callable[[Array], Array]
    kink: bool = False
    linear: bool = False
    exact_change: Callable[..., Array] | None = None
    prepare: Callable[[Array, Array], tuple[Array, ...]] | None = None
    taylor: Callable[[Array, Array], Taylor] | None = None

    def change(self, a: Array, z: Array, d: Array, prepared: tuple[Array, ...] | None = None) -> Array:
        """``forward(a + d) - forward(a)`` where ``z = forward(a)``.

        Activations with an addition theorem compute the change directly, which
        avoids subtracting two nearly equal numbers; the rest fall back to the
        plain difference.  ``prepared`` is ``prepare(a, z)``, computed once by a
        caller that asks for many changes at the same point.
        """
        if self.exact_change is not None:
            if prepared is None:
                prepared = self.prepare(a, z) if self.prepare is not None else ()
            return self.exact_change(a, z, d, *prepared)
        return self.forward(a + d) - z


# ---- identity ---------------------------------------------------------------------------


def _identity(a: Array) -> Array:
    return a


def _ones(a: Array) -> Array:
    return np.ones_like(a)


def _identity_change(a: Array, z: Array, d: Array) -> Array:
    return d


IDENTITY = Activation(
    "identity", _identity, _ones, derivative_from_output=_ones, linear=True, exact_change=_identity_change
)


# ---- tanh -------------------------------------------------------------------------------


def _tanh_derivative(a: Array) -> Array:
    t = np.tanh(a)
    return 1.0 - t * t


def _tanh_prepare(a: Array, z: Array) -> tuple[Array, ...]:
    return (1.0 - z * z,)


def _tanh_change(a: Array, z: Array, d: Array, q: Array) -> Array:
    # tanh(a + d) - tanh(a) = tanh(d) (1 - tanh(a)^2) / (1 + tanh(a) tanh(d)),
    # the addition theorem, so no cancellation between two close values.
    # In place where the result is fresh: this runs on the engine's largest arrays.
    t = np.tanh(d)
    change = t * q
    denominator = z * t
    denominator += 1.0
    change /= denominator
    return change


def factorial_scaled(derivatives: list[Array]) -> list[Array]:
    """``f^(n) / n!`` from the derivatives ``f', f'', ...``."""
    out, factorial = [], 1.0
    for n, fn in enumerate(derivatives, start=1):
        factorial *= n
        out.append(fn / factorial)
    return out


def _tanh_taylor(a: Array, z: Array) -> Taylor:
    # The derivatives of tanh are polynomials in z = tanh(a), times q = 1 - z^2.
    q = 1.0 - z * z
    z2 = z * z
    derivatives = [
        q,
        -2.0 * z * q,
        q * (6.0 * z2 - 2.0),
        8.0 * z * q * (2.0 - 3.0 * z2),
        8.0 * q * (2.0 - 15.0 * z2 + 15.0 * z2 * z2),
    ]
    return Taylor(factorial_scaled(derivatives), False, None)


TANH = Activation(
    "tanh",
    np.tanh,
    _tanh_derivative,
    derivative_from_output=lambda z: 1.0 - z * z,  # tanh' = 1 - t^2: valid from the output
    exact_change=_tanh_change,
    prepare=_tanh_prepare,
    taylor=_tanh_taylor,
)


# ---- sigmoid ----------------------------------------------------------------------------


def sigmoid(a: Array) -> Array:
    # exp of a non-positive real part only: no overflow for any input.
    pos = _positive(a)
    e = np.exp(np.where(pos, -a, a))
    return np.where(pos, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_derivative(a: Array) -> Array:
    s = sigmoid(a)
    return s * (1.0 - s)


def _sigmoid_prepare(a: Array, z: Array) -> tuple[Array, ...]:
    u = 2.0 * z - 1.0  # tanh(a / 2)
    return u, 1.0 - u * u


def _sigmoid_change(a: Array, z: Array, d: Array, u: Array, q: Array) -> Array:
    # sigmoid(x) = (1 + tanh(x / 2)) / 2, then the tanh addition theorem.
    return 0.5 * _tanh_change(0.5 * a, u, 0.5 * d, q)


def _sigmoid_derivatives(s: Array) -> list[Array]:
    """sigma', ..., sigma^(5) as polynomials in s = sigma(a)."""
    q = s * (1.0 - s)
    s2 = s * s
    return [
        q,
        q * (1.0 - 2.0 * s),
        q * (1.0 - 6.0 * s + 6.0 * s2),
        q * (1.0 - 2.0 * s) * (1.0 - 12.0 * s + 12.0 * s2),
        q * (1.0 - 30.0 * s + 150.0 * s2 - 240.0 * s2 * s + 120.0 * s2 * s2),
    ]


def _sigmoid_taylor(a: Array, z: Array) -> Taylor:
    return Taylor(factorial_scaled(_sigmoid_derivatives(z)), False, None)


SIGMOID = Activation(
    "sigmoid",
    sigmoid,
    _sigmoid_derivative,
    derivative_from_output=lambda z: z * (1.0 - z),  # sigma' = s (1 - s): valid from the output
    exact_change=_sigmoid_change,
    prepare=_sigmoid_prepare,
    taylor=_sigmoid_taylor,
)


# ---- relu -------------------------------------------------------------------------------


def _relu(a: Array) -> Array:
    return np.where(_positive(a), a, 0.0 * a)


def _relu_derivative(a: Array) -> Array:
    # The subgradient at 0 is taken as 0, the usual convention.
    return (a > 0).astype(a.dtype)


def _piecewise_taylor(a: Array, slope_below: float) -> Taylor:
    # Linear on each side of 0: exact for any step that stays on its side.
    return Taylor([np.where(np.real(a) > 0, 1.0, slope_below)], True, np.abs(a))


RELU = Activation(
    "relu",
    _relu,
    _relu_derivative,
    # relu(a) > 0 exactly when a > 0: valid from the output.
    derivative_from_output=lambda z: (z > 0).astype(z.dtype),
    kink=True,
    taylor=lambda a, z: _piecewise_taylor(a, 0.0),
)


# ---- leaky_relu -------------------------------------------------------------------------


def _leaky_relu(a: Array) -> Array:
    return np.where(_positive(a), a, LEAKY_SLOPE * a)


def _leaky_relu_derivative(a: Array) -> Array:
    return np.where(a > 0, 1.0, LEAKY_SLOPE).astype(a.dtype)


LEAKY_RELU = Activation(
    "leaky_relu",
    _leaky_relu,
    _leaky_relu_derivative,
    # the sign is preserved: valid from the output.
    derivative_from_output=lambda z: np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype),
    kink=True,
    taylor=lambda a, z: _piecewise_taylor(a, LEAKY_SLOPE),
)


# ---- softplus ---------------------------------------------------------------------------


def softplus(a: Array) -> Array:
    # log(1 + e^a) = max(a, 0) + log1p(e^{-|a|}), with |.| read on the real part.
    pos = _positive(a)
    return np.where(pos, a, 0.0 * a) + np.log1p(np.exp(np.where(pos, -a, a)))


def softplus_derivatives(s: Array) -> list[Array]:
    """softplus', ..., softplus^(5) as polynomials in s = sigmoid(a) (softplus' = sigmoid)."""
    return [s, *_sigmoid_derivatives(s)[:4]]


def _softplus_taylor(a: Array, z: Array) -> Taylor:
    return Taylor(factorial_scaled(softplus_derivatives(sigmoid(a))), False, None)


SOFTPLUS = Activation(
    "softplus",
    softplus,
    sigmoid,
    # softplus' = sigmoid(a) = 1 - e^{-z}: valid from the output.
    derivative_from_output=lambda z: -np.expm1(-z),
    taylor=_softplus_taylor,
)


# ---- elu --------------------------------------------------------------------------------


def _elu(a: Array) -> Array:
    pos = _positive(a)
    return np.where(pos, a, ELU_ALPHA * np.expm1(np.where(pos, 0.0 * a, a)))


def _elu_derivative(a: Array) -> Array:
    pos = a > 0
    return np.where(pos, 1.0, ELU_ALPHA * np.exp(np.where(pos, 0.0, a))).astype(a.dtype)


def _elu_taylor(a: Array, z: Array) -> Taylor:
    # Linear above 0; below, alpha (e^(a + d) - e^a) = (z + alpha) sum_n d^n / n!.
    pos = np.real(a) > 0
    below = np.where(pos, 0.0, z + ELU_ALPHA)
    derivatives = [np.where(pos, 1.0, below), below, below, below, below]
    return Taylor(factorial_scaled(derivatives), False, np.abs(a))


ELU = Activation(
    "elu",
    _elu,
    _elu_derivative,
    # for a <= 0, elu' = alpha e^a = z + alpha: valid from the output.
    derivative_from_output=lambda z: np.where(z > 0, 1.0, z + ELU_ALPHA).astype(z.dtype),
    # elu' is continuous but elu'' jumps at 0: a step across 0 spoils the h^2 (and
    # Richardson's h^4) error terms, so it is treated as a kink.
    kink=True,
    taylor=_elu_taylor,
)


ACTIVATIONS: dict[str, Activation] = {
    act.name: act for act in (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTPLUS, ELU)
}


def get_activation(name: str) -> Activation:
    """Look an activation up by name; raises ``KeyError`` listing the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise KeyError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}") from None
