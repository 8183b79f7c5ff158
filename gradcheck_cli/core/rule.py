"""The pass rule, written once.

Per checked entry (or direction), with ``a`` analytic and ``n`` numerical::

    |a - n| <= atol + rtol * max(|a|, |n|) + noise + truncation + analytic_floor

``noise`` is the numerical estimate's round-off bound and ``truncation`` its
measured truncation error (see ``numeric``); ``analytic_floor`` is the rounding a
correct gradient computed in ``dtype`` may carry, per entry: measured where the
gradient can also be evaluated in float64, else ``1000 eps(dtype) |n|``.  At a
kink ``n`` is replaced by the interval between the one-sided derivatives and the
error is the distance of ``a`` to it: any subgradient passes.

An entry is UNRESOLVED when the numerical side cannot tell: its uncertainty
(noise + truncation) exceeds both ``atol`` and the size of the values compared
(at least ``RESOLVE_FLOOR`` of the check's largest derivative), or the loss left
its domain, or the complex step is not valid there.  A parameter FAILs when any
entry breaks the rule (or jumps: no derivative exists), else is UNRESOLVED when
any entry is, else PASSes.  Its resolution is the largest relative error an
entry could carry and still pass: ``(limit - atol) / max(|a|, |n|)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .estimates import FLAG_COMPLEX_INVALID, FLAG_DOMAIN, FLAG_JUMP, FLAG_KINKS, Derivatives

Array = npt.NDArray[Any]

ANALYTIC_ROUNDOFF = 1000.0


RESOLVE_FLOOR = 1e-3  # an entry's scale, for resolution: at least this much of the largest derivative


@dataclass(frozen=True)
class Judgement:
    """The pass rule applied to a batch of entries."""

    abs_error: Array  # |a - n|, or the distance of a to the one-sided interval at kinks
    limit: Array
    failed: Array  # bool per entry
    unresolved: Array  # bool per entry
    resolution: float  # largest relative error a resolved entry could carry and pass (nan: none resolved)


@dataclass(frozen=True)
class PassRule:
    """The tolerances of one check and the dtype its analytic side ran in."""

    rtol: float
    atol: float
    dtype: str

    @property
    def dtype_eps(self) -> float:
        return float(np.finfo(np.dtype(self.dtype)).eps)

    def analytic_floor(self, magnitude: Any, rounding: Any = None) -> Any:
        """Rounding a correct gradient of this size, computed in ``dtype``, may carry:
        measured (``rounding``, the gradient's distance to its float64 evaluation)
        where given, else ``1000 eps(dtype)`` relative."""
        if rounding is None:
            return ANALYTIC_ROUNDOFF * self.dtype_eps * np.abs(magnitude)
        return np.maximum(4 * np.abs(rounding), 8 * self.dtype_eps * np.abs(magnitude))

    def limit(self, scale: Any, noise: Any = 0.0, floor: Any = 0.0) -> Any:
        """The largest error allowed for values of size ``scale`` with ``noise``."""
        return self.atol + self.rtol * scale + noise + floor

    def judge(self, analytic: Array, d: Derivatives, reference: float, rounding: Array | None = None) -> Judgement:
        """The rule for a batch of numerical derivatives; ``reference`` is the check's
        largest derivative (for what counts as resolved)."""
        n = d.values
        err = np.abs(analytic - n)
        scale = np.maximum(np.abs(analytic), np.abs(n))
        noise = d.noise.copy()
        k = d.kinks & np.isfinite(d.lower) & np.isfinite(d.upper)
        if k.any():
            lo, hi = d.lower[k], d.upper[k]
            a = analytic[k]
            err[k] = np.maximum(0.0, np.maximum(lo - a, a - hi))
            scale[k] = np.maximum.reduce([np.abs(a), np.abs(lo), np.abs(hi)])
            noise[k] = 2 * noise[k]  # one-sided estimates carry twice the central round-off
        assert d.truncation is not None and d.flags is not None
        # Both are estimates (of a bound, and of a leading term): a factor of two on their sum.
        uncertainty = 2 * (noise + d.truncation)
        limit = self.limit(scale, uncertainty, self.analytic_floor(scale, rounding))
        jumped = d.flags == FLAG_JUMP
        # No numerical value to hold the analytic one against (the domain ended), or one
        # from another method than the one asked for (the complex step is not valid
        # there: a real derivative stands in, and can fail an entry, not pass it).
        blind = d.flags == FLAG_DOMAIN
        # On several kinks at once the one-sided slopes bound too narrow a set: outside
        # them the check cannot tell a wrong value from a valid combination.
        crowded = (d.flags == FLAG_KINKS) & (err > limit)
        with np.errstate(invalid="ignore", divide="ignore"):  # a zero floor: an exactly zero derivative
            failed = ((err > limit) & ~blind & ~crowded) | jumped
            floor = np.maximum(scale, RESOLVE_FLOOR * reference)
            unresolved = ~failed & (
                ((uncertainty > floor) & (uncertainty > self.atol))
                | blind
                | crowded
                | (d.flags == FLAG_COMPLEX_INVALID)
            )
            relative = (limit - self.atol) / floor
        resolved = ~unresolved & ~jumped & np.isfinite(relative)
        resolution = float(np.max(relative[resolved])) if resolved.any() else float("nan")
        return Judgement(err, limit, failed, unresolved, resolution)


def status(failed: Array, unresolved: Array, taylor_failed: bool = False) -> str:
    """PASS, UNRESOLVED or FAIL for a parameter (module docstring)."""
    if np.any(failed) or taylor_failed:
        return "FAIL"
    if np.any(unresolved):
        return "UNRESOLVED"
    return "PASS"
