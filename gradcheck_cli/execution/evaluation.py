"""Evaluating the function under test at moved points, wherever that happens.

A check asks for batches of *moves* (``Moves``): single entries, groups of
entries or whole directions of one input, each changed by a step.
``evaluate_moves`` evaluates a batch one move after another and reads every value
with the job's reader (``ScalarReader`` for a loss, ``VectorReader`` for a
function returning arrays).  The very same code runs in this process and in
worker processes or on a Dask cluster (``workers``): a worker receives the ``Job``
once (pickled: the function, the starting point, the reader), then only moves,
and returns plain arrays.  So a parallel run is bitwise the serial one, and a
checkpoint can record what came back.

Notes
-----
Why the reading happens beside the call.  What a value means (a tuple instead of
a number, a dropped imaginary part, a NaN that says the step left the domain)
can only be told where the raw value exists; reading it there turns a user's
arbitrary object into a number or a clear error, and only numbers travel back.
"""

from __future__ import annotations

import decimal
import hashlib
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..core.errors import BadValueError, option_ref
from ..core.estimates import EPS64
from .usercode import call_user, move_context, note_batch, note_move

Array = npt.NDArray[Any]
Params = dict[str, Array]


def dropped_imaginary(where: str, what: str = "the loss") -> BadValueError:
    """The error for code that loses the complex step's imaginary part (one wording)."""
    return BadValueError(
        f"{where} dropped the imaginary part of its complex input (float(), abs, .real or a real array do that), "
        f"so the complex step cannot see its derivative; keep {what} complex-safe or use the central method"
    )


# ---- moves -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moves:
    """Moves of input ``name``: move ``k`` adds ``value[bounds[k]:bounds[k+1]]`` to the
    flat entries ``index[bounds[k]:bounds[k+1]]`` (``bounds`` None: one entry each).
    ``kind`` says how messages name a move: ``entry`` (``W[0, 3]``), ``direction``
    or ``columns`` (the input alone)."""

    name: str
    index: Array
    value: Array
    bounds: Array | None = None
    kind: str = "entry"

    @classmethod
    def entries(cls, name: str, flat: Array, steps: Array) -> Moves:
        return cls(name, np.asarray(flat, dtype=np.int64), np.asarray(steps))

    @classmethod
    def dense(cls, name: str, changes: Array, kind: str = "direction") -> Moves:
        """Every entry moves: row ``k`` of ``changes`` is move ``k``."""
        count, size = changes.shape
        index = np.tile(np.arange(size, dtype=np.int64), count)
        return cls(name, index, changes.reshape(-1), np.arange(0, count * size + 1, size, dtype=np.int64), kind)

    @classmethod
    def groups(cls, name: str, parts: list[tuple[Array, Array]], kind: str = "columns") -> Moves:
        """Move ``k`` changes entries ``parts[k][0]`` by ``parts[k][1]``."""
        sizes = [len(i) for i, _ in parts]
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        index = np.concatenate([i for i, _ in parts]).astype(np.int64) if parts else np.zeros(0, np.int64)
        complex_ = any(np.iscomplexobj(v) for _, v in parts)
        value = np.concatenate([v for _, v in parts]) if parts else np.zeros(0)
        return cls(name, index, value.astype(np.complex128 if complex_ else np.float64), bounds, kind)

    def __len__(self) -> int:
        return len(self.index) if self.bounds is None else len(self.bounds) - 1

    @property
    def imaginary(self) -> bool:
        return bool(np.iscomplexobj(self.value))

    def part(self, start: int, stop: int) -> Moves:
        """Moves ``start`` to ``stop`` (exclusive)."""
        if self.bounds is None:
            return replace(self, index=self.index[start:stop], value=self.value[start:stop])
        lo, hi = int(self.bounds[start]), int(self.bounds[stop])
        return replace(
            self, index=self.index[lo:hi], value=self.value[lo:hi], bounds=self.bounds[start : stop + 1] - lo
        )

    def digest(self) -> str:
        """What these moves are, in 16 hex digits: a checkpoint's record of them must match."""
        h = hashlib.blake2b(digest_size=8)
        h.update(self.name.encode())
        for array in (self.index, self.value, self.bounds if self.bounds is not None else np.zeros(0)):
            h.update(str(array.dtype).encode())
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def context(self, k: int, shape: tuple[int, ...]) -> str:
        """``with W[0, 3] moved``: where move ``k`` went, for messages."""
        return move_context(self.name, shape, self.kind, int(self.index[k]) if self.bounds is None else -1)


