"""Orchestration: check a gradient against finite differences and build the Report.

``check_gradients`` takes any loss and gradient; ``check_model`` a built-in model
(``models.Model``), whose fast evaluator, if it offers one, is chosen here once.
The numerics live in ``numeric`` (and the engines), the pass rule in ``rule``, the
result data in ``result``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from ..core.errors import BadValueError, CheckInterrupted, InputError
from ..core.estimates import (
    EPS64,
    FLAG_COMPLEX_INVALID,
    FLAG_KINKS,
    FLAG_NONE,
    Derivatives,
    Evaluate,
    Evaluation,
    TaylorResult,
)
from ..core.indexing import entry_index
from ..core.limits import require_bytes
from ..core.methods import CENTRAL
from ..core.options import Execution, Settings, execution_for_call, settings_for_call
from ..core.result import ParameterResult, Report
from ..core.rule import PassRule
from ..execution.evaluation import dropped_imaginary
from ..execution.usercode import call_user
from ..execution.workers import Runner, check_digest, guard, open_runner
from ..insight.diagnosis import diagnose, match_zoo
from ..models.base import Model
from ..numerics import numeric
from ..probes.engine import EVALUATORS
from ..probes.loop import LoopProbe, Planned, Probe
from .option_sets import ENGINE_OPTIONS

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


def normalise_gradients(raw: Any, params: Params, where: str = "gradient", complex_ok: bool = False) -> Params:
    """Accept a dict, or a tuple/list in parameter order; check names, shapes and values
    (complex values only where ``complex_ok``: a gradient under a complex step)."""
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
        if g.dtype.kind not in ("fiuc" if complex_ok else "fiu"):
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


class ProgressSink(Protocol):
    """Receives progress: one ``start`` per parameter (its name, its evaluations, and
    which of how many parameters it is), ``advance`` per batch of evaluations, and
    ``plan``, the check's estimated time and where it runs."""

    def start(self, name: str, total: int, position: tuple[int, int]) -> None: ...

    def advance(self, count: int) -> None: ...

    def plan(self, text: str) -> None: ...

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
    allow_unresolved: bool | None = None,
    kink_pattern: Callable[[Params], Array | None] | None = None,
    _probe_factory: ProbeFactory | None = None,
    progress: ProgressSink | None = None,
    smooth: bool = False,
    loss_name: str = "loss",
    grad_name: str = "gradient",
    title: str = "gradient check",
    model: dict[str, Any] | None = None,
    name: str = "",
    workers: int | str | None = None,
    dask: Any = None,
    checkpoint: str | None = None,
    timeout: float | None = None,
    max_seconds: float | None = None,
    force: bool | None = None,
    execution: Execution | None = None,
    _runner: Runner | None = None,
    _sources: tuple[str, ...] = (),
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
    noise and the adaptive step ladder (``numeric.ladder_derivatives``).
    Where the loss is evaluated is an ``Execution`` or its fields as keywords:
    ``workers`` (processes, or ``"auto"``), ``dask`` (an address, ``"local:N"`` or a
    ``distributed.Client``), ``checkpoint`` (a file to resume from), ``timeout``
    (seconds per evaluation), ``max_seconds`` and ``force`` (the time guard);
    ``loss`` must then pickle (a module-level function).
    Returns the ``Report``; raises ``InputError`` for options or values that
    cannot be checked, ``UserCodeError`` when ``loss`` or ``gradients`` raise.
    """
    chosen = settings_for_call(settings, locals())
    run = execution_for_call(execution, locals())
    user_step = chosen.eps is not None
    settings = chosen.resolved()
    start = time.perf_counter()
    base_params = _as_params(params)
    dtype_ = np.dtype(settings.dtype)
    # The analytic side runs in the chosen dtype; the reference uses the very same
    # values, held in float64.
    typed = {k: v.astype(dtype_) for k, v in base_params.items()}
    reference = {k: v.astype(np.float64) for k, v in typed.items()}
    raw = call_user(grad_name, gradients, {k: v.copy() for k, v in typed.items()})
    analytic = {k: v.astype(np.float64) for k, v in normalise_gradients(raw, typed, grad_name).items()}
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
        how = _How(settings, PassRule(*settings.tolerances, settings.dtype), black_box, user_step)
        return _check_with(probe, how, reference, analytic, rounding, progress, title, model, name, loss_name, start)


def _check_with(
    probe: Probe,
    how: _How,
    reference: Params,
    analytic: Params,
    rounding: dict[str, Array],
    progress: ProgressSink | None,
    title: str,
    model: dict[str, Any] | None,
    name: str,
    loss_name: str,
    start: float,
) -> Report:
    """The check itself, once the evaluator is ready: every parameter measured, then judged."""
    settings, rule = how.settings, how.rule
    if progress is not None:
        probe.progress = progress.advance
    rng = np.random.default_rng(settings.seed)
    pick_rng, direction_rng, taylor_rng, noise_rng = rng.spawn(4)
    measured: list[_Measured] = []
    names = list(reference)

    def finish(unchecked: list[str]) -> Report:
        results = _judge_all(measured, rule, rounding, how, loss_name)
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
        )

    try:
        for position, (pname, x) in enumerate(reference.items(), start=1):
            if progress is not None:
                count = {"directional": settings.directions, "sample": min(settings.samples, x.size)}.get(
                    settings.mode, x.size
                )
                progress.start(pname, count * settings.difference.evaluations, (position, len(names)))
            measured.append(
                _measure_parameter(
                    probe, pname, x, analytic[pname], how, pick_rng, direction_rng, taylor_rng, noise_rng
                )
            )
    except KeyboardInterrupt:
        # Keep what finished: the caller shows it, marked incomplete, and exits 130.
        raise CheckInterrupted(finish(names[len(measured) :])) from None
    finally:
        if progress is not None:
            progress.stop()
    return finish([])


@contextlib.contextmanager
def opened_runner(
    run: Execution, runner: Runner | None, sources: tuple[str, ...], identity: Any, reference: Params
) -> Iterator[Runner]:
    """``runner`` when the caller has one (a check inside a check), else the one
    ``run`` asks for, closed afterwards.  ``sources``: the files that define the
    check (their contents are part of a checkpoint's digest; Python files are
    shipped to Dask workers)."""
    if runner is not None:
        yield runner
        return
    digest = check_digest((identity, _source_digests(sources)), reference)
    uploads = tuple(f for f in sources if f.endswith(".py"))
    with open_runner(run.workers, run.dask, run.checkpoint, run.timeout, digest, uploads) as opened:
        yield opened


def _source_digests(paths: tuple[str, ...]) -> list[str]:
    """The contents of the files that define a check, as digests: an edited file makes
    another check (a checkpoint of the old one does not apply)."""
    out = []
    for path in paths:
        try:
            out.append(hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest())
        except OSError:
            out.append(f"unreadable {path}")
    return out


# Evaluations per entry beyond the difference itself: a black box's screen looks
# again at up to SCREEN_SAMPLE entries per parameter (four evaluations each), and
# measures the loss's noise (NOISE_EVALUATIONS per parameter).
SCREEN_SAMPLE = 64
NOISE_EVALUATIONS = 30


def planned_moves(reference: Params, settings: Settings, black_box: bool, user_step: bool) -> list[Planned]:
    """The evaluations a check of ``reference`` should take when nothing needs a closer
    look, parameter by parameter: what the time guard costs."""
    per_entry = settings.difference.evaluations
    plan = []
    for name, x in reference.items():
        entries = {"directional": settings.directions, "sample": min(settings.samples, x.size)}.get(
            settings.mode, x.size
        )
        if black_box:  # the second look and the noise
            extra = 4 * min(SCREEN_SAMPLE, entries) + NOISE_EVALUATIONS
        elif settings.method in ("complex", "forward") or user_step:  # the truncation, of every entry
            extra = 0 if settings.method == "complex" else entries * per_entry
        else:  # the truncation, of a sample
            extra = min(TRUNCATION_SAMPLE, entries) * per_entry
        step = settings.step * max(1.0, float(np.max(np.abs(x), initial=0.0)))
        plan.append(Planned(name, entries, entries * per_entry, step, settings.mode == "directional", extra))
    return plan


@dataclass(frozen=True)
class _How:
    """What one check does, decided once for all its parameters."""

    settings: Settings
    rule: PassRule
    black_box: bool
    user_step: bool


@dataclass
class _Measured:
    """One parameter's numerical side, before it is judged."""

    name: str
    shape: tuple[int, ...]
    coverage: str
    positions: Array
    analytic: Array  # the analytic values compared (entries, or directional derivatives)
    derivatives: Derivatives
    evaluate: Evaluate
    x: Array  # the parameter's values (flat), for steps
    directions: Array | None
    taylor: TaylorResult | None
    real_output: bool  # complex step: every evaluation returned a real value
    evaluations: int
    sigma: float = 0.0  # the loss's measured noise (black box)


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


