"""Every option, defined once: name, parser (type and range), default and help.

The command line (``cli.py``) builds its click options from these tables, config
suites (``config.py``) take the same names as TOML keys and validate them with
the same parsers, and ``Settings`` validates its fields with them too, so a value
the command line refuses is refused everywhere, with the same words.

A parser takes a value as a user may give it (a string from the command line, a
TOML value, a Python object from the API) and returns it in canonical form, or
raises ``ValueError`` with the text of the complaint: ``'-1' is not a finite
number >= 0``.  The front ends prefix it with the option's own spelling.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from .errors import InputError
from .methods import METHOD, METHODS, Method

MODES = ("full", "sample", "directional")
DTYPES = ("float64", "float32")

Parser = Callable[[Any], Any]


# ---- parsers ------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def choice(values: Sequence[str]) -> Parser:
    """One of ``values``, given as a string."""

    def parse(value: Any) -> str:
        if isinstance(value, str) and value in values:
            return value
        raise ValueError(f"{_shown(value)} is not one of {', '.join(values)}")

    return parse


def _dtype(value: Any) -> str:
    """``float64`` or ``float32``, as a name or anything ``numpy.dtype`` reads."""
    if isinstance(value, str) and value in DTYPES:
        return value
    try:
        name = np.dtype(value).name
    except TypeError:
        name = ""
    if name in DTYPES and not isinstance(value, (bool, int, float)):
        return str(name)
    raise ValueError(f"{_shown(value)} is not one of {', '.join(DTYPES)}")


def _real(value: Any) -> float:
    """A number from a string or a real number; bools are not numbers."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, numbers.Real)):
        raise TypeError
    return float(value)


def number(minimum: float = -math.inf, *, above: bool = False, example: str = "1e-6") -> Parser:
    """A finite real number ``>= minimum`` (``> minimum`` with ``above``)."""
    what = f"a finite number {'>' if above else '>='} {minimum:g}"

    def parse(value: Any) -> float:
        try:
            x = _real(value)
        except (TypeError, ValueError):
            raise ValueError(f"{_shown(value)} is not a number; give {what}, e.g. {example}") from None
        if not math.isfinite(x) or x < minimum or (above and x == minimum):
            raise ValueError(f"{_shown(value)} is not {what}; e.g. {example}")
        return x

    return parse


def optional(parse: Parser) -> Parser:
    """``parse``, or None (the default decides)."""

    def parse_optional(value: Any) -> Any:
        return None if value is None else parse(value)

    return parse_optional


def integer(minimum: int | None = None) -> Parser:
    """A whole number (``>= minimum``), from a string or an integer."""
    what = "a whole number" + ("" if minimum is None else f" >= {minimum}")

    def parse(value: Any) -> int:
        refusal = ValueError(f"{_shown(value)} is not {what}")
        if isinstance(value, (bool, np.bool_)):
            raise refusal
        if isinstance(value, str):
            try:
                n = int(value.strip())
            except ValueError:
                raise refusal from None
        elif isinstance(value, numbers.Integral):
            n = int(value)
        else:
            raise refusal
        if minimum is not None and n < minimum:
            raise refusal
        return n

    return parse


def _step(value: Any) -> float | None:
    """``auto`` (None) or a relative step in (0, 1]: a step larger than the value it
    moves measures nothing about the derivative there."""
    if value is None or value == "auto":
        return None
    try:
        x = _real(value)
    except (TypeError, ValueError):
        raise ValueError(f"{_shown(value)} is neither 'auto' nor a number; e.g. auto or 1e-6") from None
    if not (0 < x <= 1):
        raise ValueError(f"{_shown(value)} is not a relative step in (0, 1]; e.g. auto or 1e-6")
    return x


