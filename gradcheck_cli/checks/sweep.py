"""Error against step: why the step size matters.

For relative steps ``h`` from 1e-1 down to 1e-13 (log-spaced), each method's
numerical derivative of sampled entries is compared with the analytic gradient.
The classic V appears: truncation error falls with ``h`` (like ``h``, ``h^2``,
``h^4``), round-off rises as ``h`` shrinks (like ``eps / h``); the complex step
subtracts nothing and stays at round-off.  The error of a step is the largest
``|n - a|`` over the sampled entries, divided by the parameter's largest
``|a|``: a relative error that an entry whose gradient happens to be near zero
cannot blow up.  Each method's best step is marked, and the step ``--eps auto``
would choose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.errors import BadValueError, InputError
from ..core.estimates import Evaluation
from ..core.methods import METHOD, METHODS
from ..core.result import SweepCurve, SweepResult
from ..execution.usercode import call_user
from ..models.base import Model
from ..numerics.differences import difference_quotients
from ..numerics.steps import absolute_steps
from ..probes.loop import LoopProbe, Probe
from .frontend import as_params, normalise_gradients

Array = npt.NDArray[Any]
Params = dict[str, Array]

# Least accurate first: the order the chart's legend reads.
SWEEP_METHODS = tuple(sorted(METHODS, key=lambda m: (METHOD[m].imaginary, METHOD[m].order)))


def _derivatives(probe: Probe, name: str, flat: Array, x: Array, rel: float, method: str) -> Array:
    """The plain formula of ``method`` at relative step ``rel`` for entries ``flat``
    (no kink handling: the sweep shows what the formula gives at that step)."""
    record = METHOD[method]
    h = absolute_steps(x[flat], rel, record)

    def evaluate(steps: Array, subset: Array | None) -> Evaluation:
        return probe.entries(name, flat if subset is None else flat[subset], steps)

    return difference_quotients(evaluate, h, record).values


def sweep_steps(
    loss: Callable[[Params], Any],
    gradients: Callable[[Params], Any],
    params: Mapping[str, Any],
    *,
    points: int = 25,
    samples: int = 32,
    parameter: str | None = None,
    seed: int = 0,
    probe: Probe | None = None,
    title: str = "sweep",
) -> SweepResult:
    """Each method's error against the step (module Notes), over up to ``samples``
    entries per parameter (or of ``parameter`` alone)."""
    reference = as_params(params)
    if parameter is not None and parameter not in reference:
        raise InputError(f"{parameter!r} is no parameter; the parameters are {', '.join(reference)}", option="param")
    names = [parameter] if parameter is not None else list(reference)
    analytic = normalise_gradients(call_user("gradient", gradients, dict(reference)), reference)
    probe = probe or LoopProbe(loss, reference, black_box=True)
    rng = np.random.default_rng(seed)
    steps = np.logspace(-1, -13, points)
    picked = {}
    for name in names:
        size = reference[name].size
        picked[name] = np.sort(rng.choice(size, size=min(samples, size), replace=False))
    curves = []
    for method in SWEEP_METHODS:
        errors = np.zeros(points)
        reason = None
        try:
            for k, rel in enumerate(steps):
                worst = 0.0
                for name in names:
                    x = reference[name].reshape(-1)
                    a = np.asarray(analytic[name], dtype=np.float64).reshape(-1)
                    n = _derivatives(probe, name, picked[name], x, rel, method)
                    scale = max(float(np.max(np.abs(a), initial=0.0)), 1e-300)
                    worst = max(worst, float(np.max(np.abs(n - a[picked[name]]))) / scale)
                errors[k] = worst
        except BadValueError as exc:  # the loss is not complex-safe: no complex curve
            if not METHOD[method].imaginary:
                raise
            reason = str(exc)
        auto = METHOD[method].auto_step
        curves.append(SweepCurve(method, errors, auto, _error_at(steps, errors, auto), reason))
    return SweepResult(title, steps, parameter, curves, probe.evaluations)


def _error_at(steps: Array, errors: Array, step: float) -> float:
    """The error at ``step``, interpolated on the log-log curve."""
    order = np.argsort(steps)
    with np.errstate(divide="ignore"):
        value = np.interp(np.log(step), np.log(steps[order]), np.log(np.maximum(errors[order], 1e-300)))
    return float(np.exp(value))


def sweep_model(model: Model, **kwargs: Any) -> SweepResult:
    """``sweep_steps`` for a built-in model.  Always the plain loop: the incremental
    engine computes changes without subtracting two losses, so it has none of the
    round-off the sweep is there to show."""
    params = model.initial_parameters()
    return sweep_steps(
        model.loss, model.gradients, params, probe=LoopProbe(model.loss, params), title=model.spec.title(), **kwargs
    )
