"""The noise of a black-box function, measured (ECnoise): what no model of ``eps |J|``
sees, e.g. round-off of an intermediate larger than the result."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.estimates import Evaluation

Array = npt.NDArray[Any]


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
        sigma = noise_from_differences(values)
        if sigma is not None:
            found.append(sigma)
    # A zero reading is a coincidence of quantised values (equal increments), not
    # silence: it counts only when no spacing shows any noise.
    positive = [sigma for sigma in found if sigma > 0]
    return (NOISE_SAFETY * min(positive) if positive else 0.0), variation


def noise_from_differences(values: Array) -> float | None:
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