def _boolean(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{_shown(value)} is not true or false")


def _sizes(value: Any) -> tuple[int, ...]:
    """Layer sizes: ``"4,8,3"`` or a sequence of whole numbers, at least two, each >= 1."""
    if isinstance(value, str):
        parts: list[Any] = []
        for position, part in enumerate(value.split(","), start=1):
            text = part.strip()
            if not text:
                raise ValueError(
                    f"size {position} of {value!r} is empty; give comma-separated whole numbers, e.g. 4,8,3"
                )
            try:
                parts.append(int(text))
            except ValueError:
                raise ValueError(
                    f"{text!r} is not a whole number; give comma-separated layer sizes, e.g. 4,8,3"
                ) from None
    elif isinstance(value, Sequence) and all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in value
    ):
        parts = list(value)
    else:
        raise ValueError(f"{_shown(value)} is not a list of layer sizes; e.g. 4,8,3")
    for position, size in enumerate(parts, start=1):
        if size < 1:
            raise ValueError(f"size {position} is {size}; every layer needs at least 1 unit, e.g. 4,8,3")
    if len(parts) < 2:
        raise ValueError(f"{_shown(value)} has one size; give at least two (input,...,output), e.g. 4,8,3")
    return tuple(int(n) for n in parts)


def names(valid: Sequence[str]) -> Parser:
    """Names from ``valid``: ``"relu,tanh"`` or a sequence of strings."""

    def parse(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",")]
        elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            items = list(value)
        else:
            raise ValueError(f"{_shown(value)} is not a list of names from {', '.join(valid)}")
        for item in items:
            if item not in valid:
                raise ValueError(f"{item!r} is not one of {', '.join(valid)}")
        return tuple(items)

    return parse