class _Context:
    """A move's ``context`` text, built only when a message needs it."""

    def __init__(self, moves: Moves, k: int, shape: tuple[int, ...]) -> None:
        self._moves, self._k, self._shape = moves, k, shape

    def __str__(self) -> str:
        return self._moves.context(self._k, self._shape)


# ---- reading values --------------------------------------------------------------------------


def plain_numbers(value: object, who: str, context: object) -> object:
    """What a framework or a masked array holds, as plain numbers: a masked value is
    refused (its hidden data is not the loss); a tensor is read through its own
    ``detach``/``numpy`` (a torch tensor that requires grad, a jax array)."""
    if type(value) in (float, np.float64):  # the usual loss: nothing to unwrap (this runs per evaluation)
        return value
    if isinstance(value, np.ma.MaskedArray) or value is np.ma.masked:
        if np.ma.getmaskarray(value).any():
            raise BadValueError(
                f"{who} returned a masked value {context}; a masked entry has no value to check: return the loss "
                f"as a plain float (fill or drop the masked entries first)"
            )
        return np.ma.getdata(value)
    if isinstance(value, (numbers.Rational, decimal.Decimal)) and not isinstance(value, (bool, numbers.Integral)):
        return float(value)  # Fraction, Decimal: numbers, read as floats
    value = _detached(value)
    if not isinstance(value, np.ndarray) and hasattr(value, "__array__"):
        try:
            return np.asarray(value)
        except Exception as exc:
            raise BadValueError(
                f"{who} returned a {type(value).__name__} that cannot be read as numbers {context} "
                f"({type(exc).__name__}: {exc}); return a float"
            ) from None
    return value


def _finite_scalar(value: object, who: str, context: object) -> complex | float:
    if isinstance(value, tuple):
        raise BadValueError(
            f"{who} returned a tuple of {len(value)} {context}; return the loss alone (a float), "
            f"e.g. 'return loss', not 'return loss, dx'"
            + (f", or give {option_ref('value_and_grad')} to check the dx it returns" if len(value) == 2 else "")
        )
    arr = np.asarray(plain_numbers(value, who, context))
    if arr.dtype == bool:
        raise BadValueError(f"{who} returned a bool ({value}) {context}; a bool is not a loss: return a float")
    if arr.size != 1:
        raise BadValueError(f"{who} must return a scalar; got an array of shape {arr.shape} {context}")
    v = arr.reshape(()).item()
    if not isinstance(v, (int, float, complex)):
        raise BadValueError(f"{who} must return a number; got {type(value).__name__} {context}")
    if not np.isfinite(v):
        raise BadValueError(f"{who} returned {v} {context}; the loss must be a finite number")
    return v


def _detached(value: Any) -> Any:
    """A torch tensor (that may require grad) as numpy reads it: detached, on the CPU."""
    if hasattr(value, "detach") and callable(value.detach):
        value = value.detach()
        value = value.cpu() if hasattr(value, "cpu") else value
    return value


def numeric_array(value: Any) -> Array | None:
    """``value`` as an array of numbers (bools are not numbers here), or None (a masked
    entry too: its hidden data is not a value)."""
    if isinstance(value, np.ma.MaskedArray) and np.ma.getmaskarray(value).any():
        return None
    try:
        array = np.asarray(_detached(value))
    except Exception:  # a ragged sequence, say
        return None
    return array if array.dtype.kind in "iufc" else None


class Reader(Protocol):
    """Turns what the function returned into numbers, or a clear error."""

    where: str

    def allocate(self, count: int, imaginary: bool) -> dict[str, Array]: ...

    def store(
        self, out: dict[str, Array], k: int, raw: Any, dropped: bool, imaginary: bool, context: object
    ) -> None: ...


