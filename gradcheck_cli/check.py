"""Compare analytic gradients with numerical ones; the Report and its verdict.

The pass rule, per checked entry (or direction), with ``a`` analytic and ``n``
numerical::

    |a - n| <= atol + rtol * max(|a|, |n|) + noise + analytic_floor

``noise`` is the numerical estimate's own round-off bound (see ``numeric``);
``analytic_floor = 1000 * eps(dtype) * max|n|`` over the parameter is the rounding
a correct gradient computed in ``dtype`` may carry (it only matters for float32).
At a kink (a step that crosses or starts on a non-differentiable point) ``n`` is
replaced by the interval between the two one-sided derivatives and the error is
the distance of ``a`` to that interval: any subgradient passes.

A parameter FAILs when any entry breaks the rule (or its Taylor order is below
1.5 with ``--taylor``), WARNs when any entry comes within a factor 100 of its
limit, and PASSes otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from . import numeric
from .engine import DEFAULT_MAX_MEMORY, IncrementalProbe
from .models import MLP
from .numeric import METHODS, Derivatives, Evaluation, LoopProbe, TaylorResult

Array = np.ndarray
Params = dict[str, Array]

MODES = ("full", "sample", "directional")
DTYPES = ("float64", "float32")
ANALYTIC_ROUNDOFF = 1000.0
WARN_FACTOR = 100.0

# Default tolerances per dtype (and method where the method is the limit).
TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "float64": {
        "central": (1e-6, 1e-9),
        "richardson": (1e-6, 1e-9),
        "complex": (1e-6, 1e-9),
        "forward": (1e-4, 1e-7),
    },
    "float32": {method: (1e-3, 1e-6) for method in METHODS},
}


class InputError(ValueError):
    """Parameters or gradients that cannot be checked; the message says what would be right."""


def default_tolerances(dtype: str, method: str) -> tuple[float, float]:
    """``(rtol, atol)`` for a dtype and method, from ``TOLERANCES``."""
    return TOLERANCES[dtype][method]


@dataclass(frozen=True)
class Settings:
    """How to check: every option the command line offers."""

    method: str = "central"
    mode: str = "full"
    dtype: str = "float64"
    eps: float | None = None  # relative step; None picks it per method
    rtol: float | None = None  # None: from TOLERANCES
    atol: float | None = None
    samples: int = 16
    directions: int = 8
    taylor: bool = False
    seed: int = 0

    def resolved(self) -> "Settings":
        """The same settings with the defaults filled in."""
        rtol, atol = default_tolerances(self.dtype, self.method)
        return replace(
            self,
            eps=numeric._eps_for_method(self.method) if self.eps is None else self.eps,
            rtol=rtol if self.rtol is None else self.rtol,
            atol=atol if self.atol is None else self.atol,
        )


@dataclass
class ParameterResult:
    """The comparison for one parameter tensor."""

    name: str
    shape: tuple[int, ...]
    coverage: str  # "entries" or "directions"
    positions: Array  # flat indices checked, or direction numbers
    analytic: Array
    numerical: Array
    abs_error: Array  # |a - n|, or the distance of a to the one-sided interval at kinks
    limit: Array
    kinks: Array
    steps: Array
    noise: Array  # round-off bound of each numerical value
    taylor: TaylorResult | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def checked(self) -> int:
        return len(self.positions)

    @property
    def rel_error(self) -> Array:
        scale = np.maximum(np.abs(self.analytic), np.abs(self.numerical))
        return np.divide(self.abs_error, scale, out=np.zeros_like(self.abs_error), where=scale > 0)

    @property
    def failures(self) -> int:
        return int(np.count_nonzero(self.abs_error > self.limit))

    @property
    def worst(self) -> int:
        """Position (in the checked arrays) closest to, or furthest past, its limit."""
        return int(np.argmax(self.abs_error / self.limit))

    @property
    def worst_label(self) -> str:
        if self.coverage == "directions":
            return f"direction {int(self.positions[self.worst])}"
        index = np.unravel_index(int(self.positions[self.worst]), self.shape) if self.shape else ()
        return "[" + ", ".join(str(int(i)) for i in index) + "]"

    @property
    def status(self) -> str:
        if self.failures or (self.taylor is not None and not self.taylor.passed):
            return "FAIL"
        if np.any(self.abs_error * WARN_FACTOR > self.limit):
            return "WARN"
        return "PASS"


STATUS_ORDER = {"PASS": 0, "WARN": 1, "FAIL": 2}


@dataclass
class Report:
    """Everything a check found; renders itself with rich (``__rich__``)."""

    title: str
    model: dict[str, Any]
    settings: Settings
    parameters: list[ParameterResult]
    elapsed: float
    evaluations: int
    engine: str = "loop"
    name: str = ""

    @property
    def status(self) -> str:
        worst = max((p.status for p in self.parameters), key=STATUS_ORDER.__getitem__, default="PASS")
        return worst

    @property
    def passed(self) -> bool:
        return self.status != "FAIL"

    @property
    def exit_code(self) -> int:
        """0 when every parameter passes (WARN included), 1 when any fails."""
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        from .report import report_to_dict

        return report_to_dict(self)

    def to_json(self) -> str:
        from .report import report_to_json

        return report_to_json(self)

    def to_text(self, width: int = 120) -> str:
        from .report import report_to_text

        return report_to_text(self, width)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from .report import render_report

        yield render_report(self, options.max_width)


# ---- inputs ----------------------------------------------------------------------------------


def _as_params(params: Mapping[str, Any]) -> Params:
    if not isinstance(params, Mapping) or not params:
        raise InputError("parameters must be a non-empty dict of name -> array")
    out: Params = {}
    for name, value in params.items():
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            bad = np.unravel_index(int(np.flatnonzero(~np.isfinite(arr))[0]), arr.shape) if arr.ndim else ()
            raise InputError(f"parameter {name} is not finite at {list(map(int, bad))}; give finite starting values")
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
        grads = dict(zip(names, raw))
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
            at = np.unravel_index(int(np.flatnonzero(bad)[0]), g.shape) if g.ndim else ()
            raise InputError(f"{where}: {n} is {g[at]} at {list(map(int, at))}; gradients must be finite")
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
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _judge(
    analytic: Array, d: Derivatives, settings: Settings, dtype_eps: float
) -> tuple[Array, Array]:
    """Absolute errors and limits under the pass rule (module docstring)."""
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
    analytic_floor = ANALYTIC_ROUNDOFF * dtype_eps * (np.max(np.abs(n)) if n.size else 0.0)
    limit = settings.atol + settings.rtol * scale + noise + analytic_floor
    return err, limit


EVALUATIONS_PER_ENTRY = {"forward": 1, "central": 2, "richardson": 4, "complex": 1}


class ProgressSink(Protocol):
    """Receives progress: one ``start`` per parameter, ``advance`` per batch of evaluations."""

    def start(self, name: str, total: int) -> None: ...

    def advance(self, count: int) -> None: ...

    def stop(self) -> None: ...


class Probe(Protocol):
    """What ``check_gradients`` needs from a loss evaluator (``LoopProbe`` or the engine)."""

    base: float
    evaluations: int
    progress: Callable[[int], None] | None

    def entries(self, name: str, flat: Array, steps: Array) -> Evaluation: ...

    def along(self, name: str, directions: Array, steps: Array) -> Evaluation: ...


def check_gradients(
    loss: Callable[[Params], float],
    gradients: Callable[[Params], Any],
    params: Mapping[str, Any],
    settings: Settings | None = None,
    *,
    kink_pattern: Callable[[Params], Array | None] | None = None,
    probe_factory: Callable[[Params], Probe] | None = None,
    progress: ProgressSink | None = None,
    smooth: bool = False,
    loss_name: str = "loss",
    grad_name: str = "gradient",
    title: str = "gradient check",
    model: dict[str, Any] | None = None,
    name: str = "",
    **options: Any,
) -> Report:
    """Check ``gradients`` against finite differences of ``loss`` at ``params``.

    ``loss(params) -> float`` and ``gradients(params) -> dict`` (or a tuple in
    parameter order) take a dict of arrays.  Options are the fields of
    ``Settings`` (``method``, ``mode``, ``dtype``, ``eps``, ``rtol``, ``atol``,
    ``samples``, ``directions``, ``taylor``, ``seed``), given either as a
    ``Settings`` or as keywords.  ``probe_factory(reference_params)`` supplies a
    faster evaluator than the plain loop (the built-in MLP's engine); ``progress``
    is told how far the check has come.  ``kink_pattern`` (a model that reports
    its kinks) or ``smooth=True`` (a function known to have none) turn off the
    black-box kink search.  Returns the ``Report``.
    """
    settings = replace(settings or Settings(), **options).resolved()
    _validate_settings(settings)
    start = time.perf_counter()
    base_params = _as_params(params)
    dtype = np.dtype(settings.dtype)
    # The analytic side runs in the chosen dtype; the reference uses the very same
    # values, held in float64.
    typed = {k: v.astype(dtype) for k, v in base_params.items()}
    reference = {k: v.astype(np.float64) for k, v in typed.items()}
    try:
        raw = gradients({k: v.copy() for k, v in typed.items()})
    except Exception as exc:
        raise numeric.UserCodeError(grad_name, exc) from exc
    analytic = {k: v.astype(np.float64) for k, v in normalise_gradients(raw, typed, grad_name).items()}
    probe = probe_factory(reference) if probe_factory else LoopProbe(loss, reference, kink_pattern, loss_name)
    # Unless the function is known smooth or reports its own kinks, entries whose
    # sides disagree, and failing entries, are looked at again from outside.
    black_box = not smooth and probe_factory is None and kink_pattern is None
    if progress is not None:
        probe.progress = progress.advance

    rng = np.random.default_rng(settings.seed)
    pick_rng, direction_rng, taylor_rng = rng.spawn(3)
    results: list[ParameterResult] = []
    try:
        for pname, x in reference.items():
            if progress is not None:
                count = {"directional": settings.directions, "sample": min(settings.samples, x.size)}.get(
                    settings.mode, x.size)
                progress.start(pname, count * EVALUATIONS_PER_ENTRY[settings.method])
            results.append(_check_parameter(probe, pname, x, analytic[pname], settings, black_box,
                                            pick_rng, direction_rng, taylor_rng))
    finally:
        if progress is not None:
            progress.stop()
    elapsed = time.perf_counter() - start
    return Report(title, model or {}, settings, results, elapsed, probe.evaluations,
                  engine=getattr(probe, "engine_name", "loop"), name=name)


def _check_parameter(
    probe: Probe, name: str, x: Array, analytic: Array, settings: Settings, black_box: bool,
    pick_rng: np.random.Generator, direction_rng: np.random.Generator, taylor_rng: np.random.Generator,
) -> ParameterResult:
    """Numerical derivatives of one parameter (entries or directions), judged."""
    dtype = np.dtype(settings.dtype)
    dtype_eps = float(np.finfo(dtype).eps)
    a = analytic.reshape(-1)
    flat_x = x.reshape(-1)
    if settings.mode == "directional":
        V = _unit_directions(settings.directions, flat_x.size, direction_rng)
        positions = np.arange(len(V))
        step = numeric._compute_absolute_step(np.max(np.abs(flat_x), initial=0.0), settings.eps, settings.method,
                                              dtype)
        h = np.full(len(V), step[()])

        def evaluate(steps: Array, subset: Array | None) -> Evaluation:
            return probe.along(name, V if subset is None else V[subset], steps)

        a_checked = V @ a
    else:
        positions = _positions(flat_x.size, settings, pick_rng)
        h = numeric._compute_absolute_step(flat_x[positions], settings.eps, settings.method, dtype)

        def evaluate(steps: Array, subset: Array | None) -> Evaluation:
            return probe.entries(name, positions if subset is None else positions[subset], steps)

        a_checked = a[positions]
    d = numeric.numerical_derivatives(evaluate, h, settings.method)
    if black_box:
        _settle_black_box(evaluate, d, a_checked, h, flat_x, positions, settings, dtype_eps, dtype)
    err, limit = _judge(a_checked, d, settings, dtype_eps)
    taylor = _taylor(probe, name, flat_x, a, settings, taylor_rng) if settings.taylor else None
    return ParameterResult(
        name, x.shape, "directions" if settings.mode == "directional" else "entries",
        positions, a_checked, d.values, err, limit, d.kinks, d.steps, d.noise, taylor,
    )


def _settle_black_box(
    evaluate: numeric.Evaluate, d: Derivatives, analytic: Array, h: Array, flat_x: Array, positions: Array,
    settings: Settings, dtype_eps: float, dtype: np.dtype,
) -> None:
    """A user's function cannot report its kinks: look again at every entry whose sides
    disagree sharply, and at every entry that fails (``numeric.settle_hidden_kinks``)."""
    err, limit = _judge(analytic, d, settings, dtype_eps)
    idx = np.union1d(numeric.hidden_kink_suspects(d), np.flatnonzero(err > limit))
    if idx.size == 0:
        return
    start = h[idx]
    if settings.method == "complex":
        # The complex step is far too small to halve from: start at a real central step.
        values = np.full(idx.size, np.max(np.abs(flat_x))) if settings.mode == "directional" else \
            flat_x[positions[idx]]
        start = numeric._compute_absolute_step(values, numeric._eps_for_method("central"), "central", dtype)
    floor = ANALYTIC_ROUNDOFF * dtype_eps * (np.max(np.abs(d.values)) if d.values.size else 0.0)

    def passes(sub: Array, values: Array, noise: Array) -> Array:
        a = analytic[sub]
        scale = np.maximum(np.abs(a), np.abs(values))
        return np.abs(a - values) <= settings.atol + settings.rtol * scale + noise + floor

    numeric.settle_hidden_kinks(evaluate, d, idx, start, passes)


def _taylor(
    probe: Probe, name: str, flat_x: Array, a: Array, settings: Settings, rng: np.random.Generator
) -> TaylorResult:
    v = _unit_directions(1, flat_x.size, rng)[0]
    slope = float(v @ a)
    # A slope error the pass rule accepts (a float32 gradient's own rounding, say)
    # adds a first-order term to a correct gradient's remainder: remainders it
    # could explain are not used to read the order.
    scale = max(abs(slope), float(np.max(np.abs(a), initial=0.0)))
    tolerance = settings.atol + settings.rtol * abs(slope)
    tolerance += ANALYTIC_ROUNDOFF * float(np.finfo(np.dtype(settings.dtype)).eps) * scale
    h0 = 0.1 * max(1.0, float(np.max(np.abs(flat_x))))

    def along(steps: Array) -> Evaluation:
        return probe.along(name, np.broadcast_to(v, (len(steps), v.size)), steps)

    return numeric.taylor_test(along, slope, tolerance, h0)


def _validate_settings(s: Settings) -> None:
    if s.method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}; got {s.method!r}")
    if s.mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}; got {s.mode!r}")
    if s.dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}; got {s.dtype!r}")
    for field_name in ("rtol", "atol"):
        value = getattr(s, field_name)
        if not (isinstance(value, (int, float)) and value >= 0 and np.isfinite(value)):
            raise InputError(f"{field_name} must be a finite number >= 0; got {value!r}")
    if not (s.eps > 0 and np.isfinite(s.eps)):
        raise InputError(f"eps must be a positive number; got {s.eps!r}")
    if s.samples < 1:
        raise InputError(f"samples must be >= 1; got {s.samples}")
    if s.directions < 1:
        raise InputError(f"directions must be >= 1; got {s.directions}")


def assert_gradients(
    loss: Callable[[Params], float], gradients: Callable[[Params], Any], params: Mapping[str, Any], **options: Any
) -> Report:
    """``check_gradients`` for a test suite: returns the Report when every parameter
    passes, raises ``AssertionError`` whose message is the plain-text table otherwise."""
    report = check_gradients(loss, gradients, params, **options)
    if not report.passed:
        raise AssertionError("gradient check failed\n" + report.to_text())
    return report


ENGINES = ("auto", "incremental", "loop")


def check_model(
    model: Any,
    settings: Settings | None = None,
    *,
    engine: str = "auto",
    max_memory: int | None = None,
    progress: ProgressSink | None = None,
    **options: Any,
) -> Report:
    """Check a built-in model's ``gradients`` against its ``loss`` at its seeded start.

    ``engine``: ``incremental`` (the MLP's incremental engine), ``loop`` (one forward
    pass per perturbation, the reference path) or ``auto`` (incremental where the
    model has one).  ``max_memory`` bounds the engine's scratch space in bytes.
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    factory = None
    if engine in ("auto", "incremental") and isinstance(model, MLP):
        budget = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
        factory = lambda reference: IncrementalProbe(model, reference, max_memory=budget)  # noqa: E731
    elif engine == "incremental":
        raise InputError("engine incremental is only for the mlp model; use --engine loop or auto")
    spec = model.spec
    return check_gradients(
        model.loss, model.gradients, model.initial_parameters(), settings,
        kink_pattern=model.kink_pattern if model.has_kinks else None, smooth=not model.has_kinks,
        probe_factory=factory, progress=progress, title=spec.title(), model=spec.describe(), **options,
    )
