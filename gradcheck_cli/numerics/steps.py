"""Steps and the round-off of loss changes: the first numerical facts every method uses.

The numerical side never looks at the analytic gradient it will judge: it only
evaluates the loss at perturbed points, through a *probe* (``probes.loop.LoopProbe``,
or the incremental engine for the built-in MLP).

Notes
-----
Why the steps are what they are: see ``core.methods`` (each method's auto step
balances its truncation against round-off).  A real step is re-measured as
``(x + h) - x``: that is the step the loss really saw, and dividing by it instead of
by the requested ``h`` removes a relative error of up to ``eps |x| / h``.  Steps are
relative to ``max(1, |x|)``: a value of 1e4 gets a step it can actually feel, and a
value near 0 does not get a step of 0.

Why a noise floor.  The loss is computed with a relative round-off of a few
``eps``; the difference of two loss values therefore carries an absolute error
of about ``eps * |J|``, and the derivative estimate ``eps * |J| / h``.  When the
true derivative is tiny or exactly zero that floor, not the gradient, decides the
comparison; each estimate carries its own bound and the pass rule adds it.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ..core.estimates import EPS64
from ..core.methods import Method

Array = npt.NDArray[Any]


# Round-off of one loss evaluation, in units of eps * |J|.  Losses are sums of many
# terms and pass through several matrix products; 64 covers that with room.
LOSS_ROUNDOFF = 64.0


def absolute_steps(x: Any, rel_step: float, method: Method, dtype: npt.DTypeLike = np.float64) -> Array:
    """Absolute steps ``rel_step * max(1, |x|)``, never zero, re-measured for real steps.

    A real step is at least the spacing of ``dtype`` at the value (so float32
    parameters are never moved by less than one float32 ulp), then re-measured as
    ``(x + h) - x`` in float64.
    """
    x = np.asarray(x, dtype=np.float64)
    scale = np.maximum(1.0, np.abs(x))
    h = rel_step * scale
    if method.imaginary:
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


# The imaginary part sums per-sample terms that can cancel: their round-off is that of
# terms a few times larger than the batch's largest derivative (measured on deep
# networks: up to 1.6x the plain LOSS_ROUNDOFF bound), hence the extra factor.
COMPLEX_ROUNDOFF = 4 * LOSS_ROUNDOFF


def complex_step_noise(values: Array) -> Array:
    """Round-off bound of complex-step derivatives: no subtraction, so only the loss's
    own relative round-off, on terms as large as the batch's largest derivative."""
    return cast(Array, COMPLEX_ROUNDOFF * EPS64 * np.maximum(np.abs(values), np.max(np.abs(values), initial=0.0)))
