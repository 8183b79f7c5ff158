"""The pass rule, written once.

Per checked entry (or direction), with ``a`` analytic and ``n`` numerical::

    |a - n| <= atol + rtol * max(|a|, |n|) + noise + analytic_floor

``noise`` is the numerical estimate's own round-off bound (see ``numeric``);
``analytic_floor = 1000 * eps(dtype) * max|n|`` over the parameter is the rounding
a correct gradient computed in ``dtype`` may carry (it only matters for float32).
At a kink (a step that crosses or starts on a non-differentiable point) ``n`` is
replaced by the interval between the two one-sided derivatives and the error is
the distance of ``a`` to that interval: any subgradient passes.

A parameter FAILs when any entry breaks the rule (or its Taylor order is below
1.5 with ``taylor``), WARNs when any entry comes within a factor 100 of its
limit, and PASSes otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .numeric import METHODS, Derivatives

Array = npt.NDArray[Any]

ANALYTIC_ROUNDOFF = 1000.0
WARN_FACTOR = 100.0

# Default (rtol, atol) per dtype and method.
TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "float64": {
        "central": (1e-6, 1e-9),
        "richardson": (1e-6, 1e-9),
        "complex": (1e-6, 1e-9),
        "forward": (1e-4, 1e-7),
    },
    "float32": {method: (1e-3, 1e-6) for method in METHODS},
}


@dataclass(frozen=True)
class PassRule:
    """The tolerances of one check and the dtype its analytic side ran in."""

    rtol: float
    atol: float
    dtype: str

    @property
    def dtype_eps(self) -> float:
        return float(np.finfo(np.dtype(self.dtype)).eps)

    def analytic_floor(self, magnitude: float) -> float:
        """Rounding a correct gradient of this size, computed in ``dtype``, may carry."""
        return ANALYTIC_ROUNDOFF * self.dtype_eps * magnitude

    def limit(self, scale: Any, noise: Any = 0.0, floor: float = 0.0) -> Any:
        """The largest error allowed for values of size ``scale`` with ``noise``."""
        return self.atol + self.rtol * scale + noise + floor

    def judge(self, analytic: Array, d: Derivatives) -> tuple[Array, Array]:
        """Absolute errors and limits of a batch of numerical derivatives."""
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
        floor = self.analytic_floor(float(np.max(np.abs(n), initial=0.0)))
        return err, self.limit(scale, noise, floor)


def status(abs_error: Array, limit: Array, taylor_failed: bool = False) -> str:
    """PASS, WARN or FAIL for a parameter's errors and limits (module docstring)."""
    if np.any(abs_error > limit) or taylor_failed:
        return "FAIL"
    if np.any(abs_error * WARN_FACTOR > limit):
        return "WARN"
    return "PASS"
