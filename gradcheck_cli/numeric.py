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

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from .errors import BadValueError
from .indexing import format_index
from .usercode import call_user

Array = npt.NDArray[Any]
Params = dict[str, Array]

METHODS = ("central", "forward", "richardson", "complex")
EPS64 = float(np.finfo(np.float64).eps)

# Round-off of one loss evaluation, in units of eps * |J|.  Losses are sums of many
# terms and pass through several matrix products; 64 covers that with room.
LOSS_ROUNDOFF = 64.0


def _eps_for_method(method: str) -> float:
    """The relative step for float64 loss evaluations (see the module Notes)."""
    if method == "forward":
        return float(EPS64**0.5)
    if method == "central":
        return float(EPS64 ** (1 / 3))
    if method == "richardson":
        return float(EPS64 ** (1 / 5))
    if method == "complex":
        return 1e-20
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


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


@dataclass
class Evaluation:
    """Loss changes ``J(x + step) - J(x)`` for a batch of perturbations."""

    change: Array  # real, or complex for imaginary steps
    roundoff: Array  # absolute round-off bound of each change
    crossed: Array | None  # True where the step straddles (or starts on) a kink; None: unknown


# evaluate(steps, subset): loss changes for the perturbations ``subset`` (all when
# None) of a fixed batch, with the given (signed or imaginary) steps.
Evaluate = Callable[[Array, "Array | None"], Evaluation]


class Probe(Protocol):
    """A loss evaluator: what the check needs to take finite differences.

    ``LoopProbe`` (below) works for any loss; a model may offer a faster one (the
    MLP's incremental engine).  ``entries`` moves single entries of a parameter,
    ``along`` moves a whole parameter along unit directions.
    """

    base: float
    evaluations: int
    progress: Callable[[int], None] | None
    engine_name: str

    def entries(self, name: str, flat: Array, steps: Array) -> Evaluation: ...

    def along(self, name: str, directions: Array, steps: Array) -> Evaluation: ...


def loss_roundoff(base: float, change: Array) -> Array:
    """Round-off bound of ``J(x + step) - J(x)`` computed as a difference of two losses."""
    bound: Array = LOSS_ROUNDOFF * EPS64 * np.maximum(abs(base), np.abs(base + np.real(change)))
    return bound


def _finite_scalar(value: object, who: str, context: str) -> complex | float:
    if isinstance(value, tuple):
        raise BadValueError(
            f"{who} returned a tuple of {len(value)} {context}; return the loss alone (a float), "
            f"e.g. 'return loss', not 'return loss, dx'"
        )
    arr = np.asarray(value)
    if arr.dtype == bool:
        raise BadValueError(f"{who} returned a bool ({value}) {context}; a bool is not a loss: return a float")
    if arr.size != 1:
        raise BadValueError(f"{who} must return a scalar; got an array of shape {arr.shape} {context}")
    v = arr.reshape(()).item()
    if not isinstance(v, (int, float, complex)):
        raise BadValueError(f"{who} must return a number; got {type(value).__name__} {context}")
    if not np.isfinite(v):
        raise BadValueError(f"{who} returned {v} {context}; the loss must be a finite number")
    return v


