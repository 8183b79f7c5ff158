"""The screen: one step first, and a second look at a few entries, before any ladder."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.estimates import Evaluate, Evaluation
from ..core.methods import Method
from ..core.rule import PassRule
from .differences import numerical_derivatives
from .ladder import LADDER_RATIO, SHRINK

Array = npt.NDArray[Any]


SCREEN_SAMPLE = 64  # entries whose behaviour at a four-times-smaller step is looked at


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
        method: Method,
        rule: PassRule,
        rng: np.random.Generator,
        sample: Array | None = None,
        both_sides: bool = True,
    ) -> None:
        self._evaluate, self._h = evaluate, h
        self._both_sides = both_sides
        self._rule = rule
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
        allowance = rule.limit(np.abs(self.derivatives.values[sample]))
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
            allowance = self._rule.limit(np.abs(central))
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
