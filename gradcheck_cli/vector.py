"""Vector-valued functions: their derivatives entry by entry, columns grouped.

A Jacobian entry ``J[i, j]`` is the derivative of output ``i`` along column ``j``
(a unit vector of the input, or any direction).  Every entry of a column comes
from the same evaluations of ``F``; and columns that share no output (a declared
sparsity pattern says which) can be moved together, each output then changing
through one column only, so one evaluation serves the whole group (the grouping of
Curtis, Powell and Reid).  To the difference methods the entries are an ordinary
batch: ``column_evaluator`` turns "the change of entry k at step s" into the few
evaluations of ``F`` it needs, so the screen, the adaptive ladder and its kink and
jump evidence (``numeric``) apply to each entry unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import BadValueError
from .numeric import (
    EPS64,
    LOSS_ROUNDOFF,
    NOISE_POINTS,
    NOISE_SAFETY,
    Evaluate,
    Evaluation,
    _noise_from_differences,
    dropped_imaginary,
)
from .usercode import call_user

Array = npt.NDArray[Any]
Params = dict[str, Array]


@dataclass
class Noisy:
    """Values that carry a known absolute error (a numerical gradient, say)."""

    values: dict[str, Array]
    noise: dict[str, Array]


Outputs = Callable[[Any, str], dict[str, Array]]


def single_output(raw: Any, where: str) -> dict[str, Array]:
    """The output of a function that returns one array (or a number)."""
    if isinstance(raw, (tuple, list, dict)):
        raise BadValueError(
            f"{where} returned a {type(raw).__name__}; return the output alone as one array "
            f"(the Jacobian is taken of that array)"
        )
    return {"out": raw}


class VectorFunction:
    """Evaluates ``F`` at moved inputs and flattens its output(s) into one vector.

    ``function(params)`` returns what ``outputs`` turns into a dict of named arrays
    (one array, or a gradient's dict of arrays), or a ``Noisy`` of them.  The
    layout (names, shapes) is fixed by the first call; every later call must keep
    it.  A value that is not finite at a moved point becomes nan (the step left the
    function's domain; a smaller one may not).  ``noise`` is each output's measured
    noise, added to the round-off model once measured.
    """

    def __init__(
        self,
        function: Callable[[Params], Any],
        params: Params,
        where: str,
        outputs: Outputs = single_output,
    ) -> None:
        self._function = function
        self._outputs = outputs
        self.where = where
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.layout: list[tuple[str, tuple[int, ...]]] = []
        self.output_eps = EPS64
        values, noise = self._call(self.params, "at the starting point", moved=False)
        self.base = np.real(values).astype(np.float64)
        self.base_noise = noise
        self.noise = np.zeros(self.base.size)
        self.verified = False  # determinism checked
        self.evaluations = 1
        self.progress: Callable[[int], None] | None = None

    @property
    def size(self) -> int:
        return int(self.base.size)

    def blocks(self) -> list[tuple[str, tuple[int, ...], slice]]:
        """Each output's name, shape and slice of the flat vector."""
        out, start = [], 0
        for name, shape in self.layout:
            size = int(np.prod(shape, dtype=np.int64))
            out.append((name, shape, slice(start, start + size)))
            start += size
        return out

    def _call(self, params: Params, context: str, moved: bool) -> tuple[Array, Array]:
        complex_input = any(np.iscomplexobj(v) for v in params.values())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", np.exceptions.ComplexWarning)
            raw = call_user(self.where, self._function, params)
        dropped = any(issubclass(w.category, np.exceptions.ComplexWarning) for w in caught)
        noisy = isinstance(raw, Noisy)
        named = raw.values if isinstance(raw, Noisy) else self._outputs(raw, self.where)
        arrays = []
        for name, value in named.items():
            try:
                array = np.asarray(value)
            except Exception:
                array = np.asarray(None)
            if array.dtype.kind not in "biufc" or array.dtype == bool:
                raise BadValueError(
                    f"{self.where} returned {type(value).__name__} for {name} {context}; return a real array"
                )
            arrays.append((name, array))
        shapes = [(name, tuple(a.shape)) for name, a in arrays]
        if not moved:
            self.layout = shapes
            kinds = [a.dtype for _, a in arrays if a.dtype.kind in "fc"]
            self.output_eps = max((float(np.finfo(k).eps) for k in kinds), default=EPS64)
        elif shapes != self.layout:
            raise BadValueError(
                f"{self.where} returned shape {_describe(shapes)} {context}, but {_describe(self.layout)} at the "
                f"starting point; the output's shape must not depend on the input's values"
            )
        flat = np.concatenate([a.reshape(-1) for _, a in arrays]) if arrays else np.zeros(0)
        if complex_input and (dropped or not np.iscomplexobj(flat)):
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
            if noisy and isinstance(raw, Noisy)
            else np.zeros(flat.size)
        )
        return flat, noise

    def at(self, name: str, change: Array, context: str) -> tuple[Array, Array]:
        """``F`` with input ``name`` moved by ``change`` (flat, real or complex), and the
        noise its values carry."""
        params = dict(self.params)
        x = self.params[name]
        params[name] = (x.reshape(-1) + change).reshape(x.shape)
        values, noise = self._call(params, context, moved=True)
        self.evaluations += 1
        if self.progress is not None:
            self.progress(1)
        return values, noise

    def again(self) -> Array:
        """``F`` at the starting point once more (a determinism check)."""
        self.evaluations += 1
        values, _ = self._call(self.params, "at the starting point, called again", moved=False)
        return np.real(values)

    def roundoff(self, rows: Array, values: Array, noise: Array) -> Array:
        """Round-off bound of ``F_i(moved) - F_i(x)`` for the outputs ``rows``."""
        with np.errstate(invalid="ignore"):
            model = LOSS_ROUNDOFF * self.output_eps * np.maximum(np.abs(self.base[rows]), np.abs(np.real(values)))
        bound: Array = model + noise + self.base_noise[rows] + self.noise[rows]
        return bound


def _describe(shapes: list[tuple[str, tuple[int, ...]]]) -> str:
    if len(shapes) == 1:
        return str(shapes[0][1])
    return ", ".join(f"{n} {s}" for n, s in shapes)


@dataclass(frozen=True)
class Columns:
    """The perturbations of one input: unit columns (``entry``: the input entry each
    moves) or dense unit ``directions``; ``group``: columns evaluated together."""

    group: Array
    entry: Array | None = None
    directions: Array | None = None

    @property
    def count(self) -> int:
        return len(self.group)


def unit_columns(size: int, pattern: tuple[Array, Array] | None = None) -> Columns:
    """One column per input entry, grouped by the sparsity ``pattern`` (the rows and
    columns of its non-zero entries) when given, else each alone."""
    group = np.arange(size) if pattern is None else group_columns(*pattern, size)
    return Columns(group, entry=np.arange(size))


def direction_columns(directions: Array) -> Columns:
    return Columns(np.arange(len(directions)), directions=directions)


def group_columns(rows: Array, cols: Array, size: int) -> Array:
    """Greedy Curtis-Powell-Reid grouping: each column joins the first group none of
    whose columns shares an output (a row) with it.  ``(rows, cols)``: the pattern's
    non-zero entries; ``size``: the number of columns."""
    order = np.argsort(cols, kind="stable")
    bounds = np.searchsorted(cols[order], np.arange(size + 1))
    by_column = rows[order].tolist()
    taken: dict[int, set[int]] = {}  # output -> groups that already move it
    group = np.empty(size, dtype=np.int64)
    for j in range(size):
        mine = by_column[bounds[j] : bounds[j + 1]]
        forbidden: set[int] = set()
        for r in mine:
            forbidden |= taken.get(r, set())
        g = 0
        while g in forbidden:
            g += 1
        for r in mine:
            taken.setdefault(r, set()).add(g)
        group[j] = g
    return group


def column_evaluator(fn: VectorFunction, name: str, columns: Columns, rows: Array, cols: Array, h: Array) -> Evaluate:
    """``Evaluate`` for the entries ``(rows[k], cols[k])`` of input ``name``'s Jacobian:
    the change of output ``rows[k]`` when column ``cols[k]`` moves by a step.

    Entries whose columns are in one group and whose steps are the same multiple of
    their columns' base steps ``h`` share one evaluation of ``F`` (every column of
    the group moved at once)."""
    members_of = np.argsort(columns.group, kind="stable")
    starts = np.searchsorted(columns.group[members_of], np.arange(int(columns.group.max(initial=-1)) + 2))
    position = np.empty(columns.count, dtype=np.int64)
    for g in range(len(starts) - 1):
        position[members_of[starts[g] : starts[g + 1]]] = np.arange(starts[g + 1] - starts[g])
    size = fn.params[name].size

    def evaluate(steps: Array, subset: Array | None) -> Evaluation:
        entries = np.arange(len(rows)) if subset is None else subset
        r, c = rows[entries], cols[entries]
        imaginary = np.iscomplexobj(steps)
        ratio = (np.imag(steps) if imaginary else steps) / h[c]
        with np.errstate(divide="ignore"):
            code = np.round(np.log2(np.abs(ratio)) * 16).astype(np.int64) * 2 + (ratio < 0)
        key = columns.group[c] * (1 << 20) + (code - code.min(initial=0))
        unique, inverse = np.unique(key, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
        change = np.empty(len(entries), dtype=np.complex128 if imaginary else np.float64)
        roundoff = np.empty(len(entries))
        for u in range(len(unique)):
            members = order[bounds[u] : bounds[u + 1]]
            first = members[0]
            g = int(columns.group[c[first]])
            scale = ratio[first]
            move = np.zeros(size, dtype=np.complex128 if imaginary else np.float64)
            if columns.directions is not None:
                step = steps[first]
                move += step * columns.directions[c[first]]
            else:
                assert columns.entry is not None
                in_group = members_of[starts[g] : starts[g + 1]]
                s = scale * h[in_group]
                s[position[c[members]]] = np.imag(steps[members]) if imaginary else steps[members]
                move[columns.entry[in_group]] = 1j * s if imaginary else s
            values, noise = fn.at(name, move, f"with {name} moved")
            change[members] = values[r[members]] - fn.base[r[members]]
            roundoff[members] = fn.roundoff(r[members], values[r[members]], noise[r[members]])
        return Evaluation(change, roundoff, None)

    return evaluate


def measure_output_noise(fn: VectorFunction, name: str, rows: Array, rng: np.random.Generator) -> Array:
    """Each output's noise in ``rows``, measured along one random direction of the
    input (``numeric.measure_noise``, per output)."""
    x = fn.params[name].reshape(-1)
    v = rng.standard_normal(x.size)
    v /= np.linalg.norm(v)
    magnitude = max(1.0, float(np.max(np.abs(x), initial=0.0)))
    smallest = 64 * float(np.spacing(magnitude))
    spacings = sorted({max(smallest, 1e-6 * magnitude), max(smallest, 1e-9 * magnitude), max(smallest, 1e-6)})
    found = np.full((len(spacings), rows.size), np.inf)
    for k, s in enumerate(spacings):
        runs = np.array([np.real(fn.at(name, i * s * v, f"with {name} moved")[0][rows]) for i in range(1, 11)])
        assert runs.shape[0] == NOISE_POINTS
        for j in range(rows.size):
            column = runs[:, j] - fn.base[rows[j]]
            if np.all(np.isfinite(column)):
                sigma = _noise_from_differences(column)
                if sigma is not None and sigma > 0:
                    found[k, j] = sigma
    best = found.min(axis=0)
    noise: Array = np.where(np.isfinite(best), NOISE_SAFETY * best, 0.0)
    return noise
