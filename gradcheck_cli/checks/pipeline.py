"""The one measurement pipeline: every kind of check measures its numerical side here.

A front end (``gradient``: a loss's gradient; ``derivatives``: VJPs, JVPs,
Jacobians, Hessians) describes what it measures as a ``Target``: entries (or
directions) of one input, how to evaluate the function at moved points, and how
to measure its noise.  ``measure`` then takes the same path for all of them, chosen
once from the method and from whether the function is a black box:

- a built-in model (it reports its kinks): the method's formula at the step, and
  its truncation measured at a quarter step;
- a black box, real steps: one step first (``numerics.screen``), a second look at a
  sample; what that does not settle goes down the adaptive ladder with the
  function's measured noise; forward differences take the ladder at once and their
  failing entries are looked at again from both sides (a kink they cannot see);
- a black box, the complex step: one imaginary step, and its failing entries plus
  a sample held against real differences (it is not valid where the function is not
  complex-safe).

``judged`` applies the pass rule to every row of a check against the check's
largest derivative, and ``measure_each`` runs the inputs in turn with progress and
Ctrl-C.  ``taylor`` is the Taylor test of any scalar function along a direction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from ..core.errors import CheckInterrupted
from ..core.estimates import (
    FLAG_COMPLEX_INVALID,
    FLAG_KINKS,
    FLAG_NONE,
    Derivatives,
    Evaluate,
    Evaluation,
    TaylorResult,
)
from ..core.methods import CENTRAL, Method
from ..core.options import Settings
from ..core.result import ParameterResult, Report
from ..core.rule import PassRule
from ..numerics.differences import merge_derivatives, numerical_derivatives, subset
from ..numerics.ladder import ladder_derivatives
from ..numerics.screen import Screen
from ..numerics.steps import complex_step_noise
from ..numerics.taylor import taylor_test

Array = npt.NDArray[Any]

T = TypeVar("T")

COMPLEX_SAMPLE = 8  # entries per input whose complex step is held against real differences
TRUNCATION_SAMPLE = 64  # entries whose truncation is measured when the auto step is used
NOISE_EVALUATIONS = 30  # what measuring a function's noise costs, for the time guard


@dataclass(frozen=True)
class How:
    """What one check does, decided once for all its inputs."""

    settings: Settings
    rule: PassRule
    black_box: bool  # measured from outside (noise, the ladder); False: a model that reports its kinks
    user_step: bool  # the user chose the step: it is where the ladder starts
    relative_step: float | None = None  # a function of known precision (second differences): its step

    @classmethod
    def of(cls, settings: Settings, black_box: bool, user_step: bool, relative_step: float | None = None) -> How:
        """``settings`` resolved, with the pass rule they define."""
        resolved = settings.resolved()
        return cls(resolved, PassRule(*resolved.tolerances, resolved.dtype), black_box, user_step, relative_step)

    def step(self, precision: float, ladder: bool = False) -> float:
        """The relative step: the user's, the function's known one, else the auto step
        for values that carry a relative ``precision`` (of the ladder's rungs)."""
        if self.user_step:
            return self.settings.step
        if self.relative_step is not None:
            return self.relative_step
        method = self.settings.difference
        return (method.ladder if ladder else method).step_for(precision)


class Target(Protocol):
    """What a front end measures: the entries (or directions) of one input.

    ``at_step(rel, method)`` gives an ``Evaluate`` for the entries and every entry's
    absolute base step at relative step ``rel`` (``numerics.steps.absolute_steps``:
    real steps re-measured, imaginary ones not); ``noise(pending, rng)`` measures the function's noise where the
    entries ``pending`` need it and returns ``(sigma, precision)``: the noise the
    ladder adds to every change (0 where the evaluations carry it already) and the
    relative precision of the function's values."""

    @property
    def output_eps(self) -> float:
        """The relative precision of the function's values, by their type."""

    @property
    def directions(self) -> bool:
        """The entries are directions (a move may cross many kinks at once)."""

    @property
    def both_sides(self) -> bool:
        """The screen's second look moves both ways (False: one evaluation)."""

    def at_step(self, rel: float, method: Method) -> tuple[Evaluate, Array]: ...

    def noise(self, pending: Array, rng: np.random.Generator) -> tuple[float, float]: ...

    def require_deterministic(self) -> None: ...

    def screen_sample(self, rng: np.random.Generator) -> Array | None: ...


@dataclass
class Measurement:
    """One input's numerical side, before it is judged."""

    derivatives: Derivatives
    real_output: bool = False  # complex step: every evaluation returned a real value


def measure(target: Target, analytic: Array, how: How, rng: np.random.Generator) -> Measurement:
    """The numerical derivatives of the target's entries, with their error bounds."""
    method = how.settings.difference
    if not how.black_box:
        return Measurement(_model_derivatives(target, analytic, how, rng))
    if method.imaginary:
        return _complex_step(target, analytic, how, rng)
    measured = _black_box(target, analytic, how, rng)
    if target.directions:
        # A direction moves every entry at once: it may cross many kinks, each free to
        # take any value of its own subgradient interval, a set the one-sided slopes
        # can understate.  Outside them the check cannot tell (UNRESOLVED, not FAIL).
        d = measured.derivatives
        assert d.flags is not None
        d.flags[d.kinks & (d.flags == FLAG_NONE)] = FLAG_KINKS
    return measured


def _reference(analytic: Array) -> float:
    return float(np.max(np.abs(analytic), initial=0.0))


def _black_box(target: Target, analytic: Array, how: How, rng: np.random.Generator) -> Measurement:
    """One step first; the entries it does not settle, or all when the function is not
    seen on its own scale at that step, go down the adaptive ladder with the
    function's measured noise.  Forward differences never look left: a jump there
    passes one step unseen, so they always take the ladder (which probes the left
    side), and their failing entries are looked at from both sides."""
    method, rule = how.settings.difference, how.rule
    evaluate, h = target.at_step(how.step(target.output_eps), method)
    n = len(h)
    if method.one_sided:
        nan = np.full(n, np.nan)
        d = Derivatives(np.zeros(n), h, np.zeros(n), np.zeros(n, bool), nan, nan.copy())
        pending = np.arange(n)
    else:
        screen = Screen(evaluate, h, method, rule, rng, target.screen_sample(rng), target.both_sides)
        d = screen.derivatives
        pending = np.arange(n)
        if screen.trusted:
            j = rule.judge(analytic, d, _reference(analytic))
            unsure = np.flatnonzero(j.failed | j.unresolved | ~np.isfinite(d.values))
            # Entries the one step does not pass: a second look settles most of them
            # (a wrong value on a smooth function); the rest take the ladder.
            pending = unsure[~screen.look_again(unsure)] if unsure.size else unsure
    if pending.size == 0:
        return Measurement(d)
    # Checked only now: a function that failed no entry at one step had no chance to
    # mislead (and a grouped Jacobian's budget has no room for the evaluation).
    target.require_deterministic()
    sigma, precision = target.noise(pending, rng)
    # The step balances truncation against the function's real precision.
    ladder_evaluate, ladder_h = target.at_step(how.step(precision, ladder=True), method.ladder)
    merge_derivatives(d, pending, _ladder(ladder_evaluate, ladder_h, pending, method, sigma, how, how.user_step))
    if method.one_sided:
        failed = np.flatnonzero(rule.judge(analytic, d, _reference(analytic)).failed)
        _look_from_both_sides(target, d, failed, sigma, how, precision)
    return Measurement(d)


def _ladder(
    evaluate: Evaluate, h: Array, idx: Array, method: Method, sigma: float, how: How, user_step: bool
) -> Derivatives:
    """The ladder for the entries ``idx`` of a batch."""

    def sub(steps: Array, chosen: Array | None) -> Evaluation:
        return evaluate(steps, idx if chosen is None else idx[chosen])

    return ladder_derivatives(sub, h[idx], method, sigma, user_step, how.rule)


def _real_differences(target: Target, idx: Array, sigma: float, how: How, precision: float) -> Derivatives:
    """Central differences by the ladder, from the auto step, for the entries ``idx``:
    the real derivative a one-sided or imaginary step is held against."""
    evaluate, h = target.at_step(how.relative_step or CENTRAL.step_for(precision), CENTRAL)
    return _ladder(evaluate, h, idx, CENTRAL, sigma, how, user_step=False)


def _look_from_both_sides(target: Target, d: Derivatives, idx: Array, sigma: float, how: How, precision: float) -> None:
    """Central differences by the ladder for the entries ``idx``; a kink found there
    (one-sided slopes that disagree and stay put) puts the entry under the
    subgradient rule: one-sided methods cannot see a kink themselves."""
    if idx.size == 0:
        return
    real = _real_differences(target, idx, sigma, how, precision)
    kinked = real.kinks
    where = idx[kinked]
    assert d.truncation is not None
    d.kinks[where], d.lower[where], d.upper[where] = True, real.lower[kinked], real.upper[kinked]
    d.values[where], d.noise[where], d.steps[where] = real.values[kinked], real.noise[kinked], real.steps[kinked]
    d.truncation[where] = 0.0
    d.evaluations += real.evaluations


def _complex_step(target: Target, analytic: Array, how: How, rng: np.random.Generator) -> Measurement:
    """The complex step on a black box, held against real differences.

    The complex step stays the reference wherever it is valid; nothing overrules
    it.  It is not valid where the function is not complex-safe (``abs`` inside,
    say): there it disagrees with the real derivative by more than both their
    errors.  Failing entries and a few sampled ones are always held against real
    differences, since a derivative that matches a broken complex step would
    otherwise pass unseen; if any disagree, every entry is.  Where the complex step
    is not valid the entry is judged against the real derivative (flagged: it can
    fail, not pass); a kink found there puts it under the subgradient rule.  A real
    output under an imaginary step is a zero derivative (the input does not reach
    the output)."""
    evaluate, h = target.at_step(how.settings.step, how.settings.difference)
    ev = evaluate(1j * h, None)
    values = np.imag(ev.change) / h
    nan = np.full(len(h), np.nan)
    d = Derivatives(values, h, complex_step_noise(values), np.zeros(len(h), bool), nan, nan.copy())
    real_output = bool(ev.real_output is not None and ev.real_output.all())
    j = how.rule.judge(analytic, d, _reference(analytic))
    sampled = rng.choice(len(h), size=min(COMPLEX_SAMPLE, len(h)), replace=False)
    pending = np.union1d(np.flatnonzero(j.failed | j.unresolved), sampled)
    target.require_deterministic()
    sigma, precision = target.noise(pending, rng)
    broken, real = _complex_broken(target, d, pending, sigma, how, precision)
    if broken.any() and pending.size < len(h):
        pending = np.arange(len(h))
        broken, real = _complex_broken(target, d, pending, sigma, how, precision)
    where = pending[broken]
    merge_derivatives(d, where, subset(real, broken))
    assert d.flags is not None
    d.flags[where[~real.kinks[broken]]] = FLAG_COMPLEX_INVALID
    d.evaluations += real.evaluations
    return Measurement(d, real_output)


def _complex_broken(
    target: Target, d: Derivatives, pending: Array, sigma: float, how: How, precision: float
) -> tuple[Array, Derivatives]:
    """Real differences for ``pending``, and where they disagree with the complex step
    beyond both their errors (or sit at a kink the complex step cannot see)."""
    real = _real_differences(target, pending, sigma, how, precision)
    assert real.truncation is not None
    real_error = real.noise + real.truncation
    gap = np.abs(d.values[pending] - real.values)
    broken: Array = (gap > 2 * (real_error + d.noise[pending]) + 1e-3 * np.abs(real.values)) | real.kinks
    return broken, real


def _model_derivatives(target: Target, analytic: Array, how: How, rng: np.random.Generator) -> Derivatives:
    """A built-in model's derivatives: the formula at the step, steps across a kink
    halved until clear of it, and the truncation measured (``_measure_truncation``)."""
    method = how.settings.difference
    evaluate, h = target.at_step(how.settings.step, method)
    d = numerical_derivatives(evaluate, h, method)
    if not method.imaginary:
        _measure_truncation(evaluate, d, h, how, analytic, rng)
    return d


def _measure_truncation(
    evaluate: Evaluate, d: Derivatives, h: Array, how: How, analytic: Array, rng: np.random.Generator
) -> None:
    """The truncation error of a model's estimates, measured at a step four times
    smaller: ``D(h) - D(h/4) = (1 - 4^-p) c h^p`` for a method of order ``p``.

    A user's step, or forward differences, are measured on every entry.  With the
    auto step a sample of entries is measured first; only when truncation there
    reaches a hundredth of what the tolerances allow are all entries measured
    (on the sample's evidence the rest is negligible, and the fast path stays fast).
    """
    assert d.truncation is not None
    method = how.settings.difference
    gain = 4.0**method.order
    clean = np.flatnonzero(~d.kinks & (d.steps == h))
    if clean.size == 0:
        return

    def measure_at(where: Array) -> Array:
        def sub(steps: Array, chosen: Array | None) -> Evaluation:
            return evaluate(steps, where if chosen is None else where[chosen])

        finer = numerical_derivatives(sub, h[where] / 4, method)
        usable = ~finer.kinks & (finer.steps == h[where] / 4)
        # The measurement is of the leading term; higher terms and its own noise get
        # a factor of two.
        t = np.where(usable, 2 * np.abs(d.values[where] - finer.values) * gain / (gain - 1), 0.0)
        assert d.truncation is not None
        d.truncation[where] = t
        return t

    if how.user_step or method.one_sided or clean.size <= TRUNCATION_SAMPLE:
        measure_at(clean)
        return
    sample = np.sort(rng.choice(clean, size=TRUNCATION_SAMPLE, replace=False))
    t = measure_at(sample)
    allowance = how.rule.limit(np.maximum(np.abs(analytic[sample]), np.abs(d.values[sample])))
    if np.any(t > 0.01 * allowance):
        measure_at(np.setdiff1d(clean, sample))


def taylor(along: Callable[[Array], Evaluation], slope: float, scale: float, x: Array, rule: PassRule) -> TaylorResult:
    """The Taylor test of a scalar function along a unit direction, whose directional
    derivative is ``slope`` by the analytic side (``scale``: the largest analytic
    value involved).  A slope error the pass rule accepts (a float32 gradient's own
    rounding, say) adds a first-order term to a correct gradient's remainder:
    remainders it could explain are not used to read the order."""
    magnitude = max(abs(slope), scale)
    tolerance = float(rule.limit(abs(slope), floor=rule.analytic_floor(magnitude)))
    h0 = 0.1 * max(1.0, float(np.max(np.abs(x), initial=0.0)))
    return taylor_test(along, slope, tolerance, h0)


@dataclass
class Row:
    """One row of a report, measured and not yet judged."""

    name: str
    shape: tuple[int, ...]
    coverage: str  # "entries" or "directions"
    positions: Array  # flat positions of the checked entries in ``shape`` (or direction numbers)
    analytic: Array
    derivatives: Derivatives
    taylor: TaylorResult | None = None
    evaluations: int = 0
    notes: list[str] = field(default_factory=list)
    rounding: Array | None = None  # a reduced-precision analytic side's measured rounding, per entry


def judged(rows: Sequence[Row], rule: PassRule) -> list[ParameterResult]:
    """Every row judged by the pass rule against the check's largest derivative."""
    reference = max(
        (float(np.max(np.abs(np.concatenate([r.derivatives.values, r.analytic])), initial=0.0)) for r in rows),
        default=0.0,
    )
    return [
        ParameterResult.judged(
            r.name,
            r.shape,
            r.coverage,
            r.positions,
            r.analytic,
            r.derivatives,
            rule.judge(r.analytic, r.derivatives, reference, r.rounding),
            r.taylor,
            r.evaluations,
            r.notes,
        )
        for r in rows
    ]


class ProgressSink(Protocol):
    """Receives progress: one ``start`` per parameter (its name, its evaluations, and
    which of how many parameters it is), ``advance`` per batch of evaluations, and
    ``plan``, the check's estimated time and where it runs."""

    def start(self, name: str, total: int, position: tuple[int, int]) -> None: ...

    def advance(self, count: int) -> None: ...

    def plan(self, text: str) -> None: ...

    def stop(self) -> None: ...


def measure_each(
    names: Sequence[str],
    measure_one: Callable[[str], T],
    progress: ProgressSink | None,
    evaluations_of: Callable[[str], int],
    finish: Callable[[list[T], list[str]], Report],
) -> Report:
    """Measure every input in turn and build the report; Ctrl-C keeps what finished
    (the caller shows it, marked incomplete, and exits 130)."""
    measured: list[T] = []
    try:
        for position, name in enumerate(names, start=1):
            if progress is not None:
                progress.start(name, evaluations_of(name), (position, len(names)))
            measured.append(measure_one(name))
    except KeyboardInterrupt:
        raise CheckInterrupted(finish(measured, list(names[len(measured) :]))) from None
    finally:
        if progress is not None:
            progress.stop()
    return finish(measured, [])
