"""What every front end shares: reading inputs and the derivatives user code returns,
picking entries and random directions, opening the runner, and the API's keywords."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

from ..core.errors import BadValueError, GradcheckError, InputError, option_ref
from ..core.indexing import entry_index
from ..core.options import (
    EXECUTION_NAMES,
    EXECUTION_OPTIONS,
    SETTINGS_OPTIONS,
    Execution,
    Settings,
    execution_for_call,
)
from ..execution.evaluation import plain_numbers
from ..execution.workers import Runner, check_digest, open_runner

Array = npt.NDArray[Any]
Params = dict[str, Array]
SETTING_NAMES = frozenset(o.name for o in SETTINGS_OPTIONS)


def as_params(params: Mapping[str, Any]) -> Params:
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


def normalise_gradients(
    raw: Any,
    params: Params,
    where: str = "gradient",
    complex_ok: bool = False,
    reshaped: dict[str, tuple[int, ...]] | None = None,
) -> Params:
    """Accept a dict, or a tuple/list in parameter order; check names, shapes and values
    (complex values only where ``complex_ok``: a gradient under a complex step).  A
    gradient whose shape differs from its parameter's by axes of length 1 only
    (``keepdims``: ``(1, D)`` for ``(D,)``) is taken in the parameter's shape, and its
    own shape recorded in ``reshaped``."""
    names = list(params)
    if isinstance(raw, Mapping):
        grads = _read_mapping(raw, names, where)
    elif _bare_array(raw):  # scipy's jac= convention, most backward passes of one input
        if len(names) != 1:
            raise InputError(
                f"{where} returned one array, but there are {len(names)} parameters ({', '.join(names)}); return a "
                f"dict name -> array, or a tuple in parameter order"
            )
        grads = {names[0]: raw}
    elif isinstance(raw, (tuple, list)):
        if len(raw) == 2 and len(names) != 2 and np.ndim(raw[0]) == 0:
            raise InputError(
                f"{where} returned a number and an array, a (loss, gradient) pair; give the function with "
                f"{option_ref('value_and_grad')} to check the gradient it returns"
            )
        if len(raw) != len(names):
            raise InputError(
                f"{where} returned {len(raw)} arrays; expected {len(names)}, one per parameter ({', '.join(names)})"
                + _remembered(raw, params)
            )
        _require_order(raw, params, where)
        grads = dict(zip(names, raw, strict=True))
    else:
        raise InputError(
            f"{where} must return a dict name -> array, a tuple in parameter order, or (with one parameter) an "
            f"array; got {type(raw).__name__}"
        )
    out: Params = {}
    for n in names:
        try:
            g = np.asarray(plain_numbers(grads[n], where, f"for {n}"))
        except GradcheckError:
            raise
        except Exception:
            raise InputError(f"{where}: {n} is not an array") from None
        if g.dtype.kind not in ("fiuc" if complex_ok else "fiu"):
            raise InputError(f"{where}: {n} has dtype {g.dtype}; expected a real floating-point array")
        if g.shape != params[n].shape and _singleton_axes_only(g.shape, params[n].shape):
            if reshaped is not None:
                reshaped[n] = g.shape
            g = g.reshape(params[n].shape)
        if g.shape != params[n].shape:
            stacked = g.ndim == params[n].ndim >= 1 and g.shape[1:] == params[n].shape[1:]
            rows = g.shape[0] // max(1, params[n].shape[0]) if stacked else 0
            hint = (
                f"; {rows} times its rows: it may hold every forward call a layer object remembered (clear its "
                f"cache before the backward)"
                if stacked and rows > 1 and g.shape[0] % params[n].shape[0] == 0
                else ""
            )
            raise InputError(
                f"{where}: {n} has shape {shape_text(g.shape)}, expected {shape_text(params[n].shape)} "
                f"(the shape of {n}){hint}"
            )
        bad = ~np.isfinite(g)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{where}: {n} is {g.reshape(-1)[first]} at {entry_index(g.shape, first)}; gradients must be finite"
            )
        out[n] = g
    return out


def _singleton_axes_only(shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """The shapes differ only by axes of length 1 (``(1, 4)`` and ``(4,)``)."""
    return tuple(d for d in shape if d != 1) == tuple(d for d in expected if d != 1)


def _remembered(raw: Sequence[Any], params: Params) -> str:
    """A list of gradients all shaped like the one input: one per forward call a layer
    object kept (numpy-ml's layers append every input to ``self.X``)."""
    if not isinstance(raw, list) or len(params) != 1 or len(raw) < 2:
        return ""
    (shape,) = [p.shape for p in params.values()]
    if all(getattr(g, "shape", None) == shape for g in raw):
        return (
            f"; a list of {len(raw)} gradients of the input's shape: one per forward call a layer object remembered "
            f"(clear its cache before the backward, or return the last)"
        )
    return ""


def _require_order(raw: Sequence[Any], params: Params, where: str) -> None:
    """A tuple whose arrays fit the parameters only in another order: say which order."""
    names = list(params)
    shapes = [getattr(g, "shape", None) for g in raw]
    if all(s == params[n].shape for s, n in zip(shapes, names, strict=True)) or len(names) > 6:
        return
    for order in itertools.permutations(names):
        if all(s == params[n].shape for s, n in zip(shapes, order, strict=True)):
            raise InputError(
                f"{where} returned a tuple whose arrays fit the parameters in the order ({', '.join(order)}), not "
                f"({', '.join(names)}); return them in parameter order, or a dict name -> array"
            )


def value_part(out: Any, where: str) -> Any:
    """The loss of a ``(loss, gradient)`` pair."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise BadValueError(
            f"{where} returned {_what(out)}; with {option_ref('value_and_grad')} it returns (loss, gradient)"
        )
    return out[0]


def gradient_part(out: Any, where: str) -> Any:
    """The gradient of a ``(loss, gradient)`` pair."""
    value_part(out, where)
    return out[1]


def _what(out: Any) -> str:
    return f"a tuple of {len(out)}" if isinstance(out, tuple) else f"a {type(out).__name__}"


class ByName:
    """A user function called as ``gradcheck func`` calls it: the parameters as keyword
    arguments by name, and the fixed inputs its signature takes (it pickles when the
    function does: a module-level one)."""

    def __init__(self, function: Callable[..., Any], fixed: Mapping[str, Any]) -> None:
        # The fixed inputs it takes, read from its signature once, not per evaluation.
        self.function, self.fixed = function, accepted(function, fixed)

    def __call__(self, *args: Any) -> Any:
        *leading, params = args  # a tangent or a vector first (JVP(t, **inputs), HVP(v, **params))
        return self.function(*leading, **params, **self.fixed)


class LayerBackward:
    """A backward called as ``gradcheck func`` calls it: ``BACKWARD(dout, cache)``, or
    ``BACKWARD(dout, **inputs)`` (the inputs it takes by name) when the forward returns
    no cache; a tuple of douts for a layer of several outputs."""

    def __init__(self, backward: Callable[..., Any], fixed: Mapping[str, Any]) -> None:
        self.backward, self.fixed = backward, dict(fixed)

    def __call__(self, dout: Any, cache: Any, params: Params) -> Any:
        douts = dout if isinstance(dout, tuple) else (dout,)  # one per output: LSTM's (dnext_h, dnext_c)
        fixed = accepted(self.backward, self.fixed)
        if cache is not None:
            return self.backward(*douts, cache, **fixed)
        # The inputs it takes by name: none for a layer object that keeps its own
        # (numpy-ml's Dense.backward(dLdy) after forward(X) stored X on self).
        return self.backward(*douts, **accepted(self.backward, params), **fixed)


def by_name(function: Callable[..., Any], names: Sequence[str], fixed: Mapping[str, Any]) -> Callable[..., Any]:
    """``function`` called the command line's way when its signature names every
    parameter (``rosen(x)`` for ``{"x": x0}``), else as given: ``f(params)``, a dict
    (a function that takes one argument named like the one parameter is called by
    name).  Fixed inputs (``data``, ``const``) need the first kind."""
    if _names_every(function, names):
        return ByName(function, fixed)
    if fixed:
        raise InputError(
            f"data and const are passed by name, but {getattr(function, '__name__', 'the function')} does not take "
            f"the parameters ({', '.join(names)}) by name; take them as keyword arguments, or drop data and const",
            option="data",
        )
    return function


def called_by_name(
    functions: Mapping[str, Callable[..., Any] | None],
    inputs: Mapping[str, Any],
    data: Mapping[str, Any] | None = None,
    const: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A check's user functions, each called the command line's way where its own
    signature names every input (``by_name``); ``backward`` follows its forward."""
    names, fixed = list(as_params(inputs)), {**(data or {}), **(const or {})}
    out: dict[str, Any] = {}
    for role, function in functions.items():
        if function is None or role == "backward":
            out[role] = function
        else:
            out[role] = by_name(function, names, fixed)
    backward = functions.get("backward")
    if backward is not None and isinstance(out.get("forward"), ByName):
        out["backward"] = LayerBackward(backward, fixed)
    return out


def _names_every(function: Callable[..., Any], names: Sequence[str]) -> bool:
    """The user's function takes every parameter by name (this package's own callables
    always take the dict)."""
    own = getattr(function, "__module__", None) or type(function).__module__
    if own.split(".", 1)[0] == __name__.split(".", 1)[0]:
        return False
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return bool(names) and all(
        n in parameters
        and parameters[n].kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)
        for n in names
    )


