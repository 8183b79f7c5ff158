"""The difference formulas, written once: forward, central, Richardson and the complex
step, and what happens where a step crosses a kink (halved until clear of it, or
judged by the one-sided slopes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.estimates import FLAG_KINKS, Derivatives, Evaluate, Evaluation
from ..core.methods import Method
from .steps import complex_step_noise

Array = npt.NDArray[Any]


def _combine_sides(plus: Evaluation, minus: Evaluation, h: Array) -> tuple[Array, Array, Array, Array, Array]:
    """Central value, its noise, kink flags and the one-sided derivatives."""
    values = (np.real(plus.change) - np.real(minus.change)) / (2 * h)
    noise = (plus.roundoff + minus.roundoff) / (2 * h)
    right = np.real(plus.change) / h
    left = -np.real(minus.change) / h
    if plus.crossed is None or minus.crossed is None:
        kinks = np.zeros(len(h), dtype=bool)
    else:
        kinks = (plus.crossed > 0) | (minus.crossed > 0)
    return values, noise, kinks, np.minimum(left, right), np.maximum(left, right)


def difference_quotients(evaluate: Evaluate, h: Array, method: Method) -> Derivatives:
    """The method's formula at the steps ``h``, nothing more: the one place each
    formula is written.  Steps that cross a kink are flagged, not resolved.

    ``evaluate(steps, subset)`` returns the loss changes for those (signed, or
    imaginary) steps.  Central differences cost two evaluations per perturbation,
    forward one, Richardson four, complex step one.
    """
    nan = np.full(len(h), np.nan)
    if method.imaginary:
        ev = evaluate(1j * h, None)
        values = np.imag(ev.change) / h
        return Derivatives(values, h, complex_step_noise(values), np.zeros(len(h), dtype=bool), nan, nan.copy())
    if method.one_sided:
        plus = evaluate(h, None)
        values = np.real(plus.change) / h
        noise = 2 * plus.roundoff / h
        kinks = np.zeros(len(h), dtype=bool) if plus.crossed is None else plus.crossed > 0
        return Derivatives(values, h, noise, kinks, nan, nan.copy())
    values, noise, kinks, lower, upper = _combine_sides(evaluate(h, None), evaluate(-h, None), h)
    if not method.extrapolated:
        return Derivatives(values, h, noise, kinks, lower, upper)
    half = h / 2
    v2, n2, k2, lo2, hi2 = _combine_sides(evaluate(half, None), evaluate(-half, None), half)
    # D(h) = f' + c h^2 + O(h^4): (4 D(h/2) - D(h)) / 3 cancels the h^2 term.
    extrapolated = (4 * v2 - values) / 3
    return Derivatives(
        extrapolated, h, (4 * n2 + noise) / 3, kinks | k2, np.minimum(lower, lo2), np.maximum(upper, hi2)
    )


def numerical_derivatives(evaluate: Evaluate, h: Array, method: Method) -> Derivatives:
    """Derivatives along a batch of perturbations, each with step ``h[k]``: the
    method's formula, and where a step crossed a kink the step halved until clear of
    it (only the entries at a kink pay for more evaluations)."""
    d = difference_quotients(evaluate, h, method)
    if method.imaginary:
        return d
    return _resolve_kinks(evaluate, d, richardson=method.extrapolated)


KINK_HALVINGS = 10


def _resolve_kinks(evaluate: Evaluate, d: Derivatives, richardson: bool = False) -> Derivatives:
    """Settle every entry whose steps crossed a kink.

    The step is halved until the kink is out of reach: the entry then gets the
    ordinary central difference (or Richardson's, for that method) at that step.  An entry still crossing after
    ``KINK_HALVINGS`` halvings sits on the kink (or within ``h / 1024`` of it); it
    gets the two one-sided derivatives, each extrapolated from steps ``h`` and
    ``2h`` (``2 D(h) - D(2h)`` cancels the first-order error of a one-sided
    quotient), and the extrapolation's size is added to its noise as the
    uncertainty of the interval's ends.
    """
    idx = np.flatnonzero(d.kinks)
    if idx.size == 0:
        return d
    hk = d.steps[idx].copy()
    # One-sided derivatives (right, left) at the last two steps, aligned with idx.
    history: list[tuple[Array, Array]] = []
    for _ in range(KINK_HALVINGS):
        hk = hk / 2
        plus, minus = evaluate(hk, idx), evaluate(-hk, idx)
        values, noise, crossed, _, _ = _combine_sides(plus, minus, hk)
        done, keep = idx[~crossed], crossed
        if richardson and done.size:
            # Richardson needs a second, half-size step: also clear of the kink.
            half = hk[~crossed] / 2
            v2, n2, _, _, _ = _combine_sides(evaluate(half, done), evaluate(-half, done), half)
            values[~crossed] = (4 * v2 - values[~crossed]) / 3
            noise[~crossed] = (4 * n2 + noise[~crossed]) / 3
        d.values[done], d.noise[done], d.steps[done] = values[~crossed], noise[~crossed], hk[~crossed]
        d.kinks[done] = False
        right, left = np.real(plus.change) / hk, -np.real(minus.change) / hk
        history = [(r[keep], l[keep]) for r, l in history[-1:]] + [(right[keep], left[keep])]
        assert plus.crossed is not None and minus.crossed is not None
        many = (np.maximum(plus.crossed, minus.crossed) > 1)[keep]
        idx, hk, values, noise = idx[keep], hk[keep], values[keep], noise[keep]
        if idx.size == 0:
            return d
    # Still crossing: on the kink.
    (right2, left2), (right, left) = history
    _set_kink_interval(d, idx, values, hk, noise, (right, left), (right2, left2))
    assert d.flags is not None
    # A move that crosses several kinks at once: each may take any value of its own
    # subgradient interval, so the valid set is wider than the one-sided slopes.
    d.flags[idx[many]] = FLAG_KINKS
    return d


def _set_kink_interval(
    d: Derivatives,
    where: Array,
    values: Array,
    steps: Array,
    noise: Array,
    sides: tuple[Array, Array],
    sides_2h: tuple[Array, Array],
) -> None:
    """Judge entries ``where`` by the subgradient rule: each one-sided derivative
    (right, left) is extrapolated from steps ``h`` and ``2h`` (``2 D(h) - D(2h)``
    cancels a one-sided quotient's first-order error), and the extrapolation's size
    is added to the noise as the uncertainty of the interval's ends."""
    (right, left), (right2, left2) = sides, sides_2h
    right_x, left_x = 2 * right - right2, 2 * left - left2
    spread = np.maximum(np.abs(right_x - right), np.abs(left_x - left))
    d.values[where], d.steps[where], d.kinks[where] = values, steps, True
    d.lower[where] = np.minimum(right_x, left_x)
    d.upper[where] = np.maximum(right_x, left_x)
    d.noise[where] = 4 * noise + spread


def merge_derivatives(d: Derivatives, where: Array, other: Derivatives) -> None:
    """Put ``other`` (derivatives of the entries ``where``) into ``d``."""
    for field in ("values", "steps", "noise", "kinks", "lower", "upper", "truncation", "flags", "jumps"):
        target = getattr(d, field)
        target[where] = getattr(other, field)
    d.evaluations += other.evaluations


def subset(d: Derivatives, keep: Array) -> Derivatives:
    """The derivatives of the entries ``keep`` of ``d``."""
    assert d.truncation is not None and d.flags is not None and d.jumps is not None
    return Derivatives(
        d.values[keep],
        d.steps[keep],
        d.noise[keep],
        d.kinks[keep],
        d.lower[keep],
        d.upper[keep],
        d.truncation[keep],
        d.flags[keep],
        d.jumps[keep],
    )
