"""Finite differences: step selection, the four difference methods, the Taylor test.

The numerical side never looks at the analytic gradient it will judge: it only
evaluates the loss at perturbed points, through a *probe* (``LoopProbe`` here, or
the incremental engine for the built-in MLP).

Notes
-----
Why the steps are what they are.  A difference quotient has two errors: the
truncation error of the formula (``~h`` forward, ``~h^2`` central, ``~h^4``
Richardson) and the round-off in the loss values divided by ``h`` (``~eps/h``).
Balancing them gives ``h ~ eps^(1/2)``, ``eps^(1/3)`` and ``eps^(1/5)`` relative to
the entry's magnitude, ``max(1, |x|)`` (so a value of 1e4 gets a step it can
actually feel, and a value near 0 does not get a step of 0).  The complex step
``Im J(x + ih) / h`` subtracts nothing, so its step can be tiny.  A real step is
re-measured as ``(x + h) - x``: that is the step the loss really saw, and dividing
by it instead of by the requested ``h`` removes a relative error of up to
``eps |x| / h``.

Why a noise floor.  The loss is computed with a relative round-off of a few
``eps``; the difference of two loss values therefore carries an absolute error
of about ``eps * |J|``, and the derivative estimate ``eps * |J| / h``.  When the
true derivative is tiny or exactly zero that floor, not the gradient, decides the
comparison; each estimate carries its own bound and the pass rule adds it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ..core.estimates import (
    EPS64,
    FLAG_DOMAIN,
    FLAG_JUMP,
    FLAG_KINKS,
    FLAG_NONE,
    Derivatives,
    Evaluate,
    Evaluation,
    TaylorResult,
)
from ..core.methods import METHODS

Array = npt.NDArray[Any]
Params = dict[str, Array]


# Round-off of one loss evaluation, in units of eps * |J|.  Losses are sums of many
# terms and pass through several matrix products; 64 covers that with room.
LOSS_ROUNDOFF = 64.0


def _compute_absolute_step(x: Any, rel_step: float, method: str, dtype: npt.DTypeLike = np.float64) -> Array:
    """Absolute steps ``rel_step * max(1, |x|)``, never zero, re-measured for real steps.

    A real step is at least the spacing of ``dtype`` at the value (so float32
    parameters are never moved by less than one float32 ulp), then re-measured as
    ``(x + h) - x`` in float64.
    """
    x = np.asarray(x, dtype=np.float64)
    scale = np.maximum(1.0, np.abs(x))
    h = rel_step * scale
    if method == "complex":
        return cast(Array, h)
    h = np.maximum(h, np.spacing(scale.astype(dtype)).astype(np.float64))
    measured: Array = (x + h) - x
    return measured


def loss_roundoff(base: float, change: Array, eps: float = EPS64) -> Array:
    """Round-off bound of ``J(x + step) - J(x)`` computed as a difference of two losses
    whose values carry a relative round-off of ``eps`` (the loss's output precision)."""
    with np.errstate(invalid="ignore"):
        bound: Array = LOSS_ROUNDOFF * eps * np.maximum(abs(base), np.abs(base + np.real(change)))
    return bound


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


# The imaginary part sums per-sample terms that can cancel: their round-off is that of
# terms a few times larger than the batch's largest derivative (measured on deep
# networks: up to 1.6x the plain LOSS_ROUNDOFF bound), hence the extra factor.
COMPLEX_ROUNDOFF = 4 * LOSS_ROUNDOFF


def complex_step_noise(values: Array) -> Array:
    """Round-off bound of complex-step derivatives: no subtraction, so only the loss's
    own relative round-off, on terms as large as the batch's largest derivative."""
    return cast(Array, COMPLEX_ROUNDOFF * EPS64 * np.maximum(np.abs(values), np.max(np.abs(values), initial=0.0)))


def numerical_derivatives(evaluate: Evaluate, h: Array, method: str) -> Derivatives:
    """Derivatives along a batch of perturbations, each with step ``h[k]``.

    ``evaluate(steps, subset)`` returns the loss changes for those (signed, or
    imaginary) steps.  Central differences cost two evaluations per perturbation, forward one
    (two more where a kink is reported), Richardson four, complex step one.
    """
    nan = np.full(len(h), np.nan)
    if method == "complex":
        ev = evaluate(1j * h, None)
        values = np.imag(ev.change) / h
        return Derivatives(values, h, complex_step_noise(values), np.zeros(len(h), dtype=bool), nan, nan.copy())
    if method == "forward":
        plus = evaluate(h, None)
        values = np.real(plus.change) / h
        noise = 2 * plus.roundoff / h
        kinks = np.zeros(len(h), dtype=bool) if plus.crossed is None else plus.crossed > 0
        # Only the entries at a kink pay for more evaluations.
        return _resolve_kinks(evaluate, Derivatives(values, h, noise, kinks, nan, nan.copy()))
    if method == "central":
        values, noise, kinks, lower, upper = _combine_sides(evaluate(h, None), evaluate(-h, None), h)
        return _resolve_kinks(evaluate, Derivatives(values, h, noise, kinks, lower, upper))
    if method == "richardson":
        v1, n1, k1, lo1, hi1 = _combine_sides(evaluate(h, None), evaluate(-h, None), h)
        half = h / 2
        v2, n2, k2, lo2, hi2 = _combine_sides(evaluate(half, None), evaluate(-half, None), half)
        # D(h) = f' + c h^2 + O(h^4): (4 D(h/2) - D(h)) / 3 cancels the h^2 term.
        values = (4 * v2 - v1) / 3
        noise = (4 * n2 + n1) / 3
        d = Derivatives(values, h, noise, k1 | k2, np.minimum(lo1, lo2), np.maximum(hi1, hi2))
        return _resolve_kinks(evaluate, d, richardson=True)
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


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


# ---- Taylor test ------------------------------------------------------------------------------


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


# ---- black-box functions: measured noise, an adaptive step ladder ----------------------------

NOISE_POINTS = 10  # loss values along one direction for the noise measurement
NOISE_SAFETY = 8.0  # a bound from an estimate of the standard deviation (from few differences: loose)


def measure_noise(along: Callable[[Array], Evaluation], base: float, scale: float) -> tuple[float, float]:
    """Noise of the loss near ``x``, measured: a bound on how far one evaluation can
    stray from the smooth function (0 when none shows), and the size of the loss's
    variation over the parameter's scale (``|J|``, or the slope times the scale
    where that is larger: a loss that happens to be near 0 still varies), against
    which the noise is a relative precision.

    The loss is evaluated at ``x + i s v`` (``i = 1..10``) along one direction.  Over
    so short a run the smooth part is a low-degree polynomial, so its higher
    differences vanish while the noise's do not (Moré and Wild's ECnoise): a k-th
    difference table whose entries change sign is noise, and ``gamma_k = (k!)^2 /
    (2k)!`` turns its mean square into the noise variance.  A smooth function that
    varies on a scale shorter than ``s`` also changes sign, so the run is repeated
    at a few spacings and the smallest estimate kept: too long a run can only
    overstate the noise.  This sees what no model of ``eps |J|`` does: round-off of
    an intermediate larger than the result (``(1e8 + f) - 1e8``), float32 arithmetic
    inside a float64 value.
    """
    magnitude = max(1.0, scale)
    smallest = 64 * float(np.spacing(magnitude))  # a spacing that still moves x by many ulps
    spacings = sorted(
        {
            max(smallest, 1e-6 * magnitude),
            max(smallest, 1e-6),
            max(smallest, 1e-9 * magnitude),
            max(smallest, 1e-12 * magnitude),
        }
    )
    variation = abs(base)
    found: list[float] = []
    for s in spacings:
        # The point x itself is left out: sitting on a jump, it alone would jump.
        ev = along(s * np.arange(1, NOISE_POINTS + 1))
        values = np.real(ev.change)
        if not np.all(np.isfinite(values)):
            continue
        variation = max(variation, abs(values[1]) / s * magnitude)
        sigma = _noise_from_differences(values)
        if sigma is not None:
            found.append(sigma)
    # A zero reading is a coincidence of quantised values (equal increments), not
    # silence: it counts only when no spacing shows any noise.
    positive = [sigma for sigma in found if sigma > 0]
    return (NOISE_SAFETY * min(positive) if positive else 0.0), variation


def _noise_from_differences(values: Array) -> float | None:
    """ECnoise's reading of one run: the first order (from 2) whose differences change
    sign and whose estimate agrees with the next order's (within 4x).  Failing that,
    the smallest estimate of order 2 or more (an upper bound: smooth leakage only adds);
    None when the values do not move at all (the loss cannot resolve this spacing)."""
    table = values
    estimates = []
    for k in range(1, NOISE_POINTS - 1):
        table = np.diff(table)
        gamma = math.factorial(k) ** 2 / math.factorial(2 * k)
        estimates.append((math.sqrt(gamma * float(np.mean(table**2))), bool(np.any(table > 0) and np.any(table < 0))))
    if estimates[0][0] == 0:
        return None
    for (sigma, sign), (following, _) in itertools.pairwise(estimates[1:]):
        if sign and sigma > 0 and 0.25 <= following / sigma <= 4:
            return sigma
    return min(sigma for sigma, _ in estimates[1:])


LADDER_RATIO = 4.0  # each rung's step is this much smaller than the last
LADDER_UP = 2  # the ladder starts this many rungs above the auto step
LADDER_RUNGS = 16  # rungs at most (two loss evaluations each for central differences)
LADDER_MIN = 3  # rungs at least before an entry may stop
AGREE = (0.8, 1.25)  # "stays put": the ratio of a quantity at consecutive rungs
SHRINK = 0.4  # "shrinks with the step": the loss's change falls at least this much per rung (1/4 or 1/16)


def _left_jumps(evaluate: Evaluate, steps: Array, sigma: float, flags: Array, jumps: Array) -> int:
    """Forward differences never look left, so a right-continuous jump (``floor`` at an
    integer) looks smooth to them: the left side is probed at three shrinking steps,
    and a change that stays put there is a jump.  Returns the evaluations spent."""
    idx = np.flatnonzero(flags == FLAG_NONE)
    if idx.size == 0:
        return 0
    changes = []
    for k in range(3):
        ev = evaluate(-steps[idx] / LADDER_RATIO**k, idx)
        changes.append((np.real(ev.change), ev.roundoff))
    (c0, r0), (c1, _), (c2, _) = changes
    with np.errstate(all="ignore"):
        loud = np.abs(c2) > 100 * (sigma + r0)
        jumped = loud & _steady(np.abs(c1) / np.abs(c0)) & _steady(np.abs(c2) / np.abs(c1))
    flags[idx[jumped]] = FLAG_JUMP
    jumps[idx[jumped]] = -c2[jumped]
    return 3 * idx.size


def _steady(ratio: Array) -> Array:
    """Stayed put from one rung to the next (its ratio near 1)."""
    with np.errstate(invalid="ignore"):
        return cast(Array, (ratio > AGREE[0]) & (ratio < AGREE[1]))


KINK_EVIDENCE = 2  # consecutive steady ratios, at steps no larger than the auto step
JUMP_EVIDENCE = 3


def ladder_derivatives(
    evaluate: Evaluate, h: Array, method: str, sigma: float, user_step: bool, rtol: float, atol: float
) -> Derivatives:
    """Derivatives of a black-box function with an error estimate per entry.

    Central (or forward) differences at a ladder of steps ``16h, 4h, h, h/4, ...``
    (``h`` the auto step for the loss's measured precision).  At each rung the
    truncation error is measured, not modelled: ``D(h) - D(4h) = 15 c h^2`` for
    central differences, so ``|D(h) - D(4h)| / 15`` estimates it; the round-off is
    ``(sigma + the round-off of the loss values) / h``.  Richardson's method also
    offers the extrapolation ``(16 D(h) - D(4h)) / 15`` with its own estimate.  A
    rung yields an estimate only where the loss's changes shrink with the step (by
    ``SHRINK`` or more, two rungs in a row) and stand well above the noise: steps
    wider than a narrow feature, aliasing of a periodic function and quantised
    values can all look converged otherwise; and any later rung that contradicts an
    estimate by more than its own round-off raises that estimate's uncertainty.  Each
    entry keeps the candidate with the smallest estimated error and stops climbing
    down once that error is far below what the tolerances allow, or once round-off
    has taken over.  A user's step (``user_step``) is where the ladder starts: the
    largest step the check takes, which changes how closely it looks, never
    whether a correct gradient passes.

    Evidence read on the way (the function cannot report it): one-sided slopes
    whose disagreement stays put while each converges is a kink (judged by the
    subgradient rule between the extrapolated one-sided slopes); a change of the
    loss that stays put while the step shrinks is a jump (no derivative exists); a
    loss that is not finite at a rung's step has left its domain there.
    """
    n = len(h)
    one_sided = method == "forward"
    order_gain = LADDER_RATIO if one_sided else LADDER_RATIO**2  # error ratio between rungs
    best = np.full(n, np.nan)
    best_err = np.full(n, np.inf)
    best_noise = np.zeros(n)
    best_trunc = np.zeros(n)
    best_step = h.copy()
    kinks = np.zeros(n, dtype=bool)
    lower, upper = np.full(n, np.nan), np.full(n, np.nan)
    flags = np.zeros(n, dtype=np.int8)
    jumps = np.zeros(n)
    evaluations = 0
    # Per-entry history of the last two rungs: value, extrapolation, one-sided slopes, changes.
    prev_d = np.full(n, np.nan)
    prev_change = np.full(n, np.nan)
    last, last_step = np.full(n, np.nan), h.copy()  # the smallest rung's value, whatever it is
    prev_shrinking = np.zeros(n, dtype=bool)
    prev_r = np.full(n, np.nan)
    prev_f = np.full(n, np.nan)
    prev_b = np.full(n, np.nan)
    prev_plus = np.full(n, np.nan)
    prev_minus = np.full(n, np.nan)
    # How many rungs in a row the one-sided disagreement, and each side's change,
    # have stayed put.
    spread_run = np.zeros(n, dtype=int)
    plus_run = np.zeros(n, dtype=int)
    minus_run = np.zeros(n, dtype=int)
    prev_err = np.full(n, np.inf)
    start = h if user_step else h * LADDER_RATIO**LADDER_UP
    rungs = LADDER_RUNGS
    active = np.arange(n)
    with np.errstate(all="ignore"):  # ratios of quantities that may be 0 or nan
        for rung in range(rungs):
            if active.size == 0:
                break
            step = start[active] / LADDER_RATIO**rung
            plus = evaluate(step, active)
            dp = np.real(plus.change)
            if one_sided:
                dm = np.zeros_like(dp)
                d = dp / step
                noise = (2 * sigma + 2 * plus.roundoff) / step
                evaluations += active.size
            else:
                minus = evaluate(-step, active)
                dm = np.real(minus.change)
                d = (dp - dm) / (2 * step)
                noise = (2 * sigma + plus.roundoff + minus.roundoff) / (2 * step)
                evaluations += 2 * active.size
            f, b = dp / step, -dm / step
            valid = np.isfinite(d)
            # The difference to the rung above measures the truncation only in the
            # asymptotic regime, where differences shrink by order_gain per rung; the
            # one before it keeps a coincidental agreement (a periodic function at
            # steps near its period) from passing for convergence.
            change = np.abs(d - prev_d[active])
            # (Forward differences get no division by gain - 1: their first-order model is
            # the least trustworthy where round-off pushes the step toward the function's
            # own scale.)
            trunc = np.maximum(change, prev_change[active] / order_gain) / (1 if one_sided else order_gain - 1)
            # Only where the loss's changes shrink with the step (like h, or h^2 at a
            # stationary point) is the function seen on its own scale.  Changes that stay
            # put mean the steps still reach past a feature narrower than they are (a
            # bump of width 1e-7 looks flat, with a derivative of exactly 0, from
            # steps of 1e-6): no estimate is taken from such a rung.
            # (A loss that does not move at all is constant there: exactly seen.)
            shrinking = (np.abs(dp) < SHRINK * np.abs(prev_plus[active])) | (dp == 0)
            if not one_sided:
                shrinking &= (np.abs(dm) < SHRINK * np.abs(prev_minus[active])) | (dm == 0)
            # And above the noise: changes of a few noise quanta can shrink by chance.
            if one_sided:
                heard = (np.abs(dp) > 10 * (sigma + plus.roundoff)) | (dp == 0)
            else:
                loudness = np.abs(dp) + np.abs(dm)
                heard = (loudness > 10 * (2 * sigma + plus.roundoff + minus.roundoff)) | (loudness == 0)
            # Two rungs in a row: the estimate compares this rung with the one above.
            trunc = np.where(shrinking & prev_shrinking[active] & heard, trunc, np.inf)
            prev_shrinking[active] = shrinking
            last[active[valid]] = d[valid]
            last_step[active[valid]] = step[valid]
            err = np.where(np.isfinite(trunc), trunc, np.inf) + noise
            candidates = [(d, err, noise, np.where(np.isfinite(trunc), trunc, np.inf))]
            r = np.full(active.size, np.nan)
            if method == "richardson":
                r = (order_gain * d - prev_d[active]) / (order_gain - 1)
                r_noise = (order_gain * noise + 2 * sigma / step * LADDER_RATIO) / (order_gain - 1)
                r_trunc = np.where(trunc < np.inf, np.abs(r - prev_r[active]), np.inf)
                candidates.append((r, np.where(np.isfinite(r_trunc), r_trunc, np.inf) + r_noise, r_noise, r_trunc))
            # An estimate's error is confirmed by every rung below it: a later value
            # farther from it than its error estimate shows the estimate was lucky.
            # (Less the later value's own round-off: a noisy small step proves nothing.)
            known = valid & np.isfinite(best[active])
            seen = active[known]
            best_err[seen] = np.maximum(best_err[seen], np.abs(d[known] - best[seen]) - noise[known])
            # ...and the reported uncertainty says so (the excess counts as truncation).
            best_trunc[seen] = np.maximum(best_trunc[seen], best_err[seen] - best_noise[seen])
            for value, e, nz, tr in candidates:
                better = valid & np.isfinite(value) & (e < best_err[active])
                where = active[better]
                best[where], best_err[where] = value[better], e[better]
                best_noise[where] = nz[better]
                best_trunc[where] = np.where(np.isfinite(tr[better]), tr[better], 0.0)
                best_step[where] = step[better]

            # Evidence that stays put while the step shrinks by LADDER_RATIO.
            spread = np.abs(f - b)
            spread_ratio = spread / np.abs(prev_f[active] - prev_b[active])
            plus_ratio = np.abs(dp) / np.abs(prev_plus[active])
            minus_ratio = np.abs(dm) / np.abs(prev_minus[active])
            audible = spread > 100 * noise
            with np.errstate(invalid="ignore"):
                converging = (np.abs(f - prev_f[active]) < 0.1 * spread) & (np.abs(b - prev_b[active]) < 0.1 * spread)
                spread_run[active] = np.where(audible & _steady(spread_ratio) & converging, spread_run[active] + 1, 0)
                loud_plus = np.abs(dp) > 100 * (sigma + plus.roundoff)
                loud_minus = np.abs(dm) > 100 * (sigma + plus.roundoff)
                plus_run[active] = np.where(loud_plus & _steady(plus_ratio), plus_run[active] + 1, 0)
                minus_run[active] = np.where(loud_minus & _steady(minus_ratio), minus_run[active] + 1, 0)
            # Who climbs further down?
            target = 0.01 * (atol + rtol * np.abs(np.where(np.isfinite(best[active]), best[active], 0.0)))
            converged = best_err[active] <= target
            roundoff_rules = valid & (noise > err - noise) & (err > prev_err[active])
            stop = (rung + 1 >= LADDER_MIN) & (converged | roundoff_rules)
            if rung == rungs - 1:
                stop[:] = True
            # Evidence is read where an entry stops, from the rungs that led there, and
            # only once the steps are down to the auto step: a steep smooth function
            # seen from steps far beyond its scale shows plateaus on either side.  A
            # kink converges (its central difference is the sides' mean) and stops
            # early; a jump never converges and is read at the last rung.
            small_enough = rung >= LADDER_UP or user_step
            on_kink = stop & (not one_sided) & small_enough & (spread_run[active] >= KINK_EVIDENCE)
            exhausted = rung == rungs - 1  # stopped by round-off instead: it could not tell
            jump_plus = exhausted & (plus_run[active] >= JUMP_EVIDENCE)
            jump_minus = exhausted & (not one_sided) & (minus_run[active] >= JUMP_EVIDENCE)
            jumped = (jump_plus | jump_minus) & ~on_kink
            if np.any(jumped):
                where = active[jumped]
                flags[where] = FLAG_JUMP
                jumps[where] = np.where(jump_plus[jumped], dp[jumped], -dm[jumped])
                best[where], best_step[where] = d[jumped], step[jumped]
            if np.any(on_kink):
                where = active[on_kink]
                right_x = (LADDER_RATIO * f[on_kink] - prev_f[where]) / (LADDER_RATIO - 1)
                left_x = (LADDER_RATIO * b[on_kink] - prev_b[where]) / (LADDER_RATIO - 1)
                kinks[where] = True
                lower[where], upper[where] = np.minimum(right_x, left_x), np.maximum(right_x, left_x)
                best[where], best_step[where] = d[on_kink], step[on_kink]
                best_noise[where] = 4 * noise[on_kink] + np.maximum(
                    np.abs(right_x - f[on_kink]), np.abs(left_x - b[on_kink])
                )
                best_trunc[where] = 0.0
            prev_change[active] = change
            prev_d[active], prev_r[active], prev_f[active], prev_b[active] = d, r, f, b
            prev_plus[active], prev_minus[active] = dp, dm
            prev_err[active] = np.where(valid, err, np.inf)
            active = active[~stop]
    if one_sided:
        evaluations += _left_jumps(evaluate, best_step, sigma, flags, jumps)
    never = ~np.isfinite(best)
    # Values, but none from a rung where the function was seen on its own scale: the
    # check cannot tell (UNRESOLVED by its infinite uncertainty).  No values at all:
    # the loss was not finite at any step tried.
    seen = never & np.isfinite(last)
    best[seen], best_step[seen] = last[seen], last_step[seen]
    flags[never & ~seen & (flags == FLAG_NONE)] = FLAG_DOMAIN
    best[never & ~seen] = 0.0
    best_noise[never] = np.inf
    return Derivatives(best, best_step, best_noise, kinks, lower, upper, best_trunc, flags, jumps, evaluations)


# ---- one step first: the screen --------------------------------------------------------------

SCREEN_SAMPLE = 64  # entries whose behaviour at a four-times-smaller step is looked at


def _relative_precision_step(method: str, precision: float) -> float:
    """The auto step for a function whose values carry a relative ``precision``."""
    power = {"forward": 1 / 2, "central": 1 / 3, "richardson": 1 / 5}[method]
    return float(precision**power)


class Screen:
    """One difference quotient per entry at the auto step ``h`` (the classic check),
    and a second look, one more evaluation, where it is wanted.

    Most black-box entries need no more than the first: an entry whose estimate
    agrees with its analytic value has passed a rule at least as strict as the
    ladder's.  What one step cannot see is a function that varies on a scale
    shorter than ``h`` (a narrow bump looks flat), a kink the central value hides
    (``|x|`` at 0 gives exactly 0), or noise beyond the round-off model.

    ``look_again(idx)`` moves the entries ``idx`` by ``+-h/4`` and ``+-h/16`` (or, with
    ``both_sides=False``, by ``+h/4`` alone: a grouped Jacobian's budget).  The two changes at
    ``+-h`` fix a local quadratic, ``J(x + s) - J(x) = D s + C s^2 / 2`` (``D`` the
    central value, ``C = (dp + dm) / h^2``); a function seen on its own scale lands
    on it at ``h/4`` and ``h/16`` up to the central value's own truncation (the cubic term, about
    ``15/16`` of ``D(h)``'s error), which the gap therefore measures.  A narrow
    feature, a kink or noise lands elsewhere (two points landing by chance are far
    less likely than one).  An entry is *settled* when its changes are well above
    round-off, the changes at ``h/4`` shrank (by ``SHRINK``) and the gaps are within
    round-off and a tenth of the tolerances; an entry that is not belongs to the
    ladder.

    The screen is trusted when no entry of a sample contradicts the step (a change
    heard that does not shrink, a gap beyond round-off; an entry too quiet to tell
    is no evidence either way).  The caller may choose the sample (a vector
    function's, from one column group: one evaluation).  Where the sample's
    truncation stands above its round-off and reaches a hundredth of what the
    tolerances allow, every entry is looked at (so a PASS never rests on an
    unmeasured truncation the tolerances would feel).
    """

    def __init__(
        self,
        evaluate: Evaluate,
        h: Array,
        method: str,
        rtol: float,
        atol: float,
        rng: np.random.Generator,
        sample: Array | None = None,
        both_sides: bool = True,
    ) -> None:
        self._evaluate, self._h = evaluate, h
        self._both_sides = both_sides
        self._rtol, self._atol = rtol, atol
        self._sides: list[Evaluation] = []  # changes of every entry at +h and -h

        def recorded(steps: Array, subset: Array | None) -> Evaluation:
            ev = evaluate(steps, subset)
            if subset is None and len(self._sides) < 2:
                self._sides.append(ev)
            return ev

        self.derivatives = numerical_derivatives(recorded, h, method)
        n = len(h)
        if sample is None:
            sample = np.sort(rng.choice(n, size=min(SCREEN_SAMPLE, n), replace=False))
        self.contradicted = np.zeros(0, dtype=bool)  # of the last look_again
        self.audible = np.zeros(0, dtype=bool)
        self.look_again(sample)
        self.trusted = not bool(self.contradicted.any())
        assert self.derivatives.truncation is not None
        allowance = atol + rtol * np.abs(self.derivatives.values[sample])
        felt = (self.derivatives.truncation[sample] > 0.01 * allowance) & self.audible
        if self.trusted and sample.size < n and np.any(felt):
            self.look_again(np.setdiff1d(np.arange(n), sample))

    def look_again(self, idx: Array) -> Array:
        """Move the entries ``idx`` by ``+-h/4`` and ``+-h/16`` (``+h/4`` alone with
        ``both_sides=False``); which of them are settled (class Notes)."""
        d = self.derivatives
        h = self._h[idx]
        plus, minus = self._sides
        looks = [(1, LADDER_RATIO), (-1, LADDER_RATIO), (1, LADDER_RATIO**2), (-1, LADDER_RATIO**2)]
        with np.errstate(all="ignore"):
            dp, dm = np.real(plus.change[idx]), np.real(minus.change[idx])
            rp, rm = plus.roundoff[idx], minus.roundoff[idx]
            central = (dp - dm) / (2 * h)
            heard = (np.abs(dp) > 10 * rp) & (np.abs(dm) > 10 * rm)
            stuck = np.zeros(idx.size, dtype=bool)
            gap = np.zeros(idx.size)
            noise = np.zeros(idx.size)
            for sign, fraction in looks if self._both_sides else looks[:1]:
                s = h / fraction
                seen = self._evaluate(sign * s, idx)
                q = np.real(seen.change)
                predicted = sign * central * s + (dp + dm) / (2 * fraction**2)
                # In derivative units: the gap, and the round-off it may carry (its own
                # change's, and that of the two changes the prediction is made of).
                gap = np.maximum(gap, np.abs(q - predicted) / s)
                noise = np.maximum(noise, seen.roundoff / s + (rp + rm) * (0.5 + 0.5 / fraction) / h)
                bigger = dp if sign > 0 else dm
                loud = np.abs(bigger) > 10 * (rp if sign > 0 else rm)
                rungs = round(math.log(fraction, LADDER_RATIO))
                stuck |= loud & ~(np.abs(q) < SHRINK**rungs * np.abs(bigger))
            allowance = self._atol + self._rtol * np.abs(central)
            disagrees = ~(gap <= 2 * noise + 0.1 * allowance)
        assert d.truncation is not None
        # The gap is (15/16 of) the central value's truncation at h: a factor of two for
        # what the measurement leaves out.
        d.truncation[idx] = np.where(np.isfinite(gap), 2 * gap * LADDER_RATIO**2 / (LADDER_RATIO**2 - 1), np.inf)
        # Evidence against the step itself: a change that does not shrink, a gap beyond
        # round-off, values that are not finite.  (Changes of a few round-off quanta are
        # no such evidence: the entry alone stays unsettled.)
        self.contradicted = stuck | disagrees
        self.audible = gap > 2 * noise  # truncation seen above round-off
        settled: Array = heard & ~self.contradicted & np.isfinite(d.values[idx])
        return settled


def merge_derivatives(d: Derivatives, where: Array, other: Derivatives) -> None:
    """Put ``other`` (derivatives of the entries ``where``) into ``d``."""
    for field in ("values", "steps", "noise", "kinks", "lower", "upper", "truncation", "flags", "jumps"):
        target = getattr(d, field)
        target[where] = getattr(other, field)
    d.evaluations += other.evaluations