def _measure_parameter(
    probe: Probe,
    name: str,
    x: Array,
    analytic: Array,
    how: _How,
    pick_rng: np.random.Generator,
    direction_rng: np.random.Generator,
    taylor_rng: np.random.Generator,
    noise_rng: np.random.Generator,
) -> _Measured:
    """Numerical derivatives of one parameter (entries or directions), not yet judged."""
    settings = how.settings
    dtype = np.dtype(settings.dtype)
    a = analytic.reshape(-1)
    flat_x = x.reshape(-1)
    before = probe.evaluations
    V: Array | None = None
    if settings.mode == "directional":
        V = _unit_directions(settings.directions, flat_x.size, direction_rng)
        directions = V
        positions = np.arange(len(V))
        magnitudes = np.full(len(V), np.max(np.abs(flat_x), initial=0.0))

        def evaluate(steps: Array, subset: Array | None) -> Evaluation:
            return probe.along(name, directions if subset is None else directions[subset], steps)

        a_checked = V @ a
    else:
        positions = _positions(flat_x.size, settings, pick_rng)
        magnitudes = flat_x[positions]

        def evaluate(steps: Array, subset: Array | None) -> Evaluation:
            return probe.entries(name, positions if subset is None else positions[subset], steps)

        a_checked = a[positions]
    real_output = False
    sigma = 0.0
    if how.black_box and settings.method != "complex":
        d, sigma = _black_box_derivatives(probe, name, flat_x, magnitudes, evaluate, a_checked, how, noise_rng)
        if V is not None:
            # A direction moves every entry at once: it may cross many kinks, each free to
            # take any value of its own subgradient interval, a set the one-sided slopes
            # can understate.  Outside them the check cannot tell (UNRESOLVED, not FAIL).
            assert d.flags is not None
            d.flags[d.kinks & (d.flags == FLAG_NONE)] = FLAG_KINKS
    else:
        h = numeric._compute_absolute_step(magnitudes, settings.step, settings.method, dtype)
        if how.black_box:  # complex step on a black box: a real output is a zero derivative
            ev = evaluate(1j * h, None)
            values = np.imag(ev.change) / h
            nan = np.full(len(h), np.nan)
            d = Derivatives(values, h, numeric.complex_step_noise(values), np.zeros(len(h), bool), nan, nan.copy())
            real_output = bool(ev.real_output is not None and ev.real_output.all())
        else:
            d = numeric.numerical_derivatives(evaluate, h, settings.method)
            if settings.method != "complex":
                _measure_truncation(evaluate, d, h, how, a_checked, pick_rng)
    taylor = _taylor(probe, name, flat_x, a, how.rule, taylor_rng) if settings.taylor else None
    coverage = "directions" if settings.mode == "directional" else "entries"
    return _Measured(
        name,
        x.shape,
        coverage,
        positions,
        a_checked,
        d,
        evaluate,
        flat_x,
        V,
        taylor,
        real_output,
        probe.evaluations - before,
        sigma,
    )


