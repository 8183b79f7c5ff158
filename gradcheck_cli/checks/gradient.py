"""The gradient of a loss: ``check_gradients`` for any loss and gradient,
``check_model`` for a built-in model (``models.Model``), whose fast evaluator, if it
offers one, is chosen here once.

A thin front end: each parameter's entries (or directions) become a ``_Parameter``,
the pipeline's ``Target``; the measurement itself is ``pipeline.measure``'s.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.errors import BadValueError, InputError
from ..core.estimates import EPS64, Evaluate, Evaluation, TaylorResult
from ..core.limits import require_bytes
from ..core.methods import Method
from ..core.options import Execution, Settings
from ..core.result import Report
from ..execution.evaluation import dropped_imaginary
from ..execution.usercode import call_user
from ..execution.workers import Runner, guard
from ..insight.diagnosis import diagnose, match_zoo
from ..models.base import Model
from ..numerics.noise import measure_noise
from ..numerics.screen import SCREEN_SAMPLE
from ..numerics.steps import absolute_steps
from ..probes.engine import EVALUATORS
from ..probes.loop import LoopProbe, Planned, Probe
from .frontend import (
    api,
    as_called,
    as_params,
    entry_positions,
    normalise_gradients,
    opened_runner,
    shape_text,
    split_options,
    unit_directions,
)
from .option_sets import ENGINE_OPTIONS
from .pipeline import (
    NOISE_EVALUATIONS,
    TRUNCATION_SAMPLE,
    How,
    Measurement,
    ProgressSink,
    Row,
    judged,
    measure,
    measure_each,
    taylor,
)

Array = npt.NDArray[Any]
Params = dict[str, Array]
ProbeFactory = Callable[[Params], Probe]


@api
def check_gradients(
    loss: Callable[[Params], Any],
    gradients: Callable[[Params], Any] | None,
    params: Mapping[str, Any],
    settings: Settings | None = None,
    *,
    value_and_grad: bool = False,
    data: Mapping[str, Any] | None = None,
    const: Mapping[str, Any] | None = None,
    kink_pattern: Callable[[Params], Array | None] | None = None,
    smooth: bool = False,
    progress: ProgressSink | None = None,
    loss_name: str = "loss",
    grad_name: str = "gradient",
    title: str = "gradient check",
    model: dict[str, Any] | None = None,
    name: str = "",
    execution: Execution | None = None,
    _probe_factory: ProbeFactory | None = None,
    _runner: Runner | None = None,
    _sources: tuple[str, ...] = (),
    **options: Any,
) -> Report:
    """Check ``gradients`` against finite differences of ``loss`` at ``params``.

    ``loss(params) -> float`` and ``gradients(params) -> dict`` (or a tuple in
    parameter order) take a dict of arrays.  How to check is a ``Settings``, or
    its fields as keywords (``method``, ``mode``, ``dtype``, ``eps``, ``rtol``,
    ``atol``, ``samples``, ``directions``, ``taylor``, ``seed``,
    ``allow_unresolved``; keywords given override the ``Settings``).
    ``_probe_factory(reference_params)`` supplies a faster evaluator than the plain
    loop; ``progress`` is told how far the check has come.  ``kink_pattern`` (a
    model that reports its kinks) or ``smooth=True`` (a function known to have
    none) mark a function that is not a black box; a black box gets measured
    noise and the adaptive step ladder (``checks.pipeline``).
    Where the loss is evaluated is an ``Execution`` or its fields as keywords:
    ``workers`` (processes, or ``"auto"``), ``dask`` (an address, ``"local:N"`` or a
    ``distributed.Client``), ``checkpoint`` (a file to resume from), ``timeout``
    (seconds per evaluation), ``max_seconds`` and ``force`` (the time guard);
    ``loss`` must then pickle (a module-level function).
    ``loss`` and ``gradients`` are called as ``gradcheck func`` calls them when their
    signatures name every parameter (``rosen(x)``, ``rosen_der(x)`` for ``{"x": x0}``,
    with the fixed inputs of ``data`` and ``const`` they take by name), else with the
    dict of parameters.
    ``value_and_grad=True``: ``loss`` returns ``(loss, gradient)`` (CS231n's
    ``softmax_loss``, scipy's ``jac=True``) and ``gradients`` is None.
    Returns the ``Report``; raises ``InputError`` for options or values that
    cannot be checked, ``UserCodeError`` when ``loss`` or ``gradients`` raise.
    """
    loss, gradients = as_called(loss, gradients, list(as_params(params)), value_and_grad, data, const, loss_name)
    chosen, run = split_options(settings, execution, options)
    user_step = chosen.eps is not None
    settings = chosen.resolved()
    start = time.perf_counter()
    base_params = as_params(params)
    dtype_ = np.dtype(settings.dtype)
    # The analytic side runs in the chosen dtype; the reference uses the very same
    # values, held in float64.
    typed = {k: v.astype(dtype_) for k, v in base_params.items()}
    reference = {k: v.astype(np.float64) for k, v in typed.items()}
    raw = call_user(grad_name, gradients, {k: v.copy() for k, v in typed.items()})
    reshaped: dict[str, tuple[int, ...]] = {}
    analytic = {k: v.astype(np.float64) for k, v in normalise_gradients(raw, typed, grad_name, False, reshaped).items()}
    shape_notes = {
        k: f"{grad_name} returned {k} with shape {shape_text(s)}; compared in {k}'s shape {shape_text(typed[k].shape)} "
        f"(they differ only by axes of length 1)"
        for k, s in reshaped.items()
    }
    rounding = _measured_rounding(gradients, reference, analytic) if dtype_ != np.float64 else {}
    # A function that reports its kinks (a built-in model) or is known smooth is not
    # a black box; anything else is measured from outside.
    black_box = not smooth and _probe_factory is None and kink_pattern is None
    with contextlib.ExitStack() as stack:
        if _probe_factory is None:
            identity = (title, model, loss_name, grad_name, settings)
            _runner = stack.enter_context(opened_runner(run, _runner, _sources, identity, reference))
        probe = (
            _probe_factory(reference)
            if _probe_factory
            else LoopProbe(loss, reference, kink_pattern, loss_name, black_box=black_box, runner=_runner)
        )
        if black_box:
            _require_deterministic(probe, loss_name)
        if settings.mode == "directional":  # a hard limit, before the time the check would take
            largest = max(x.size for x in reference.values())
            require_bytes(8 * settings.directions * largest, f"{settings.directions} directions", "directions")
        plan = planned_moves(reference, settings, black_box, user_step)
        guard(probe.forecast(plan), run.max_seconds, run.force, progress)
        how = How.of(settings, black_box, user_step)
        return _check_with(
            probe, how, reference, analytic, rounding, progress, title, model, name, loss_name, start, shape_notes
        )


def _check_with(
    probe: Probe,
    how: How,
    reference: Params,
    analytic: Params,
    rounding: dict[str, Array],
    progress: ProgressSink | None,
    title: str,
    model: dict[str, Any] | None,
    name: str,
    loss_name: str,
    start: float,
    notes: dict[str, str] | None = None,
) -> Report:
    """The check itself, once the evaluator is ready: every parameter measured, then judged;
    ``notes``: what was found of a parameter before (its gradient's shape)."""
    settings = how.settings
    if progress is not None:
        probe.progress = progress.advance
    rng = np.random.default_rng(settings.seed)
    pick_rng, direction_rng, taylor_rng, noise_rng = rng.spawn(4)

    def measure_one(pname: str) -> tuple[Row, Measurement]:
        before = probe.evaluations
        x = reference[pname].reshape(-1)
        a = analytic[pname].reshape(-1)
        target = _Parameter.of(probe, pname, x, settings, pick_rng, direction_rng)
        compared = a[target.positions] if target.unit is None else target.unit @ a
        measured = measure(target, compared, how, noise_rng)
        taylor_result = _taylor(probe, pname, x, a, how, taylor_rng) if settings.taylor else None
        rows_rounding = rounding.get(pname)
        if rows_rounding is not None:
            flat = rounding[pname].reshape(-1)
            rows_rounding = np.abs(target.unit) @ flat if target.unit is not None else flat[target.positions]
        row = Row(
            pname,
            reference[pname].shape,
            "directions" if target.directions else "entries",
            target.positions,
            compared,
            measured.derivatives,
            taylor_result,
            probe.evaluations - before,
            rounding=rows_rounding,
            notes=[notes[pname]] if notes and pname in notes else [],
        )
        return row, measured

    def finish(measured: list[tuple[Row, Measurement]], unchecked: list[str]) -> Report:
        if how.black_box and settings.difference.imaginary and measured and all(m.real_output for _, m in measured):
            raise dropped_imaginary(loss_name)
        results = judged([row for row, _ in measured], how.rule)
        batch = (model or {}).get("m")
        diagnose(results, batch if isinstance(batch, int) else None)
        return Report(
            title,
            model or {},
            settings,
            results,
            time.perf_counter() - start,
            probe.evaluations,
            engine=probe.engine_name,
            name=name,
            unchecked=unchecked,
            notes=_resumed(probe),
        )

    def evaluations_of(pname: str) -> int:
        return _entries(reference[pname].size, settings) * settings.difference.evaluations

    return measure_each(list(reference), measure_one, progress, evaluations_of, finish)


def _resumed(probe: Probe) -> list[str]:
    """The note of a check resumed from its checkpoint (none for a fresh run)."""
    runner = getattr(probe, "runner", None)
    note = runner.resumed() if isinstance(runner, Runner) else None
    return [note] if note else []


def _entries(size: int, settings: Settings) -> int:
    """Entries (or directions) a check of a parameter of ``size`` compares."""
    return {"directional": settings.directions, "sample": min(settings.samples, size)}.get(settings.mode, size)


@dataclass
class _Parameter:
    """One parameter's entries (or directions), as the pipeline measures them."""

    probe: Probe
    name: str
    x: Array  # the parameter's values, flat
    positions: Array  # entries checked, or direction numbers
    unit: Array | None  # unit directions (rows), in directional mode
    dtype: np.dtype[Any]
    output_eps: float
    both_sides: bool = True

    @property
    def directions(self) -> bool:
        return self.unit is not None

    @classmethod
    def of(
        cls,
        probe: Probe,
        name: str,
        x: Array,
        settings: Settings,
        pick_rng: np.random.Generator,
        direction_rng: np.random.Generator,
    ) -> _Parameter:
        output_eps = float(getattr(probe, "output_eps", EPS64))
        dtype = np.dtype(settings.dtype)
        if settings.mode == "directional":
            unit = unit_directions(settings.directions, x.size, direction_rng)
            return cls(probe, name, x, np.arange(len(unit)), unit, dtype, output_eps)
        return cls(probe, name, x, entry_positions(x.size, settings, pick_rng), None, dtype, output_eps)

    def evaluate(self, steps: Array, chosen: Array | None) -> Evaluation:
        if self.unit is not None:
            return self.probe.along(self.name, self.unit if chosen is None else self.unit[chosen], steps)
        return self.probe.entries(self.name, self.positions if chosen is None else self.positions[chosen], steps)

    def at_step(self, rel: float, method: Method) -> tuple[Evaluate, Array]:
        if self.unit is not None:
            magnitudes = np.full(len(self.unit), np.max(np.abs(self.x), initial=0.0))
        else:
            magnitudes = self.x[self.positions]
        return self.evaluate, absolute_steps(magnitudes, rel, method, self.dtype)

    def noise(self, pending: Array, rng: np.random.Generator) -> tuple[float, float]:
        """The loss's noise along one random direction of this parameter, and the
        relative precision it leaves: its output type's, or the noise over the loss's
        variation where that is larger."""
        v = unit_directions(1, self.x.size, rng)[0]

        def along(steps: Array) -> Evaluation:
            return self.probe.along(self.name, np.broadcast_to(v, (len(steps), v.size)), steps)

        sigma, variation = measure_noise(along, self.probe.base, float(np.max(np.abs(self.x), initial=0.0)))
        return sigma, max(self.output_eps, min(1e-2, sigma / max(variation, 1e-300)))

    def require_deterministic(self) -> None:
        """A black box's determinism is checked before anything (``_require_deterministic``)."""

    def screen_sample(self, rng: np.random.Generator) -> Array | None:
        return None  # the screen draws its own


def _taylor(probe: Probe, name: str, x: Array, a: Array, how: How, rng: np.random.Generator) -> TaylorResult:
    v = unit_directions(1, x.size, rng)[0]

    def along(steps: Array) -> Evaluation:
        return probe.along(name, np.broadcast_to(v, (len(steps), v.size)), steps)

    return taylor(along, float(v @ a), float(np.max(np.abs(a), initial=0.0)), x, how.rule)


def planned_moves(reference: Params, settings: Settings, black_box: bool, user_step: bool) -> list[Planned]:
    """The evaluations a check of ``reference`` should take when nothing needs a closer
    look, parameter by parameter: what the time guard costs.  Beyond the difference
    itself, a black box's screen looks again at up to ``SCREEN_SAMPLE`` entries per
    parameter (four evaluations each) and measures the loss's noise."""
    method = settings.difference
    per_entry = method.evaluations
    plan = []
    for name, x in reference.items():
        entries = _entries(x.size, settings)
        if black_box:  # the second look and the noise
            extra = 4 * min(SCREEN_SAMPLE, entries) + NOISE_EVALUATIONS
        elif method.imaginary:  # no truncation to measure
            extra = 0
        elif method.one_sided or user_step:  # the truncation, of every entry
            extra = entries * per_entry
        else:  # the truncation, of a sample
            extra = min(TRUNCATION_SAMPLE, entries) * per_entry
        step = settings.step * max(1.0, float(np.max(np.abs(x), initial=0.0)))
        plan.append(Planned(name, entries, entries * per_entry, step, settings.mode == "directional", extra))
    return plan


def _require_deterministic(probe: Probe, where: str) -> None:
    """Two calls at the same point that differ mean no difference quotient means anything."""
    assert isinstance(probe, LoopProbe)
    again = probe.repeat_base()
    if again != probe.base:
        raise BadValueError(
            f"{where} is not deterministic: two calls at the same point differ by {abs(again - probe.base):.3g} "
            f"({probe.base!r} and {again!r}); seed its randomness (dropout, sampling) so equal inputs give "
            f"equal losses"
        )


def _measured_rounding(gradients: Callable[[Params], Any], reference: Params, analytic: Params) -> dict[str, Array]:
    """A reduced-precision gradient's own rounding, measured: the same gradient function
    at the same point in float64 (where the code allows; else nothing is measured)."""
    try:
        raw = gradients({k: v.copy() for k, v in reference.items()})
        exact = normalise_gradients(raw, reference, "gradient")
    except Exception:  # the code may insist on its dtype: fall back to the model
        return {}
    return {k: np.abs(analytic[k] - np.asarray(exact[k], dtype=np.float64)) for k in analytic}


def _probe_factory(model: Model, engine: str, max_memory: float) -> ProbeFactory | None:
    """The evaluator for ``model``: the fastest it offers (``auto``), the one named, or
    None for the plain loop.  Chosen once, here."""
    if engine == "loop":
        return None
    offered = [e for e in model.evaluators if e in EVALUATORS]
    if engine == "auto":
        if not offered:
            return None
        engine = offered[0]
    elif engine not in offered:
        valid = ", ".join(["auto", *offered, "loop"])
        raise InputError(f"{engine!r} is not offered by this model; valid: {valid}", option="engine")
    factory = EVALUATORS[engine]
    budget = max(1, int(max_memory * 2**20))

    def make(reference: Params) -> Probe:
        probe: Probe = factory(model, reference, budget)
        return probe

    return make


@api
def check_model(
    model: Model,
    settings: Settings | None = None,
    *,
    engine: str = "auto",
    max_memory: float | None = None,
    progress: ProgressSink | None = None,
    execution: Execution | None = None,
    **options: Any,
) -> Report:
    """Check a built-in model's ``gradients`` against its ``loss`` at its seeded start.

    Settings as for ``check_gradients``.  ``engine``: ``auto`` (the fastest
    evaluator the model offers, e.g. the MLP's incremental engine), one it offers
    by name, or ``loop`` (one forward pass per perturbation, the reference path).
    ``max_memory`` bounds the engine's scratch space, in MiB.  Execution options as
    for ``check_gradients``: they serve the loop (the incremental engine runs here).
    """
    engine_option, memory_option = ENGINE_OPTIONS
    factory = _probe_factory(
        model,
        engine_option.convert(engine),
        memory_option.convert(memory_option.default if max_memory is None else max_memory),
    )
    spec = model.spec
    report = check_gradients(
        model.loss,
        model.gradients,
        model.initial_parameters(),
        settings,
        kink_pattern=model.kink_pattern if model.has_kinks else None,
        smooth=not model.has_kinks,
        _probe_factory=factory,
        progress=progress,
        title=spec.title(),
        model=spec.describe(),
        execution=execution,
        **options,
    )
    match_zoo(report.parameters, model)
    return report
