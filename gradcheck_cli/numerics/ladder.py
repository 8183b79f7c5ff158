"""The adaptive step ladder for black-box functions: differences at shrinking steps,
their truncation measured rung by rung, kinks, jumps and domain ends read on the way.

``StepSequence`` says which steps each rung takes; ``LadderEstimator`` reads one rung
at a time and keeps each entry's best estimate; ``ladder_derivatives`` drives them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ..core.estimates import FLAG_DOMAIN, FLAG_JUMP, FLAG_NONE, Derivatives, Evaluate, Evaluation
from ..core.methods import Method
from ..core.rule import PassRule

Array = npt.NDArray[Any]


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


@dataclass(frozen=True)
class StepSequence:
    """The steps of the ladder: each entry starts at ``start`` and every rung takes a
    step ``LADDER_RATIO`` times smaller, for ``rungs`` rungs at most."""

    start: Array
    user_step: bool = False
    rungs: int = LADDER_RUNGS

    @classmethod
    def around(cls, h: Array, user_step: bool) -> StepSequence:
        """Starting ``LADDER_UP`` rungs above the auto step ``h`` (a user's step: at it)."""
        return cls(h if user_step else h * LADDER_RATIO**LADDER_UP, user_step)

    def step(self, rung: int, active: Array) -> Array:
        """The step of rung ``rung`` for the entries ``active``."""
        return cast(Array, self.start[active] / LADDER_RATIO**rung)

    def small_enough(self, rung: int) -> bool:
        """The steps are down to the auto step: evidence read from here is about the
        function, not about steps far beyond its scale."""
        return rung >= LADDER_UP or self.user_step

    def last(self, rung: int) -> bool:
        return rung == self.rungs - 1


def ladder_derivatives(
    evaluate: Evaluate, h: Array, method: Method, sigma: float, user_step: bool, rule: PassRule
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
    sequence = StepSequence.around(h, user_step)
    estimator = LadderEstimator(h, method, sigma, rule)
    active = np.arange(len(h))
    with np.errstate(all="ignore"):  # ratios of quantities that may be 0 or nan
        for rung in range(sequence.rungs):
            if active.size == 0:
                break
            step = sequence.step(rung, active)
            plus = evaluate(step, active)
            minus = None if method.one_sided else evaluate(-step, active)
            stop = estimator.observe(rung, sequence, active, step, plus, minus)
            active = active[~stop]
    return estimator.finish(evaluate)


class LadderEstimator:
    """Each entry's best estimate so far, and the evidence read from the rungs.

    ``observe`` takes one rung (the changes at ``+step`` and, for two-sided methods,
    ``-step``) for the entries still climbing down and says which of them stop;
    ``finish`` returns the derivatives (and probes the left side of one-sided ones
    for jumps)."""

    def __init__(self, h: Array, method: Method, sigma: float, rule: PassRule) -> None:
        n = len(h)
        self.one_sided = method.one_sided
        # A method more accurate than its rungs (Richardson) extrapolates them.
        self.extrapolate = method.extrapolated
        self.order_gain = LADDER_RATIO if self.one_sided else LADDER_RATIO**2  # error ratio between rungs
        self.sigma, self.rule = sigma, rule
        self.evaluations = 0
        # The candidate each entry keeps: value, error estimate, round-off, truncation, step.
        self.best, self.best_err = np.full(n, np.nan), np.full(n, np.inf)
        self.best_noise, self.best_trunc, self.best_step = np.zeros(n), np.zeros(n), h.copy()
        self.last, self.last_step = np.full(n, np.nan), h.copy()  # the smallest rung's value, whatever it is
        # What the function showed: kinks (with the one-sided interval), jumps, domain ends.
        self.kinks = np.zeros(n, dtype=bool)
        self.lower, self.upper = np.full(n, np.nan), np.full(n, np.nan)
        self.flags, self.jumps = np.zeros(n, dtype=np.int8), np.zeros(n)
        # The rung above: value, extrapolation, one-sided slopes, changes.
        self.prev_d, self.prev_change, self.prev_r = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        self.prev_f, self.prev_b = np.full(n, np.nan), np.full(n, np.nan)
        self.prev_plus, self.prev_minus = np.full(n, np.nan), np.full(n, np.nan)
        self.prev_shrinking, self.prev_err = np.zeros(n, dtype=bool), np.full(n, np.inf)
        # How many rungs in a row the one-sided disagreement, and each side's change,
        # have stayed put.
        self.spread_run = np.zeros(n, dtype=int)
        self.plus_run, self.minus_run = np.zeros(n, dtype=int), np.zeros(n, dtype=int)

    def observe(
        self, rung: int, sequence: StepSequence, active: Array, step: Array, plus: Evaluation, minus: Evaluation | None
    ) -> Array:
        """Read one rung for the entries ``active``; which of them stop climbing."""
        rung_data = _Rung.read(step, plus, minus, self.sigma)
        self.evaluations += active.size * (1 if minus is None else 2)
        err = self._take_candidates(active, rung_data)
        self._count_evidence(active, rung_data)
        # Who climbs further down?
        best = self.best[active]
        target = 0.01 * self.rule.limit(np.abs(np.where(np.isfinite(best), best, 0.0)))
        converged = self.best_err[active] <= target
        noise = rung_data.noise
        roundoff_rules = rung_data.valid & (noise > err - noise) & (err > self.prev_err[active])
        stop: Array = (rung + 1 >= LADDER_MIN) & (converged | roundoff_rules)
        if sequence.last(rung):
            stop[:] = True
        self._read_evidence(active, rung_data, stop, sequence.small_enough(rung), sequence.last(rung))
        self._remember(active, rung_data, err)
        return stop

    def _take_candidates(self, active: Array, g: _Rung) -> Array:
        """This rung's estimates, where the function is seen on its own scale; each entry
        keeps the one with the smallest error.  Returns this rung's error estimate."""
        d, noise, dp, dm = g.d, g.noise, g.dp, g.dm
        # The difference to the rung above measures the truncation only in the
        # asymptotic regime, where differences shrink by order_gain per rung; the
        # one before it keeps a coincidental agreement (a periodic function at
        # steps near its period) from passing for convergence.
        change = np.abs(d - self.prev_d[active])
        # (Forward differences get no division by gain - 1: their first-order model is
        # the least trustworthy where round-off pushes the step toward the function's
        # own scale.)
        gain = self.order_gain
        trunc = np.maximum(change, self.prev_change[active] / gain) / (1 if self.one_sided else gain - 1)
        self.prev_change[active] = change
        # Only where the loss's changes shrink with the step (like h, or h^2 at a
        # stationary point) is the function seen on its own scale.  Changes that stay
        # put mean the steps still reach past a feature narrower than they are (a
        # bump of width 1e-7 looks flat, with a derivative of exactly 0, from
        # steps of 1e-6): no estimate is taken from such a rung.
        # (A loss that does not move at all is constant there: exactly seen.)
        shrinking = (np.abs(dp) < SHRINK * np.abs(self.prev_plus[active])) | (dp == 0)
        if not self.one_sided:
            shrinking &= (np.abs(dm) < SHRINK * np.abs(self.prev_minus[active])) | (dm == 0)
        # And above the noise: changes of a few noise quanta can shrink by chance.
        if self.one_sided:
            heard = (np.abs(dp) > 10 * (self.sigma + g.plus_roundoff)) | (dp == 0)
        else:
            loudness = np.abs(dp) + np.abs(dm)
            heard = (loudness > 10 * (2 * self.sigma + g.plus_roundoff + g.minus_roundoff)) | (loudness == 0)
        # Two rungs in a row: the estimate compares this rung with the one above.
        trunc = np.where(shrinking & self.prev_shrinking[active] & heard, trunc, np.inf)
        self.prev_shrinking[active] = shrinking
        valid = g.valid
        self.last[active[valid]] = d[valid]
        self.last_step[active[valid]] = g.step[valid]
        err = np.where(np.isfinite(trunc), trunc, np.inf) + noise
        candidates = [(d, err, noise, np.where(np.isfinite(trunc), trunc, np.inf))]
        g.extrapolated = np.full(active.size, np.nan)
        if self.extrapolate:
            r = (gain * d - self.prev_d[active]) / (gain - 1)
            r_noise = (gain * noise + 2 * self.sigma / g.step * LADDER_RATIO) / (gain - 1)
            r_trunc = np.where(trunc < np.inf, np.abs(r - self.prev_r[active]), np.inf)
            candidates.append((r, np.where(np.isfinite(r_trunc), r_trunc, np.inf) + r_noise, r_noise, r_trunc))
            g.extrapolated = r
        # An estimate's error is confirmed by every rung below it: a later value
        # farther from it than its error estimate shows the estimate was lucky.
        # (Less the later value's own round-off: a noisy small step proves nothing.)
        known = valid & np.isfinite(self.best[active])
        seen = active[known]
        self.best_err[seen] = np.maximum(self.best_err[seen], np.abs(d[known] - self.best[seen]) - noise[known])
        # ...and the reported uncertainty says so (the excess counts as truncation).
        self.best_trunc[seen] = np.maximum(self.best_trunc[seen], self.best_err[seen] - self.best_noise[seen])
        for value, e, nz, tr in candidates:
            better = valid & np.isfinite(value) & (e < self.best_err[active])
            where = active[better]
            self.best[where], self.best_err[where] = value[better], e[better]
            self.best_noise[where] = nz[better]
            self.best_trunc[where] = np.where(np.isfinite(tr[better]), tr[better], 0.0)
            self.best_step[where] = g.step[better]
        return err

    def _count_evidence(self, active: Array, g: _Rung) -> None:
        """Evidence that stays put while the step shrinks by ``LADDER_RATIO``."""
        f, b, dp, dm = g.f, g.b, g.dp, g.dm
        spread = np.abs(f - b)
        spread_ratio = spread / np.abs(self.prev_f[active] - self.prev_b[active])
        plus_ratio = np.abs(dp) / np.abs(self.prev_plus[active])
        minus_ratio = np.abs(dm) / np.abs(self.prev_minus[active])
        audible = spread > 100 * g.noise
        with np.errstate(invalid="ignore"):
            prev_f, prev_b = self.prev_f[active], self.prev_b[active]
            converging = (np.abs(f - prev_f) < 0.1 * spread) & (np.abs(b - prev_b) < 0.1 * spread)
            runs = self.spread_run[active]
            self.spread_run[active] = np.where(audible & _steady(spread_ratio) & converging, runs + 1, 0)
            loud_plus = np.abs(dp) > 100 * (self.sigma + g.plus_roundoff)
            loud_minus = np.abs(dm) > 100 * (self.sigma + g.plus_roundoff)
            self.plus_run[active] = np.where(loud_plus & _steady(plus_ratio), self.plus_run[active] + 1, 0)
            self.minus_run[active] = np.where(loud_minus & _steady(minus_ratio), self.minus_run[active] + 1, 0)

    def _read_evidence(self, active: Array, g: _Rung, stop: Array, small_enough: bool, exhausted: bool) -> None:
        """Evidence is read where an entry stops, from the rungs that led there, and
        only once the steps are down to the auto step: a steep smooth function seen
        from steps far beyond its scale shows plateaus on either side.  A kink
        converges (its central difference is the sides' mean) and stops early; a jump
        never converges and is read at the last rung (``exhausted``: stopped by
        round-off instead, it could not tell)."""
        f, b, d = g.f, g.b, g.d
        on_kink = stop & (not self.one_sided) & small_enough & (self.spread_run[active] >= KINK_EVIDENCE)
        jump_plus = exhausted & (self.plus_run[active] >= JUMP_EVIDENCE)
        jump_minus = exhausted & (not self.one_sided) & (self.minus_run[active] >= JUMP_EVIDENCE)
        jumped = (jump_plus | jump_minus) & ~on_kink
        if np.any(jumped):
            where = active[jumped]
            self.flags[where] = FLAG_JUMP
            self.jumps[where] = np.where(jump_plus[jumped], g.dp[jumped], -g.dm[jumped])
            self.best[where], self.best_step[where] = d[jumped], g.step[jumped]
        if np.any(on_kink):
            where = active[on_kink]
            right_x = (LADDER_RATIO * f[on_kink] - self.prev_f[where]) / (LADDER_RATIO - 1)
            left_x = (LADDER_RATIO * b[on_kink] - self.prev_b[where]) / (LADDER_RATIO - 1)
            self.kinks[where] = True
            self.lower[where], self.upper[where] = np.minimum(right_x, left_x), np.maximum(right_x, left_x)
            self.best[where], self.best_step[where] = d[on_kink], g.step[on_kink]
            self.best_noise[where] = 4 * g.noise[on_kink] + np.maximum(
                np.abs(right_x - f[on_kink]), np.abs(left_x - b[on_kink])
            )
            self.best_trunc[where] = 0.0

    def _remember(self, active: Array, g: _Rung, err: Array) -> None:
        self.prev_d[active], self.prev_r[active] = g.d, g.extrapolated
        self.prev_f[active], self.prev_b[active] = g.f, g.b
        self.prev_plus[active], self.prev_minus[active] = g.dp, g.dm
        self.prev_err[active] = np.where(g.valid, err, np.inf)

    def finish(self, evaluate: Evaluate) -> Derivatives:
        """The derivatives every entry ended with."""
        best, best_step, best_noise, flags = self.best, self.best_step, self.best_noise, self.flags
        if self.one_sided:
            self.evaluations += _left_jumps(evaluate, best_step, self.sigma, flags, self.jumps)
        never = ~np.isfinite(best)
        # Values, but none from a rung where the function was seen on its own scale: the
        # check cannot tell (UNRESOLVED by its infinite uncertainty).  No values at all:
        # the loss was not finite at any step tried.
        seen = never & np.isfinite(self.last)
        best[seen], best_step[seen] = self.last[seen], self.last_step[seen]
        flags[never & ~seen & (flags == FLAG_NONE)] = FLAG_DOMAIN
        best[never & ~seen] = 0.0
        best_noise[never] = np.inf
        return Derivatives(
            best,
            best_step,
            best_noise,
            self.kinks,
            self.lower,
            self.upper,
            self.best_trunc,
            flags,
            self.jumps,
            self.evaluations,
        )


@dataclass
class _Rung:
    """What one rung measured for the active entries: the changes at ``+step`` and
    ``-step`` (zero for one-sided methods), the difference quotient, the one-sided
    slopes and the quotient's round-off."""

    step: Array
    dp: Array
    dm: Array
    plus_roundoff: Array
    minus_roundoff: Array
    d: Array
    f: Array
    b: Array
    noise: Array
    valid: Array
    extrapolated: Array | None = None

    @classmethod
    def read(cls, step: Array, plus: Evaluation, minus: Evaluation | None, sigma: float) -> _Rung:
        dp = np.real(plus.change)
        if minus is None:
            dm = np.zeros_like(dp)
            d = dp / step
            noise = (2 * sigma + 2 * plus.roundoff) / step
            minus_roundoff = plus.roundoff
        else:
            dm = np.real(minus.change)
            d = (dp - dm) / (2 * step)
            noise = (2 * sigma + plus.roundoff + minus.roundoff) / (2 * step)
            minus_roundoff = minus.roundoff
        return cls(step, dp, dm, plus.roundoff, minus_roundoff, d, dp / step, -dm / step, noise, np.isfinite(d))