@dataclass
class ScalarReader:
    """A loss's value: one finite number (complex under a complex step).

    ``black_box`` (a user's function): a non-finite value at a moved point is nan
    (the step left the function's domain; a smaller one may not) and, under a
    complex step, a real value says the input does not reach the output rather
    than being refused.  ``eps`` is the precision the value was computed in, read
    at the starting point from its type.
    """

    where: str
    black_box: bool = False
    eps: float = EPS64

    def read(
        self, raw: Any, dropped: bool, imaginary: bool, context: object, moved: bool
    ) -> tuple[complex | float, bool]:
        """``(value, real_output)``."""
        array = numeric_array(raw)
        if isinstance(raw, (tuple, bool)) or array is None:  # _finite_scalar names the mistake
            return _finite_scalar(raw, self.where, context), False
        real_output = imaginary and not np.iscomplexobj(array)
        if imaginary and (dropped or (real_output and not self.black_box)):
            raise dropped_imaginary(self.where)
        if moved and self.black_box and array.size == 1:
            number = array.reshape(())
            if number.dtype.kind in "fc" and not np.isfinite(number):
                return float("nan"), real_output
        if not moved:
            self.eps = float(np.finfo(array.dtype).eps) if array.dtype.kind in "fc" else EPS64
        return _finite_scalar(raw, self.where, context), real_output

    def allocate(self, count: int, imaginary: bool) -> dict[str, Array]:
        return {
            "value": np.empty(count, dtype=np.complex128 if imaginary else np.float64),
            "real": np.zeros(count, dtype=bool),
            "crossed": np.zeros(count, dtype=np.int64),
        }

    def store(self, out: dict[str, Array], k: int, raw: Any, dropped: bool, imaginary: bool, context: object) -> None:
        out["value"][k], out["real"][k] = self.read(raw, dropped, imaginary, context, moved=True)


@dataclass(frozen=True)
class Noisy:
    """Values that carry a known absolute error (a numerical gradient, say)."""

    values: dict[str, Array]
    noise: dict[str, Array]


def single_output(raw: Any, where: str) -> dict[str, Array]:
    """The output of a function that returns one array (or a number)."""
    if isinstance(raw, (tuple, list, dict)):
        raise BadValueError(
            f"{where} returned a {type(raw).__name__}; return the output alone as one array "
            f"(the Jacobian is taken of that array)"
        )
    return {"out": raw}


Outputs = Callable[[Any, str], dict[str, Array]]


@dataclass
class VectorReader:
    """A vector function's value: named arrays (``outputs`` names them), flattened
    into one vector, with the noise a ``Noisy`` value declares.  The layout (names,
    shapes) is fixed at the starting point; every later value must keep it.  A
    value that is not finite at a moved point becomes nan."""

    where: str
    outputs: Outputs = single_output
    layout: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    eps: float = EPS64

    @property
    def size(self) -> int:
        return sum(int(np.prod(shape, dtype=np.int64)) for _, shape in self.layout)

    def read(self, raw: Any, dropped: bool, imaginary: bool, context: object, moved: bool) -> tuple[Array, Array]:
        """``(flat values, their noise)``."""
        named = raw.values if isinstance(raw, Noisy) else self.outputs(raw, self.where)
        arrays = []
        for name, value in named.items():
            array = numeric_array(value)
            if array is None:
                raise BadValueError(
                    f"{self.where} returned {type(value).__name__} for {name} {context}; return a real array"
                )
            arrays.append((name, array))
        shapes = [(name, tuple(a.shape)) for name, a in arrays]
        if not moved:
            self.layout = shapes
            kinds = [a.dtype for _, a in arrays if a.dtype.kind in "fc"]
            self.eps = max((float(np.finfo(k).eps) for k in kinds), default=EPS64)
        elif shapes != self.layout:
            raise BadValueError(
                f"{self.where} returned shape {_describe(shapes)} {context}, but {_describe(self.layout)} at the "
                f"starting point; the output's shape must not depend on the input's values"
            )
        flat = np.concatenate([a.reshape(-1) for _, a in arrays]) if arrays else np.zeros(0)
        if imaginary and (dropped or not np.iscomplexobj(flat)):
            raise dropped_imaginary(self.where, "the function")
        flat = flat.astype(np.complex128 if np.iscomplexobj(flat) else np.float64)
        finite = np.isfinite(flat)
        if not finite.all():
            if not moved:
                first = int(np.flatnonzero(~finite)[0])
                raise BadValueError(
                    f"{self.where} returned {flat[first]} at output entry {first} {context}; "
                    f"the output must be finite there"
                )
            flat = np.where(finite, flat, np.nan)
        noise = (
            np.concatenate([np.abs(np.asarray(v, dtype=np.float64)).reshape(-1) for v in raw.noise.values()])
            if isinstance(raw, Noisy)
            else np.zeros(flat.size)
        )
        return flat, noise

    def allocate(self, count: int, imaginary: bool) -> dict[str, Array]:
        return {
            "values": np.empty((count, self.size), dtype=np.complex128 if imaginary else np.float64),
            "noise": np.zeros((count, self.size)),
        }

    def store(self, out: dict[str, Array], k: int, raw: Any, dropped: bool, imaginary: bool, context: object) -> None:
        values, noise = self.read(raw, dropped, imaginary, context, moved=True)
        out["values"][k] = values
        out["noise"][k] = noise