class LoopProbe:
    """Evaluates the loss once per perturbation: the plain reference path.

    ``loss`` takes a dict of arrays and returns a scalar.  ``kink_pattern``, when
    given, returns an array that changes whenever a perturbation crosses a kink.
    """

    engine_name = "loop"

    def __init__(
        self,
        loss: Callable[[Params], Any],
        params: Params,
        kink_pattern: Callable[[Params], Array | None] | None = None,
        where: str = "loss",
    ) -> None:
        self._loss = loss
        self._where = where
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.base = float(np.real(self._call(self.params, "at the starting point")))
        self._kink_pattern = kink_pattern
        self._base_pattern = kink_pattern(self.params) if kink_pattern else None
        self.evaluations = 1
        self.progress: Callable[[int], None] | None = None

    def _call(self, params: Params, context: str) -> complex | float:
        complex_input = any(np.iscomplexobj(v) for v in params.values())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", np.exceptions.ComplexWarning)
            value = call_user(self._where, self._loss, params)
        if complex_input and (
            not np.iscomplexobj(np.asarray(value))
            or any(issubclass(w.category, np.exceptions.ComplexWarning) for w in caught)
        ):
            raise BadValueError(
                f"{self._where} dropped the imaginary part of its complex input (float(), abs, .real or a real "
                f"array do that), so the complex step cannot see its derivative; keep the loss complex-safe or "
                f"use the central method"
            )
        return _finite_scalar(value, self._where, context)

    def _crossed(self, params: Params) -> bool:
        assert self._kink_pattern is not None
        return bool(np.any(self._kink_pattern(params) != self._base_pattern))

    def entries(self, name: str, flat: Array, steps: Array) -> Evaluation:
        """``J(x + steps[k] e_{flat[k]}) - J(x)`` for each k, one loss call each."""
        x = self.params[name]
        work = x.astype(steps.dtype if np.iscomplexobj(steps) else np.float64, copy=True)
        view = work.reshape(-1)
        params = dict(self.params)
        params[name] = work
        change = np.empty(len(flat), dtype=work.dtype)
        crossed = np.zeros(len(flat), dtype=bool) if self._base_pattern is not None else None
        for k, (i, s) in enumerate(zip(flat, steps, strict=True)):
            old = view[i]
            view[i] = old + s
            where = name + (format_index(x.shape, i) if x.shape else "")
            change[k] = self._call(params, f"with {where} moved") - self.base
            if crossed is not None and not np.iscomplexobj(steps):
                crossed[k] = self._crossed(params)
            view[i] = old
            if self.progress is not None:
                self.progress(1)
        self.evaluations += len(flat)
        return Evaluation(change, loss_roundoff(self.base, change), crossed)

    def along(self, name: str, directions: Array, steps: Array) -> Evaluation:
        """``J(x + steps[k] v_k) - J(x)`` for each unit direction ``v_k`` (rows of ``directions``)."""
        x = self.params[name]
        params = dict(self.params)
        change = np.empty(len(steps), dtype=np.result_type(steps, np.float64))
        crossed = np.zeros(len(steps), dtype=bool) if self._base_pattern is not None else None
        for k, (v, s) in enumerate(zip(directions, steps, strict=True)):
            params[name] = x + s * v.reshape(x.shape)
            change[k] = self._call(params, f"with {name} moved along a direction") - self.base
            if crossed is not None and not np.iscomplexobj(steps):
                crossed[k] = self._crossed(params)
        self.evaluations += len(steps)
        return Evaluation(change, loss_roundoff(self.base, change), crossed)


@dataclass
class Derivatives:
    """Numerical derivatives of a batch of perturbations (entries or directions)."""

    values: Array  # best estimate
    steps: Array  # |h| actually used
    noise: Array  # round-off bound of each estimate
    kinks: Array  # True: judge by the subgradient rule between lower and upper
    lower: Array  # smaller one-sided derivative (nan where not measured)
    upper: Array  # larger one-sided derivative


def _combine_sides(plus: Evaluation, minus: Evaluation, h: Array) -> tuple[Array, Array, Array, Array, Array]:
    """Central value, its noise, kink flags and the one-sided derivatives."""
    values = (np.real(plus.change) - np.real(minus.change)) / (2 * h)
    noise = (plus.roundoff + minus.roundoff) / (2 * h)
    right = np.real(plus.change) / h
    left = -np.real(minus.change) / h
    if plus.crossed is None or minus.crossed is None:
        kinks = np.zeros(len(h), dtype=bool)
    else:
        kinks = plus.crossed | minus.crossed
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
        kinks = np.zeros(len(h), dtype=bool) if plus.crossed is None else plus.crossed.copy()
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
        idx, hk, values, noise = idx[keep], hk[keep], values[keep], noise[keep]
        if idx.size == 0:
            return d
    # Still crossing: on the kink.
    (right2, left2), (right, left) = history
    _set_kink_interval(d, idx, values, hk, noise, (right, left), (right2, left2))
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


