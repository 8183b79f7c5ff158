"""Orchestration: check a gradient against finite differences and build the Report.

``check_gradients`` takes any loss and gradient; ``check_model`` a built-in model
(``models.Model``), whose fast evaluator, if it offers one, is chosen here once.
The numerics live in ``numeric`` (and the engines), the pass rule in ``rule``, the
result data in ``result``.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from . import numeric
from .engine import EVALUATORS
from .errors import CheckInterrupted, InputError
from .indexing import entry_index
from .limits import require_bytes
from .models.base import Model
from .numeric import Derivatives, Evaluation, LoopProbe, Probe, TaylorResult
from .options import ENGINE_OPTIONS, Settings
from .result import ParameterResult, Report
from .rule import PassRule
from .usercode import call_user

Array = npt.NDArray[Any]
Params = dict[str, Array]


# ---- inputs ----------------------------------------------------------------------------------


def _as_params(params: Mapping[str, Any]) -> Params:
    if not isinstance(params, Mapping) or not params:
        raise InputError("parameters must be a non-empty dict of name -> array")
    out: Params = {}
    for name, value in params.items():
        raw = np.asarray(value)
        if raw.dtype.kind not in "fiub":
            kind = "complex" if raw.dtype.kind == "c" else str(raw.dtype)
            raise InputError(f"parameter {name} is {kind}; parameters must be real numbers", option="params")
        if raw.size == 0:
            raise InputError(
                f"parameter {name} has no entries (shape {raw.shape}); every parameter needs at least one",
                option="params",
            )
        arr = raw.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            bad = entry_index(arr.shape, int(np.flatnonzero(~np.isfinite(arr))[0]))
            raise InputError(f"parameter {name} is not finite at {bad}; give finite starting values")
        out[name] = arr
    return out


def normalise_gradients(raw: Any, params: Params, where: str = "gradient") -> Params:
    """Accept a dict, or a tuple/list in parameter order; check names, shapes and values."""
    names = list(params)
    if isinstance(raw, Mapping):
        missing = [n for n in names if n not in raw]
        extra = [str(n) for n in raw if n not in params]
        if missing:
            raise InputError(f"{where} returned no entry for {', '.join(missing)}; expected keys {', '.join(names)}")
        if extra:
            raise InputError(f"{where} returned unknown keys {', '.join(extra)}; expected keys {', '.join(names)}")
        grads = {n: raw[n] for n in names}
    elif isinstance(raw, (tuple, list)):
        if len(raw) != len(names):
            raise InputError(
                f"{where} returned {len(raw)} arrays; expected {len(names)}, one per parameter ({', '.join(names)})"
            )
        grads = dict(zip(names, raw, strict=True))
    else:
        raise InputError(
            f"{where} must return a dict name -> array (or a tuple in parameter order); got {type(raw).__name__}"
        )
    out: Params = {}
    for n in names:
        try:
            g = np.asarray(grads[n])
        except Exception:
            raise InputError(f"{where}: {n} is not an array") from None
        if g.dtype.kind not in "fiu":
            raise InputError(f"{where}: {n} has dtype {g.dtype}; expected a real floating-point array")
        if g.shape != params[n].shape:
            raise InputError(
                f"{where}: {n} has shape {_shape(g.shape)}, expected {_shape(params[n].shape)} (the shape of {n})"
            )
        bad = ~np.isfinite(g)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{where}: {n} is {g.reshape(-1)[first]} at {entry_index(g.shape, first)}; gradients must be finite"
            )
        out[n] = g
    return out


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


# ---- the check -------------------------------------------------------------------------------


def _positions(size: int, settings: Settings, rng: np.random.Generator) -> Array:
    if settings.mode == "sample" and settings.samples < size:
        return np.sort(rng.choice(size, size=settings.samples, replace=False))
    return np.arange(size)


def _unit_directions(k: int, size: int, rng: np.random.Generator) -> Array:
    v = rng.standard_normal((k, size))
    unit: Array = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


EVALUATIONS_PER_ENTRY = {"forward": 1, "central": 2, "richardson": 4, "complex": 1}


class ProgressSink(Protocol):
    """Receives progress: one ``start`` per parameter (its name, its evaluations, and
    which of how many parameters it is), ``advance`` per batch of evaluations."""

    def start(self, name: str, total: int, position: tuple[int, int]) -> None: ...

    def advance(self, count: int) -> None: ...

    def stop(self) -> None: ...


ProbeFactory = Callable[[Params], Probe]
P = ParamSpec("P")
R = TypeVar("R")


def api(function: Callable[P, R]) -> Callable[P, R]:
    """A public entry point: a misspelled keyword is an ``InputError`` naming the
    valid ones, as the command line would say it, not a bare ``TypeError``."""
    signature = inspect.signature(function)
    keywords = [n for n, p in signature.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]

    @functools.wraps(function)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        unknown = [k for k in kwargs if k not in signature.parameters]
        if unknown:
            raise InputError(f"unknown option {unknown[0]!r}; valid: {', '.join(keywords)}")
        return function(*args, **kwargs)

    return checked


@api
def check_gradients(
    loss: Callable[[Params], Any],
    gradients: Callable[[Params], Any],
    params: Mapping[str, Any],
    settings: Settings | None = None,
    *,
    method: str | None = None,
    mode: str | None = None,
    dtype: Any = None,
    eps: float | str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    samples: int | None = None,
    directions: int | None = None,
    taylor: bool | None = None,
    seed: int | None = None,
    kink_pattern: Callable[[Params], Array | None] | None = None,
    probe_factory: ProbeFactory | None = None,
    progress: ProgressSink | None = None,
    smooth: bool = False,
    loss_name: str = "loss",
    grad_name: str = "gradient",
    title: str = "gradient check",
    model: dict[str, Any] | None = None,
    name: str = "",
) -> Report:
    """Check ``gradients`` against finite differences of ``loss`` at ``params``.

    ``loss(params) -> float`` and ``gradients(params) -> dict`` (or a tuple in
    parameter order) take a dict of arrays.  How to check is a ``Settings``, or
    its fields as keywords (``method``, ``mode``, ``dtype``, ``eps``, ``rtol``,
    ``atol``, ``samples``, ``directions``, ``taylor``, ``seed``; keywords given
    override the ``Settings``).  ``probe_factory(reference_params)`` supplies a
    faster evaluator than the plain loop; ``progress`` is told how far the check
    has come.  ``kink_pattern`` (a model that reports its kinks) or
    ``smooth=True`` (a function known to have none) turn off the black-box kink
    search.  Returns the ``Report``; raises ``InputError`` for options or values
    that cannot be checked, ``UserCodeError`` when ``loss`` or ``gradients`` raise.
    """
    given = dict(
        method=method,
        mode=mode,
        dtype=dtype,
        eps=eps,
        rtol=rtol,
        atol=atol,
        samples=samples,
        directions=directions,
        taylor=taylor,
        seed=seed,
    )
    settings = (settings or Settings()).updated(**given).resolved()
    start = time.perf_counter()
    base_params = _as_params(params)
    dtype_ = np.dtype(settings.dtype)
    # The analytic side runs in the chosen dtype; the reference uses the very same
    # values, held in float64.
    typed = {k: v.astype(dtype_) for k, v in base_params.items()}
    reference = {k: v.astype(np.float64) for k, v in typed.items()}
    raw = call_user(grad_name, gradients, {k: v.copy() for k, v in typed.items()})
    analytic = {k: v.astype(np.float64) for k, v in normalise_gradients(raw, typed, grad_name).items()}
    probe = probe_factory(reference) if probe_factory else LoopProbe(loss, reference, kink_pattern, loss_name)
    # Unless the function is known smooth or reports its own kinks, entries whose
    # sides disagree, and failing entries, are looked at again from outside.
    black_box = not smooth and probe_factory is None and kink_pattern is None
    if progress is not None:
        probe.progress = progress.advance

    if settings.mode == "directional":
        largest = max(x.size for x in reference.values())
        require_bytes(8 * settings.directions * largest, f"{settings.directions} directions", "directions")
    rng = np.random.default_rng(settings.seed)
    pick_rng, direction_rng, taylor_rng = rng.spawn(3)
    rule = PassRule(*settings.tolerances, settings.dtype)
    results: list[ParameterResult] = []
    names = list(reference)
    try:
        for position, (pname, x) in enumerate(reference.items(), start=1):
            if progress is not None:
                count = {"directional": settings.directions, "sample": min(settings.samples, x.size)}.get(
                    settings.mode, x.size
                )
                progress.start(pname, count * EVALUATIONS_PER_ENTRY[settings.method], (position, len(names)))
            results.append(
                _check_parameter(
                    probe, pname, x, analytic[pname], settings, rule, black_box, pick_rng, direction_rng, taylor_rng
                )
            )
    except KeyboardInterrupt:
        # Keep what finished: the caller shows it, marked incomplete, and exits 130.
        partial = Report(
            title,
            model or {},
            settings,
            results,
            time.perf_counter() - start,
            probe.evaluations,
            engine=probe.engine_name,
            name=name,
            unchecked=names[len(results) :],
        )
        raise CheckInterrupted(partial) from None
    finally:
        if progress is not None:
            progress.stop()
    elapsed = time.perf_counter() - start
    return Report(
        title, model or {}, settings, results, elapsed, probe.evaluations, engine=probe.engine_name, name=name
    )


def _check_parameter(
    probe: Probe,
    name: str,
    x: Array,
    analytic: Array,
    settings: Settings,
    rule: PassRule,
    black_box: bool,
    pick_rng: np.random.Generator,
    direction_rng: np.random.Generator,
    taylor_rng: np.random.Generator,
) -> ParameterResult:
    """Numerical derivatives of one parameter (entries or directions), judged."""
    dtype = np.dtype(settings.dtype)
    a = analytic.reshape(-1)
    flat_x = x.reshape(-1)
    if settings.mode == "directional":
        V = _unit_directions(settings.directions, flat_x.size, direction_rng)
        positions = np.arange(len(V))
        step = numeric._compute_absolute_step(
            np.max(np.abs(flat_x), initial=0.0), settings.step, settings.method, dtype
        )
        h = np.full(len(V), step[()])

        def evaluate(steps: Array, subset: Array | None) -> Evaluation:
            return probe.along(name, V if subset is None else V[subset], steps)

        a_checked = V @ a
    else:
        positions = _positions(flat_x.size, settings, pick_rng)
        h = numeric._compute_absolute_step(flat_x[positions], settings.step, settings.method, dtype)

        def evaluate(steps: Array, subset: Array | None) -> Evaluation:
            return probe.entries(name, positions if subset is None else positions[subset], steps)

        a_checked = a[positions]
    d = numeric.numerical_derivatives(evaluate, h, settings.method)
    if black_box:
        _settle_black_box(evaluate, d, a_checked, h, flat_x, positions, settings, rule)
    err, limit = rule.judge(a_checked, d)
    taylor = _taylor(probe, name, flat_x, a, rule, taylor_rng) if settings.taylor else None
    return ParameterResult(
        name,
        x.shape,
        "directions" if settings.mode == "directional" else "entries",
        positions,
        a_checked,
        d.values,
        err,
        limit,
        d.kinks,
        d.steps,
        d.noise,
        taylor,
    )


def _settle_black_box(
    evaluate: numeric.Evaluate,
    d: Derivatives,
    analytic: Array,
    h: Array,
    flat_x: Array,
    positions: Array,
    settings: Settings,
    rule: PassRule,
) -> None:
    """A user's function cannot report its kinks: look again at every entry whose sides
    disagree sharply, and at every entry that fails (``numeric.settle_hidden_kinks``)."""
    err, limit = rule.judge(analytic, d)
    idx = np.union1d(numeric.hidden_kink_suspects(d), np.flatnonzero(err > limit))
    if idx.size == 0:
        return
    start = h[idx]
    if settings.method == "complex":
        # The complex step is far too small to halve from: start at a real central step.
        values = np.full(idx.size, np.max(np.abs(flat_x))) if settings.mode == "directional" else flat_x[positions[idx]]
        start = numeric._compute_absolute_step(
            values, numeric._eps_for_method("central"), "central", np.dtype(settings.dtype)
        )
    floor = rule.analytic_floor(float(np.max(np.abs(d.values), initial=0.0)))

    def passes(sub: Array, values: Array, noise: Array) -> Array:
        a = analytic[sub]
        passed: Array = np.abs(a - values) <= rule.limit(np.maximum(np.abs(a), np.abs(values)), noise, floor)
        return passed

    numeric.settle_hidden_kinks(evaluate, d, idx, start, passes)


def _taylor(probe: Probe, name: str, flat_x: Array, a: Array, rule: PassRule, rng: np.random.Generator) -> TaylorResult:
    v = _unit_directions(1, flat_x.size, rng)[0]
    slope = float(v @ a)
    # A slope error the pass rule accepts (a float32 gradient's own rounding, say)
    # adds a first-order term to a correct gradient's remainder: remainders it
    # could explain are not used to read the order.
    scale = max(abs(slope), float(np.max(np.abs(a), initial=0.0)))
    tolerance = float(rule.limit(abs(slope), floor=rule.analytic_floor(scale)))
    h0 = 0.1 * max(1.0, float(np.max(np.abs(flat_x))))

    def along(steps: Array) -> Evaluation:
        return probe.along(name, np.broadcast_to(v, (len(steps), v.size)), steps)

    return numeric.taylor_test(along, slope, tolerance, h0)


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
    method: str | None = None,
    mode: str | None = None,
    dtype: Any = None,
    eps: float | str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    samples: int | None = None,
    directions: int | None = None,
    taylor: bool | None = None,
    seed: int | None = None,
    engine: str = "auto",
    max_memory: float | None = None,
    progress: ProgressSink | None = None,
) -> Report:
    """Check a built-in model's ``gradients`` against its ``loss`` at its seeded start.

    Settings as for ``check_gradients``.  ``engine``: ``auto`` (the fastest
    evaluator the model offers, e.g. the MLP's incremental engine), one it offers
    by name, or ``loop`` (one forward pass per perturbation, the reference path).
    ``max_memory`` bounds the engine's scratch space, in MiB.
    """
    engine_option, memory_option = ENGINE_OPTIONS
    factory = _probe_factory(
        model,
        engine_option.convert(engine),
        memory_option.convert(memory_option.default if max_memory is None else max_memory),
    )
    spec = model.spec
    return check_gradients(
        model.loss,
        model.gradients,
        model.initial_parameters(),
        settings,
        method=method,
        mode=mode,
        dtype=dtype,
        eps=eps,
        rtol=rtol,
        atol=atol,
        samples=samples,
        directions=directions,
        taylor=taylor,
        seed=seed,
        kink_pattern=model.kink_pattern if model.has_kinks else None,
        smooth=not model.has_kinks,
        probe_factory=factory,
        progress=progress,
        title=spec.title(),
        model=spec.describe(),
    )