def _black_box_derivatives(
    probe: Probe,
    name: str,
    flat_x: Array,
    magnitudes: Array,
    evaluate: Evaluate,
    analytic: Array,
    how: _How,
    rng: np.random.Generator,
) -> tuple[Derivatives, float]:
    """A black box's derivatives: one step first (``numeric.screen_derivatives``);
    the entries it does not settle, or all when the function is not seen on its own
    scale at that step, go down the adaptive ladder with the loss's measured noise.
    Returns the derivatives and that noise (0 when it was not needed)."""
    settings = how.settings
    dtype = np.dtype(settings.dtype)
    rtol, atol = settings.tolerances
    output_eps = getattr(probe, "output_eps", EPS64)
    rel = settings.step if how.user_step else numeric._relative_precision_step(settings.method, output_eps)
    h = numeric._compute_absolute_step(magnitudes, rel, settings.method, dtype)
    # Forward differences never look left: a jump there passes one step unseen, so
    # they always take the ladder (which probes the left side).
    if settings.method == "forward":
        d = Derivatives(np.zeros(len(h)), h, np.zeros(len(h)), *_no_kinks(len(h)))
        pending = np.arange(len(h))
    else:
        screen = numeric.Screen(evaluate, h, settings.method, rtol, atol, rng)
        d = screen.derivatives
        pending = np.arange(len(h))
        if screen.trusted:
            j = how.rule.judge(analytic, d, float(np.max(np.abs(analytic), initial=0.0)))
            unsure = np.flatnonzero(j.failed | j.unresolved | ~np.isfinite(d.values))
            # Entries the one step does not pass: a second look settles most of them
            # (a wrong value on a smooth function); the rest take the ladder.
            pending = unsure[~screen.look_again(unsure)] if unsure.size else unsure
    if pending.size == 0:
        return d, 0.0
    sigma, variation = _noise(probe, name, flat_x, rng)
    # The step balances truncation against the loss's real precision: its output
    # type's, or its measured noise where that is larger.
    precision = max(output_eps, min(1e-2, sigma / max(variation, 1e-300)))
    rel = settings.step if how.user_step else precision ** (0.5 if settings.method == "forward" else 1 / 3)
    h = numeric._compute_absolute_step(magnitudes[pending], rel, settings.method, dtype)

    def sub(steps: Array, subset: Array | None) -> Evaluation:
        return evaluate(steps, pending if subset is None else pending[subset])

    ladder = numeric.ladder_derivatives(sub, h, settings.method, sigma, how.user_step, rtol, atol)
    numeric.merge_derivatives(d, pending, ladder)
    return d, sigma