def accepted(function: Callable[..., Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``fixed`` that ``function`` takes by name (all, if it takes
    ``**kwargs``): a layer's ``backward(dout, cache)`` need not take the labels its
    forward takes."""
    if not fixed:
        return {}
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return dict(fixed)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(fixed)
    return {k: v for k, v in fixed.items() if k in parameters}


def as_called(
    loss: Callable[..., Any],
    gradients: Callable[..., Any] | None,
    names: Sequence[str],
    value_and_grad: bool,
    data: Mapping[str, Any] | None,
    const: Mapping[str, Any] | None,
    where: str,
) -> tuple[Callable[[Params], Any], Callable[[Params], Any]]:
    """A gradient check's two functions as the pipeline calls them, ``f(params)``:
    called by name where their signatures allow (``by_name``), the gradient taken from
    the loss's ``(loss, gradient)`` pair under ``value_and_grad``."""
    if value_and_grad != (gradients is None):
        raise InputError(
            "give gradients, or value_and_grad=True for a loss that returns (loss, gradient), not both"
            if value_and_grad
            else "no gradients given; give the gradient function, or value_and_grad=True when the loss returns "
            "(loss, gradient)",
            option="value_and_grad",
        )
    fixed = {**(data or {}), **(const or {})}
    loss = by_name(loss, names, fixed)
    if gradients is None:
        return PairPart(loss, False, where), PairPart(loss, True, where)
    return loss, by_name(gradients, names, fixed)


class PairPart:
    """One part of a function that returns ``(loss, gradient)``, called as a loss or a
    gradient (it pickles when the function does: a module-level one)."""

    def __init__(self, function: Callable[[Params], Any], gradient: bool, where: str) -> None:
        self.function, self.gradient, self.where = function, gradient, where

    def __call__(self, params: Params) -> Any:
        out = self.function(params)
        return gradient_part(out, self.where) if self.gradient else value_part(out, self.where)


def _bare_array(raw: Any) -> bool:
    """An array (numpy's, or a framework's tensor), not a container of arrays."""
    return isinstance(raw, np.ndarray) or (
        not isinstance(raw, (tuple, list, Mapping)) and (hasattr(raw, "__array__") or hasattr(raw, "detach"))
    )


def _read_mapping(raw: Mapping[Any, Any], names: list[str], where: str) -> dict[str, Any]:
    """The entries of a returned mapping, one per name; a mapping whose lookups raise is
    the user's object misbehaving: one line naming the function, not our traceback."""
    try:
        missing = [n for n in names if n not in raw]
        extra = [str(n) for n in raw if n not in names]
        if missing:
            raise InputError(f"{where} returned no entry for {', '.join(missing)}; expected keys {', '.join(names)}")
        if extra:
            raise InputError(f"{where} returned unknown keys {', '.join(extra)}; expected keys {', '.join(names)}")
        return {n: raw[n] for n in names}
    except InputError:
        raise
    except Exception as exc:
        raise BadValueError(
            f"{where} returned a {type(raw).__name__} whose lookup raised {type(exc).__name__}: {exc}; "
            f"return a plain dict name -> array"
        ) from None


def shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


def entry_positions(size: int, settings: Settings, rng: np.random.Generator) -> Array:
    if settings.mode == "sample" and settings.samples < size:
        return np.sort(rng.choice(size, size=settings.samples, replace=False))
    return np.arange(size)


def unit_directions(k: int, size: int, rng: np.random.Generator) -> Array:
    v = rng.standard_normal((k, size))
    unit: Array = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


P = ParamSpec("P")
R = TypeVar("R")


def api(function: Callable[P, R]) -> Callable[P, R]:
    """A public entry point: a misspelled keyword is an ``InputError`` listing the valid
    ones (the settings, where it runs, and the function's own), not a bare ``TypeError``.

    Every check takes its settings and execution options as keywords through
    ``**options`` (``split_options`` reads them); private keywords (``_runner``) are
    the package's own and are never listed."""
    signature = inspect.signature(function)
    own = [n for n, p in signature.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    shared = [o.name for o in SETTINGS_OPTIONS + EXECUTION_OPTIONS] + ["execution"]
    takes_options = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    valid = [*(shared if takes_options else []), *(n for n in own if not n.startswith("_"))]

    @functools.wraps(function)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        __tracebackhide__ = True  # a failed assert_* shows the user's line, not this wrapper or its arguments
        unknown = [k for k in kwargs if k not in valid and k not in signature.parameters and not k.startswith("_")]
        if unknown:
            raise InputError(f"unknown option {unknown[0]!r}; valid: {', '.join(dict.fromkeys(valid))}")
        return function(*args, **kwargs)

    return checked


def split_options(
    settings: Settings | None, execution: Execution | None, options: dict[str, Any]
) -> tuple[Settings, Execution]:
    """The settings and the execution options of a call's ``options`` (taken out of it),
    over ``settings`` and ``execution`` when given."""
    given = {k: options.pop(k) for k in [k for k in options if k in EXECUTION_NAMES]}
    chosen = (settings or Settings()).updated(**{k: options.pop(k) for k in [k for k in options if k in SETTING_NAMES]})
    return chosen, execution_for_call(execution, given)


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
    runner_for = open_runner(run.workers, run.dask, run.checkpoint_file, run.timeout, digest, uploads, run.checkpoint)
    with runner_for as opened:
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
