"""The Taylor test: how fast the remainder of a first- (or second-) order expansion
falls with the step tells a correct directional derivative from a wrong one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.estimates import Evaluation, TaylorResult

Array = npt.NDArray[Any]


TAYLOR_PASS_ORDER = 1.5


# A remainder is read only where it stands this far above the loss's round-off bound
# (itself generous): close enough to see the h^2 regime of a gently curved loss.
TAYLOR_TRUST = 10.0


def taylor_test(
    along: Callable[[Array], Evaluation],
    slope: float,
    slope_tolerance: float,
    h0: float,
    halvings: int = 24,
) -> TaylorResult:
    """Shrink ``h`` from ``h0`` by halves and measure how fast the remainder falls.

    A correct directional derivative ``slope`` leaves a remainder of order ``h^2``;
    a wrong one, order ``h``.  The order is read from the smallest steps whose
    remainders still stand well above round-off (larger steps may be dominated by
    curvature or by kinks the step crosses).  An order below 1.5 fails only when
    the first-order part it reveals, ``r(h) / h``, exceeds ``slope_tolerance`` (the
    pass rule's allowance, which covers e.g. a float32 gradient's own rounding).
    If the order is 1 on both sides of ``x``, the direction crosses a kink at
    ``x``: the slope then passes when it lies between the two one-sided slopes
    (the subgradient rule).
    """
    steps = h0 * 0.5 ** np.arange(halvings)
    plus = along(steps)
    r_plus = np.abs(np.real(plus.change) - steps * slope)
    order, tail = _observed_order(steps, r_plus, TAYLOR_TRUST * plus.roundoff)
    if order is None or order >= TAYLOR_PASS_ORDER:
        return TaylorResult(order, True, steps, r_plus, kink=False)
    if np.median(r_plus[tail] / steps[tail]) <= slope_tolerance:
        return TaylorResult(order, True, steps, r_plus, kink=False)
    minus = along(-steps)
    r_minus = np.abs(np.real(minus.change) + steps * slope)
    order_minus, tail_minus = _observed_order(steps, r_minus, TAYLOR_TRUST * minus.roundoff)
    if order_minus is not None and order_minus < TAYLOR_PASS_ORDER:
        k = min(tail[-1], tail_minus[-1])
        right = np.real(plus.change[k]) / steps[k]
        left = -np.real(minus.change[k]) / steps[k]
        spread = abs(right - left)
        if spread > 100 * (plus.roundoff[k] + minus.roundoff[k]) / steps[k] + slope_tolerance:
            inside = min(left, right) - slope_tolerance <= slope <= max(left, right) + slope_tolerance
            return TaylorResult(order, bool(inside), steps, r_plus, kink=True, undecided=not inside)
    return TaylorResult(order, False, steps, r_plus, kink=False)


CURVATURE_PASS_ORDER = 3.0  # a correct curvature leaves h^4; a wrong one h^2


def curvature_test(
    along: Callable[[Array], Evaluation], curvature: float, tolerance: float, h0: float, halvings: int = 20
) -> TaylorResult:
    """The second-order Taylor test: ``along(steps)`` returns the symmetric second
    difference ``J(x + h v) + J(x - h v) - 2 J(x)``, which a correct curvature
    ``v'Hv`` matches up to ``O(h^4)`` (odd terms cancel, so no gradient is needed and
    a wrong gradient cannot spoil it); a wrong one leaves ``O(h^2)``.  An order below
    3 fails only when the second-order part it reveals, ``r(h) / h^2``, exceeds
    ``tolerance`` (the pass rule's allowance for the curvature)."""
    steps = h0 * 0.5 ** np.arange(halvings)
    ev = along(steps)
    remainders = np.abs(np.real(ev.change) - steps**2 * curvature)
    order, tail = _observed_order(steps, remainders, TAYLOR_TRUST * ev.roundoff)
    if order is None or order >= CURVATURE_PASS_ORDER:
        return TaylorResult(order, True, steps, remainders, kink=False)
    passed = bool(np.median(remainders[tail] / steps[tail] ** 2) <= tolerance)
    return TaylorResult(order, passed, steps, remainders, kink=False)


def _observed_order(steps: Array, remainders: Array, floor: Array) -> tuple[float | None, Array]:
    """Slope of log r against log h over the last trustworthy run of halvings (up to 4
    steps), and the indices it used; None when the remainder is (or falls) exactly
    to round-off."""
    good = np.flatnonzero(remainders > floor)
    none = np.array([], dtype=int)
    if good.size < 2:
        return None, none
    # The final contiguous run of trustworthy steps: the smallest usable h.
    breaks = np.flatnonzero(np.diff(good) != 1)
    run = good[breaks[-1] + 1 :] if breaks.size else good
    if run.size < 2:
        return None, none
    end = run[-1]
    if end + 1 < remainders.size and remainders[end + 1] * 16 < remainders[end]:
        # The remainder collapses into round-off faster than any power law: the
        # larger steps crossed a kink, the smaller ones see the slope exactly.
        return None, none
    tail = run[-4:]
    return float(np.polyfit(np.log(steps[tail]), np.log(remainders[tail]), 1)[0]), tail