def _no_kinks(n: int) -> tuple[Array, Array, Array]:
    nan = np.full(n, np.nan)
    return np.zeros(n, dtype=bool), nan, nan.copy()


def _noise(probe: Probe, name: str, flat_x: Array, rng: np.random.Generator) -> tuple[float, float]:
    """The loss's measured noise along one random direction of this parameter."""
    v = _unit_directions(1, flat_x.size, rng)[0]

    def along(steps: Array) -> Evaluation:
        return probe.along(name, np.broadcast_to(v, (len(steps), v.size)), steps)

    return numeric.measure_noise(along, probe.base, float(np.max(np.abs(flat_x), initial=0.0)))


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


TRUNCATION_SAMPLE = 64  # entries whose truncation is measured when the auto step is used


def _measure_truncation(
    evaluate: Evaluate, d: Derivatives, h: Array, how: _How, analytic: Array, rng: np.random.Generator
) -> None:
    """The truncation error of a built-in model's estimates, measured at a step four
    times smaller: ``D(h) - D(h/4) = (1 - 4^-p) c h^p`` for a method of order ``p``.

    A user's step, or forward differences, are measured on every entry.  With the
    auto step a sample of entries is measured first; only when truncation there
    reaches a hundredth of what the tolerances allow are all entries measured
    (on the sample's evidence the rest is negligible, and the fast path stays fast).
    """
    assert d.truncation is not None
    settings = how.settings
    rtol, atol = settings.tolerances
    order = {"forward": 1, "central": 2, "richardson": 4}[settings.method]
    gain = 4.0**order
    clean = np.flatnonzero(~d.kinks & (d.steps == h))
    if clean.size == 0:
        return

    def measure(where: Array) -> Array:
        def sub(steps: Array, subset: Array | None) -> Evaluation:
            return evaluate(steps, where if subset is None else where[subset])

        finer = numeric.numerical_derivatives(sub, h[where] / 4, settings.method)
        usable = ~finer.kinks & (finer.steps == h[where] / 4)
        # The measurement is of the leading term; higher terms and its own noise get
        # a factor of two.
        t = np.where(usable, 2 * np.abs(d.values[where] - finer.values) * gain / (gain - 1), 0.0)
        assert d.truncation is not None
        d.truncation[where] = t
        return t

    if how.user_step or settings.method == "forward" or clean.size <= TRUNCATION_SAMPLE:
        measure(clean)
        return
    sample = np.sort(rng.choice(clean, size=TRUNCATION_SAMPLE, replace=False))
    t = measure(sample)
    allowance = atol + rtol * np.maximum(np.abs(analytic[sample]), np.abs(d.values[sample]))
    if np.any(t > 0.01 * allowance):
        measure(np.setdiff1d(clean, sample))


def _judge_all(
    measured: list[_Measured], rule: PassRule, rounding: dict[str, Array], how: _How, loss_name: str
) -> list[ParameterResult]:
    """Judge every measured parameter against the check's largest derivative."""
    if how.black_box and how.settings.method == "complex" and measured and all(m.real_output for m in measured):
        raise dropped_imaginary(loss_name)
    reference = max(
        (float(np.max(np.abs(np.concatenate([m.derivatives.values, m.analytic])), initial=0.0)) for m in measured),
        default=0.0,
    )
    return [_judge(m, rule, rounding.get(m.name), how, reference) for m in measured]