def _text(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError(f"{_shown(value)} is not a non-empty string")


def parse_shape(text: str) -> tuple[int, ...]:
    """``4x3`` -> (4, 3); ``3`` -> (3,); the empty string -> () (a scalar)."""
    text = text.strip()
    if not text:
        return ()
    dims = []
    for part in text.lower().split("x"):
        try:
            dim = int(part)
        except ValueError:
            raise ValueError(
                f"shape {text!r}: {part!r} is not a whole number; e.g. W=4x3, b=3, s= (a scalar)"
            ) from None
        if dim < 1:
            raise ValueError(f"shape {text!r}: every dimension must be >= 1; e.g. W=4x3")
        dims.append(dim)
    return tuple(dims)


def parse_param(text: str) -> tuple[str, tuple[int, ...]]:
    """``W=4x3`` -> ("W", (4, 3))."""
    name, sep, shape = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ValueError(f"{text!r} is not NAME=SHAPE; e.g. W=4x3, b=3, s= (a scalar)")
    return name, parse_shape(shape)


ParamShapes = tuple[tuple[str, tuple[int, ...]], ...]


def _params(value: Any) -> ParamShapes:
    """Parameter shapes: a table ``{W = "4x3"}``, or ``NAME=SHAPE`` strings (or pairs)."""
    if isinstance(value, Mapping):
        pairs = []
        for name, shape in value.items():
            if not isinstance(shape, str):
                raise ValueError(f'the shape of {name} is {_shown(shape)}; write it as a string, e.g. W = "4x3"')
            pairs.append(parse_param(f"{name}={shape}"))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        pairs = [parse_param(v) if isinstance(v, str) else (str(v[0]), tuple(v[1])) for v in value]
    else:
        raise ValueError(f'{_shown(value)} is not a table of shapes; e.g. {{W = "4x3", b = "3"}}')
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise ValueError(f"parameter {name} is given twice; name each parameter once")
        seen.add(name)
    return tuple(pairs)


# ---- the option tables --------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One option: its name (``max_memory``; on the command line ``--max-memory``),
    its parser, its default and its help."""

    name: str
    parse: Parser
    default: Any
    help: str
    metavar: str = ""
    flag: bool = False  # an on/off switch: --taylor
    negatable: bool = False  # --bias/--no-bias
    required: bool = False
    shown_default: str | None = None  # the default as --help shows it, when not the value itself

    @property
    def flag_name(self) -> str:
        return "--" + self.name.replace("_", "-")

    def convert(self, value: Any) -> Any:
        """The canonical value; raises ``InputError`` naming this option."""
        try:
            return self.parse(value)
        except ValueError as exc:
            raise InputError(str(exc), option=self.name) from None


def _tolerance_help(kind: int) -> str:
    central, forward = METHOD["central"].tolerances, METHOD["forward"].tolerances
    return (
        f"{central['float64'][kind]:g} float64; {forward['float64'][kind]:g} float64 forward; "
        f"{central['float32'][kind]:g} float32"
    )


SETTINGS_OPTIONS: tuple[Option, ...] = (
    Option(
        "method",
        choice(METHODS),
        "central",
        "Difference method: central, forward, richardson (4th order) or complex step.",
        metavar="[" + "|".join(METHODS) + "]",
    ),
    Option(
        "mode",
        choice(MODES),
        "full",
        "full: every entry; sample: --samples entries per parameter; "
        "directional: --directions random directions per parameter.",
        metavar="[" + "|".join(MODES) + "]",
    ),
    Option(
        "dtype",
        _dtype,
        "float64",
        "dtype of the model and its analytic gradients (the reference is float64).",
        metavar="[" + "|".join(DTYPES) + "]",
    ),
    Option(
        "eps",
        _step,
        None,
        "Relative step h = eps*max(1,|x|); auto picks it per method.",
        metavar="auto|FLOAT",
        shown_default="auto",
    ),
    Option(
        "rtol",
        optional(number(0)),
        None,
        "Relative tolerance of the pass rule.",
        metavar="FLOAT>=0",
        shown_default=_tolerance_help(0),
    ),
    Option(
        "atol",
        optional(number(0)),
        None,
        "Absolute tolerance of the pass rule.",
        metavar="FLOAT>=0",
        shown_default=_tolerance_help(1),
    ),
    Option("samples", integer(1), 16, "Entries per parameter with --mode sample.", metavar="N"),
    Option("directions", integer(1), 8, "Directions per parameter with --mode directional.", metavar="K"),
    Option("taylor", _boolean, False, "Also run the Taylor test (order 2 = correct).", flag=True),
    Option("seed", integer(0), 0, "Seed for data, weights and sampling (a whole number >= 0).", metavar="N"),
    Option(
        "allow_unresolved",
        _boolean,
        False,
        "Exit 0, not 3, when no parameter fails but some entry is UNRESOLVED (the check could not tell).",
        flag=True,
    ),
)


def _workers(value: Any) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return integer(1)(value)  # type: ignore[no-any-return]
    except ValueError:
        raise ValueError(f"{_shown(value)} is not a whole number >= 1 or auto") from None


def _dask(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # a distributed.Client (the API)
    text = value.strip()
    count = text.removeprefix("local:")
    if not text or (text.startswith("local:") and not (count.isdigit() and int(count) >= 1)):
        raise ValueError(
            f"{_shown(value)} is not a scheduler address or local:N (N >= 1); e.g. tcp://10.0.0.5:8786 or local:2"
        )
    return text


DEFAULT_MAX_SECONDS = 600.0

# How a check runs, not what it computes: none of these changes a report's numbers.
EXECUTION_OPTIONS: tuple[Option, ...] = (
    Option(
        "workers",
        _workers,
        1,
        "Processes that evaluate your function (auto: one per core); also the loop engine of built-in "
        "models. Results are bitwise those of one process.",
        metavar="N|auto",
    ),
    Option(
        "dask",
        optional(_dask),
        None,
        "Evaluate on a Dask cluster: a scheduler's ADDRESS, or local:N for a local cluster of N workers "
        "(needs pip install 'gradcheck-cli[dask]').",
        metavar="ADDRESS|local:N",
    ),
    Option(
        "checkpoint",
        optional(_text),
        None,
        "Record finished evaluations in FILE as they complete; rerunning the same check with the same FILE "
        "continues where it stopped.",
        metavar="FILE",
    ),
    Option(
        "timeout",
        optional(number(0, above=True, example="30")),
        None,
        "Seconds one evaluation may take; a longer one is stopped and named (exit 2). Runs evaluations in "
        "worker processes.",
        metavar="SECONDS",
    ),
    Option(
        "max_seconds",
        number(0, above=True, example="3600"),
        DEFAULT_MAX_SECONDS,
        "Refuse a check estimated (from timed evaluations) to take longer, naming faster alternatives.",
        metavar="SECONDS",
        shown_default=f"{DEFAULT_MAX_SECONDS:g}",
    ),
    Option("force", _boolean, False, "Run a check even when it is estimated to exceed --max-seconds.", flag=True),
)

_EXECUTION = {o.name: o for o in EXECUTION_OPTIONS}
EXECUTION_NAMES = frozenset(_EXECUTION)  # the keywords that say where a check runs, not what it computes


@dataclass(frozen=True)
class Execution:
    """Where and how a check's evaluations run: the options of ``EXECUTION_OPTIONS``."""

    workers: int | str = _EXECUTION["workers"].default
    dask: Any = _EXECUTION["dask"].default
    checkpoint: str | None = _EXECUTION["checkpoint"].default
    timeout: float | None = _EXECUTION["timeout"].default
    max_seconds: float = _EXECUTION["max_seconds"].default
    force: bool = _EXECUTION["force"].default
    # The folder a relative checkpoint path is taken from, fixed when the options are:
    # the code under test may change the working folder before the file is opened.
    folder: str = field(default_factory=os.getcwd, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, option in _EXECUTION.items():
            object.__setattr__(self, name, option.convert(getattr(self, name)))

    @property
    def checkpoint_file(self) -> str | None:
        """The checkpoint's path, taken from ``folder`` when relative."""
        if self.checkpoint is None:
            return None
        return os.path.join(self.folder, os.path.expanduser(self.checkpoint))

    def updated(self, **given: Any) -> Execution:
        """A copy with the options that were given (not None) replaced."""
        return replace(self, **{k: v for k, v in given.items() if v is not None})


def execution_for_call(execution: Execution | None, call: Mapping[str, Any]) -> Execution:
    """``execution`` (or the defaults) with the execution keywords of an API call that
    were given (not None)."""
    return (execution or Execution()).updated(**{o.name: call.get(o.name) for o in EXECUTION_OPTIONS})


def execution_from(values: Mapping[str, Any]) -> Execution:
    """``Execution`` from a mapping holding execution options (missing ones: defaults)."""
    return Execution(**{o.name: values[o.name] for o in EXECUTION_OPTIONS if o.name in values})


Constants = tuple[tuple[str, Any], ...]


def _constants(value: Any) -> Constants:
    """Fixed literals: a table ``{stride = 2}``, or ``NAME=JSON`` strings."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, Sequence) and not isinstance(value, str):
        pairs = []
        for item in value:
            if not isinstance(item, str):
                pairs.append((str(item[0]), item[1]))
                continue
            name, sep, text = item.partition("=")
            if not sep or not name.strip().isidentifier():
                raise ValueError(f"{item!r} is not NAME=JSON; e.g. stride=2 or mode='\"train\"'")
            try:
                pairs.append((name.strip(), json.loads(text)))
            except RecursionError:
                raise ValueError(
                    f"the value of {name.strip()} is nested too deeply to read (beyond Python's recursion limit "
                    f"of {sys.getrecursionlimit()}); give a flatter value"
                ) from None
            except json.JSONDecodeError:
                raise ValueError(
                    f'the value of {name.strip()} ({text!r}) is not JSON; e.g. 2, 0.5, "train", '
                    f'{{"stride": 1, "pad": 1}}'
                ) from None
    else:
        raise ValueError(f"{_shown(value)} is not a list of NAME=JSON constants")
    for name, _ in pairs:
        if not str(name).isidentifier():
            raise ValueError(f"{name!r} is not a name; constants are passed as keyword arguments")
    return tuple((str(n), v) for n, v in pairs)


def _target(role: str, help_text: str) -> Option:
    return Option(role, optional(_text), None, help_text, metavar=f"FILE.py:{role.upper()}")


# The kinds of derivative a func check can hold against its function: the gradient
# of a loss (grad), a layer's backward (vjp), forward-mode products (jvp), a
# Jacobian (jac), a Hessian (hess) or Hessian-vector products (hvp).
DERIVATIVE_KINDS = ("grad", "vjp", "jvp", "jac", "hess", "hvp", "hessp", "deriv", "deriv2")

FUNC_OPTIONS: tuple[Option, ...] = (
    Option(
        "loss",
        _text,
        None,
        "Your function: a loss LOSS(**params) -> float (with --grad, --hess, --hvp), a layer's forward "
        "(with --vjp, --jvp) or a vector function F (with --jac).",
        metavar="FILE.py:FUNCTION",
        required=True,
    ),
    _target("grad", "Your gradient: GRAD(**params) -> dict (or a tuple in parameter order)."),
    _target("vjp", "A layer's backward: VJP(dout, **inputs), or VJP(dout, cache) when FUNCTION returns (out, cache)."),
    _target("jvp", "Forward mode: JVP(tangents, **inputs) -> the directional derivative of the output."),
    _target("jac", "Your Jacobian: JAC(**inputs) -> a block per input, (out.size, in.size) or out.shape + in.shape."),
    _target("hess", "Your Hessian: HESS(**params) -> an (N, N) array or a dict of blocks {p: {q: block}}."),
    _target("hvp", "Your Hessian-vector product: HVP(v, **params) -> dict, v a dict shaped like the parameters."),
    _target(
        "hessp",
        "Your Hessian-vector product in scipy's convention: HESSP(x, p) -> array, x the one parameter and p an "
        "array of its shape (as scipy.optimize.minimize calls hessp).",
    ),
    _target(
        "deriv",
        "The elementwise derivative of an elementwise FUNCTION (an activation, a robust loss's rho): DERIV(z) -> "
        "an array of z's shape, z the one input, passed positionally (numpy-ml's grad, scipy's rho[1]).",
    ),
    _target(
        "deriv2",
        "The elementwise second derivative: DERIV2(z), checked as the derivative of --deriv (numpy-ml's grad2).",
    ),
    Option(
        "value_and_grad",
        _boolean,
        False,
        "FUNCTION returns (loss, gradient), as CS231n's softmax_loss and scipy's jac=True do; its gradient part "
        "is checked (a dict, a tuple in parameter order, or one parameter's array).",
        flag=True,
    ),
    Option(
        "params",
        _params,
        (),
        "A parameter and its shape, e.g. W=4x3, b=3, s= (scalar); repeat for each.",
        metavar="NAME=SHAPE",
    ),
    Option(
        "init",
        optional(_text),
        None,
        "Start from the arrays of this .npz instead of drawing them from --seed.",
        metavar="FILE.npz",
    ),
    Option(
        "data",
        optional(_text),
        None,
        "Arrays passed by name to every function and held fixed (labels y, a mask): an .npz.",
        metavar="FILE.npz",
    ),
    Option(
        "const",
        _constants,
        (),
        "A literal passed by name to every function and held fixed, e.g. stride=2; repeat for each.",
        metavar="NAME=JSON",
    ),
    Option(
        "dout",
        optional(_text),
        None,
        "With --vjp: the upstream gradient (.npy, the output's shape) instead of one drawn from --seed.",
        metavar="FILE.npy",
    ),
    Option(
        "sparsity",
        optional(_text),
        None,
        "With --jac: a boolean mask per input (.npz): columns that share no output are evaluated together.",
        metavar="FILE.npz",
    ),
)


def _table(parse_value: Parser, example: str) -> Parser:
    """A table ``{name = value}`` (a suite), or ``(name, value)`` pairs (the command
    line's NAME=VALUE), as sorted-by-appearance pairs of parsed values."""

    def parse(value: Any) -> tuple[tuple[str, Any], ...]:
        pairs = list(value.items()) if isinstance(value, Mapping) else list(value)
        out = []
        for name, item in pairs:
            if not str(name).isidentifier():
                raise ValueError(f"{name!r} is not a name; e.g. {example}")
            try:
                out.append((str(name), parse_value(item)))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}; e.g. {example}") from None
        return tuple(out)

    return parse


def _shape_value(value: Any) -> tuple[int, ...]:
    return parse_shape(str(value))


def _number_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{_shown(value)} is not a number")
    return float(value)


EXPR_OPTIONS: tuple[Option, ...] = (
    Option(
        "loss", _text, None, "The loss as a formula, e.g. sum((X@theta - y)**2)/(2*m).", metavar="LOSS", required=True
    ),
    Option(
        "grad",
        _table(_text, "theta='X.T@(X@theta - y)/m'"),
        (),
        "A parameter and its gradient as a formula; repeat for each.",
        metavar="NAME=EXPR",
        required=True,
    ),
    Option(
        "shape",
        _table(_shape_value, "X=100x4"),
        (),
        "A name's shape (parameters and data), e.g. X=100x4, theta=4x1; repeat for each.",
        metavar="NAME=SHAPE",
    ),
    Option(
        "const",
        _table(_number_value, "m=100"),
        (),
        "A number held fixed, e.g. m=100; repeat for each.",
        metavar="NAME=NUMBER",
    ),
    Option(
        "data",
        optional(_text),
        None,
        "Arrays for data names (X, y), by name: an .npz.",
        metavar="FILE.npz",
    ),
)


# ---- Settings -----------------------------------------------------------------------------

_SETTING = {o.name: o for o in SETTINGS_OPTIONS}


@dataclass(frozen=True)
class Settings:
    """How to check: the options of ``SETTINGS_OPTIONS``, validated by their parsers.

    ``eps``, ``rtol`` and ``atol`` may be None: ``resolved()`` fills them in per
    method and dtype.  ``dtype`` accepts numpy dtypes (``np.float32``) and stores
    the name.
    """

    method: str = _SETTING["method"].default
    mode: str = _SETTING["mode"].default
    dtype: str = _SETTING["dtype"].default
    eps: float | None = _SETTING["eps"].default
    rtol: float | None = _SETTING["rtol"].default
    atol: float | None = _SETTING["atol"].default
    samples: int = _SETTING["samples"].default
    directions: int = _SETTING["directions"].default
    taylor: bool = _SETTING["taylor"].default
    seed: int = _SETTING["seed"].default
    allow_unresolved: bool = _SETTING["allow_unresolved"].default

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _SETTING[f.name].convert(getattr(self, f.name)))

    def updated(self, **given: Any) -> Settings:
        """A copy with the options that were given (not None) replaced."""
        return replace(self, **{k: v for k, v in given.items() if v is not None})

    def resolved(self) -> Settings:
        """The same settings with the defaults filled in."""
        rtol, atol = self.difference.tolerances[self.dtype]
        return replace(
            self,
            eps=self.difference.auto_step if self.eps is None else self.eps,
            rtol=rtol if self.rtol is None else self.rtol,
            atol=atol if self.atol is None else self.atol,
        )

    @property
    def difference(self) -> Method:
        """The difference method's record (``core.methods``)."""
        return METHOD[self.method]

    @property
    def step(self) -> float:
        """The relative step of resolved settings."""
        assert self.eps is not None, "resolved() fills eps in"
        return self.eps

    @property
    def tolerances(self) -> tuple[float, float]:
        """``(rtol, atol)`` of resolved settings."""
        assert self.rtol is not None and self.atol is not None, "resolved() fills the tolerances in"
        return self.rtol, self.atol


def settings_from(values: Mapping[str, Any]) -> Settings:
    """``Settings`` from a mapping that holds (at least) every settings option."""
    return Settings(**{o.name: values[o.name] for o in SETTINGS_OPTIONS})