def _describe(shapes: list[tuple[str, tuple[int, ...]]]) -> str:
    if len(shapes) == 1:
        return str(shapes[0][1])
    return ", ".join(f"{n} {s}" for n, s in shapes)


# ---- jobs ------------------------------------------------------------------------------------


@dataclass(eq=False)  # compared and hashed by identity: runners key their caches by the job
class Job:
    """What a batch of moves is evaluated with: the function, its starting point, how
    its values are read, and (a built-in model) the pattern that changes when a move
    crosses a kink.  Sent to each worker once, pickled."""

    function: Callable[[Params], Any]
    params: Params
    reader: ScalarReader | VectorReader
    kink_pattern: Callable[[Params], Array | None] | None = None

    @property
    def where(self) -> str:
        return self.reader.where


def call_recording(where: str, function: Callable[..., Any], *args: Any) -> tuple[Any, bool]:
    """``function(*args)`` and whether it dropped an imaginary part on the way (numpy
    warns when a complex value is cast to real)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", np.exceptions.ComplexWarning)
        raw = call_user(where, function, *args)
    return raw, any(issubclass(w.category, np.exceptions.ComplexWarning) for w in caught)


class JobState:
    """A job made ready to evaluate in one process, with its kink pattern at the start."""

    def __init__(self, job: Job) -> None:
        self.job = job
        # A user's function imports its module when first needed: here, before any
        # move, so that the import is not timed as an evaluation.
        load = getattr(job.function, "load", None)
        if callable(load):
            call_user(job.where, load)
        self.base_pattern = job.kink_pattern(job.params) if job.kink_pattern is not None else None


def evaluate_moves(state: JobState, moves: Moves, tick: Callable[[int], None] | None = None) -> dict[str, Array]:
    """Evaluate ``moves`` one after another (``tick(k)`` before move ``k``) and read
    each value; returns the reader's arrays, plus ``crossed`` kink counts.  Nothing
    shared is written (the moved input is a fresh copy), so threads of one Dask
    worker may run chunks of one job at once."""
    job = state.job
    reader = job.reader
    imaginary = moves.imaginary
    out = reader.allocate(len(moves), imaginary)
    crossed = out.setdefault("crossed", np.zeros(len(moves), dtype=np.int64))
    # A fresh working copy per batch: code that writes into its input spoils one batch at most.
    work = job.params[moves.name].astype(np.complex128 if imaginary else np.float64, copy=True)
    shape = work.shape
    view = work.reshape(-1)
    params = dict(job.params)
    params[moves.name] = work
    function, where, pattern = job.function, job.where, state.base_pattern
    single = moves.bounds is None
    note_batch((moves.name, tuple(shape), moves.kind))
    for k in range(len(moves)):
        if tick is not None:
            tick(k)
        if single:
            i = moves.index[k]
            note_move(int(i))
            old = view[i]
            view[i] = old + moves.value[k]
        else:
            assert moves.bounds is not None
            lo, hi = moves.bounds[k], moves.bounds[k + 1]
            idx = moves.index[lo:hi]
            saved = view[idx].copy()
            view[idx] = saved + moves.value[lo:hi]
        try:
            raw, dropped = call_recording(where, function, params)
            reader.store(out, k, raw, dropped, imaginary, _Context(moves, k, shape))
            if pattern is not None and not imaginary:
                assert job.kink_pattern is not None
                crossed[k] = int(np.count_nonzero(job.kink_pattern(params) != pattern))
        finally:
            if single:
                view[i] = old
            else:
                view[idx] = saved
    note_batch(None)
    return out