def hidden_kink_suspects(d: Derivatives) -> Array:
    """Entries whose one-sided differences disagree by more than a tenth of the slope.

    A smooth function's sides differ by ``h f''``, a tiny fraction of the slope at
    the steps used here; a kink's by its jump, whatever the step.  Central and
    Richardson differences measure both sides; forward and complex step report
    none (their failing entries are still looked at).
    """
    spread = d.upper - d.lower  # nan where a method measured one side only
    scale = np.maximum(np.abs(d.upper), np.abs(d.lower))
    with np.errstate(invalid="ignore"):
        suspect = (spread > 0.1 * scale) & (spread > 100 * d.noise)
    return np.flatnonzero(suspect)


def settle_hidden_kinks(
    evaluate: Evaluate, d: Derivatives, idx: Array, start: Array, passes: Callable[[Array, Array, Array], Array]
) -> None:
    """Look again at failing entries ``idx`` of a black-box function, for kinks it hides.

    A kink cannot be seen from outside a user's function, only its effect: the two
    one-sided differences disagree, by an amount that does not shrink with the
    step as a smooth function's ``h f''`` does.  For each entry the step is halved
    (both sides measured) until one of these holds:

    * the central difference at the smaller step passes (``passes(idx, values,
      noise)``): a kink near, not at, the point spoiled the larger step; the entry
      takes the new value;
    * the one-sided disagreement stays put while the step halves, well above
      round-off: the point sits on a kink; the entry gets the interval between the
      extrapolated one-sided derivatives (the subgradient rule);
    * the disagreement halves with the step twice in a row, or sinks into
      round-off: the function is smooth there and the failure stands.

    ``start`` are real steps to halve from (the complex step's is far too small).
    """
    hk = start.copy()
    spread_before: Array | None = None
    sides_before: tuple[Array, Array] | None = None
    smooth_streak = np.zeros(len(idx), dtype=int)
    for level in range(KINK_HALVINGS + 1):
        if level:
            hk = hk / 2
        plus, minus = evaluate(hk, idx), evaluate(-hk, idx)
        values, noise, _, _, _ = _combine_sides(plus, minus, hk)
        right, left = np.real(plus.change) / hk, -np.real(minus.change) / hk
        spread = np.abs(right - left)
        audible = spread > 100 * noise
        keep = np.ones(len(idx), dtype=bool)
        if spread_before is not None and sides_before is not None:
            ratio = spread / np.maximum(spread_before, np.finfo(float).tiny)
            on_kink = audible & (ratio > 0.8) & (ratio < 1.25)
            if on_kink.any():
                _set_kink_interval(
                    d,
                    idx[on_kink],
                    values[on_kink],
                    hk[on_kink],
                    noise[on_kink],
                    (right[on_kink], left[on_kink]),
                    (sides_before[0][on_kink], sides_before[1][on_kink]),
                )
            smooth_streak = np.where((ratio > 0.35) & (ratio < 0.65), smooth_streak + 1, 0)
            keep = ~on_kink & (smooth_streak < 2)
        if level:
            settled = keep & passes(idx, values, noise)
            done = idx[settled]
            d.values[done], d.noise[done], d.steps[done] = values[settled], noise[settled], hk[settled]
            keep &= ~settled & audible
        idx, hk, spread, smooth_streak = idx[keep], hk[keep], spread[keep], smooth_streak[keep]
        spread_before, sides_before = spread, (right[keep], left[keep])
        if idx.size == 0:
            return


# ---- Taylor test ------------------------------------------------------------------------------


@dataclass
class TaylorResult:
    """Observed convergence order of ``r(h) = |J(x + h v) - J(x) - h g.v|``."""

    order: float | None  # None: the remainder stayed below round-off (exact along v)
    passed: bool
    steps: Array
    remainders: Array
    kink: bool  # judged by one-sided slopes because the order stayed at 1 on both sides


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
            return TaylorResult(order, bool(inside), steps, r_plus, kink=True)
    return TaylorResult(order, False, steps, r_plus, kink=False)


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