def _judge(m: _Measured, rule: PassRule, rounding: Array | None, how: _How, reference: float) -> ParameterResult:
    d = m.derivatives
    if rounding is not None:
        flat = rounding.reshape(-1)
        rounding = np.abs(m.directions) @ flat if m.directions is not None else flat[m.positions]
    j = rule.judge(m.analytic, d, reference, rounding)
    evaluations = m.evaluations
    if how.black_box and (how.settings.method == "complex" or (how.settings.method == "forward" and j.failed.any())):
        evaluations += _recheck(m, how, np.flatnonzero(j.failed), np.random.default_rng(how.settings.seed))
        j = rule.judge(m.analytic, d, reference, rounding)
    return ParameterResult.judged(m.name, m.shape, m.coverage, m.positions, m.analytic, d, j, m.taylor, evaluations)


COMPLEX_SAMPLE = 8  # entries per parameter whose complex step is held against real differences


def _recheck(m: _Measured, how: _How, idx: Array, rng: np.random.Generator) -> int:
    """Failing forward-difference or complex-step entries of a black box, looked at
    again with two-sided real differences (the adaptive ladder, both sides).

    A kink found there (one-sided slopes that disagree and stay put) puts the entry
    under the subgradient rule: one-sided methods cannot see a kink themselves.

    The complex step stays the reference wherever it is valid; nothing overrules
    it.  It is not valid where the loss is not complex-safe (``abs`` inside, say):
    there it disagrees with the real derivative by more than both their errors.
    A few sampled entries are always held against real differences, since a
    gradient that matches a broken complex step would otherwise pass unseen; if
    any disagree, every entry is.  Where the complex step is not valid the entry is
    judged against the real derivative: FAIL if the analytic value is off, else
    UNRESOLVED (the method asked for cannot vouch for it).  Returns the evaluations.
    """
    d = m.derivatives
    assert d.flags is not None and d.truncation is not None
    complex_step = how.settings.method == "complex"
    if complex_step:
        size = min(COMPLEX_SAMPLE, len(d.values))
        idx = np.union1d(idx, rng.choice(len(d.values), size=size, replace=False))
    real, spent = _real_ladder(m, how, idx)
    kinked = real.kinks
    assert real.truncation is not None
    if complex_step:
        real_error = real.noise + real.truncation
        broken = (
            ~kinked
            & (real.flags == FLAG_NONE)
            & (np.abs(d.values[idx] - real.values) > 2 * (real_error + d.noise[idx]) + 1e-3 * np.abs(real.values))
        )
        if broken.any() and idx.size < len(d.values):
            return spent + _recheck(m, how, np.arange(len(d.values)), rng)
        where = idx[broken]
        d.values[where], d.noise[where], d.truncation[where] = (
            real.values[broken],
            real.noise[broken],
            real.truncation[broken],
        )
        d.steps[where], d.flags[where] = real.steps[broken], FLAG_COMPLEX_INVALID
    where = idx[kinked]
    d.kinks[where], d.lower[where], d.upper[where] = True, real.lower[kinked], real.upper[kinked]
    d.values[where], d.noise[where], d.steps[where] = real.values[kinked], real.noise[kinked], real.steps[kinked]
    d.truncation[where] = 0.0
    return spent


def _real_ladder(m: _Measured, how: _How, idx: Array) -> tuple[Derivatives, int]:
    """Central differences by the adaptive ladder for the entries ``idx`` of ``m``."""
    magnitudes = (
        np.full(idx.size, np.max(np.abs(m.x), initial=0.0)) if m.directions is not None else m.x[m.positions[idx]]
    )
    h = numeric._compute_absolute_step(magnitudes, CENTRAL.auto_step, "central")

    def sub(steps: Array, subset: Array | None) -> Evaluation:
        return m.evaluate(steps, idx if subset is None else idx[subset])

    rtol, atol = how.settings.tolerances
    real = numeric.ladder_derivatives(sub, h, "central", m.sigma, False, rtol, atol)
    return real, real.evaluations


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
    allow_unresolved: bool | None = None,
    engine: str = "auto",
    max_memory: float | None = None,
    progress: ProgressSink | None = None,
    workers: int | str | None = None,
    dask: Any = None,
    checkpoint: str | None = None,
    timeout: float | None = None,
    max_seconds: float | None = None,
    force: bool | None = None,
    execution: Execution | None = None,
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
        settings_for_call(settings, locals()),
        kink_pattern=model.kink_pattern if model.has_kinks else None,
        smooth=not model.has_kinks,
        _probe_factory=factory,
        progress=progress,
        title=spec.title(),
        model=spec.describe(),
        execution=execution_for_call(execution, locals()),
    )
    match_zoo(report.parameters, model)
    return report
