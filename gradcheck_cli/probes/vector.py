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

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.estimates import Evaluate, Evaluation
from ..execution.evaluation import Job, Moves, Outputs, VectorReader, call_recording, single_output
from ..execution.workers import InProcess, Runner
from ..numerics.noise import NOISE_POINTS, NOISE_SAFETY, noise_from_differences
from ..numerics.steps import LOSS_ROUNDOFF

Array = npt.NDArray[Any]
Params = dict[str, Array]


class VectorFunction:
    """Evaluates ``F`` at moved inputs and flattens its output(s) into one vector.

    ``function(params)`` returns what ``outputs`` turns into a dict of named arrays
    (one array, or a gradient's dict of arrays), or a ``Noisy`` of them; the
    ``evaluation.VectorReader`` reads it (the layout is fixed by the first call).
    Moves run on ``runner`` (this process, workers, Dask).  ``noise`` is each
    output's measured noise, added to the round-off model once measured.
    """

    def __init__(
        self,
        function: Callable[[Params], Any],
        params: Params,
        where: str,
        outputs: Outputs = single_output,
        runner: Runner | None = None,
    ) -> None:
        self.where = where
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.runner = runner if runner is not None else InProcess()
        self.job = Job(function, self.params, VectorReader(where, outputs))
        began = time.perf_counter()
        values, noise = self._call("at the starting point")
        self.runner.observe(time.perf_counter() - began)
        assert isinstance(self.job.reader, VectorReader)
        self.layout = self.job.reader.layout
        self.output_eps = self.job.reader.eps
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

    def _call(self, context: str) -> tuple[Array, Array]:
        reader = self.job.reader
        assert isinstance(reader, VectorReader)
        raw, dropped = call_recording(self.where, self.job.function, self.params)
        return reader.read(raw, dropped, False, context, moved=False)

    def moved(self, moves: Moves) -> tuple[Array, Array]:
        """``F`` after each move (rows), and the noise its values carry."""
        out = self.runner.run(self.job, moves, self.progress)
        self.evaluations += len(moves)
        return out["values"], out["noise"]

    def at(self, name: str, change: Array, context: str = "") -> tuple[Array, Array]:
        """``F`` with input ``name`` moved by ``change`` (flat, real or complex), and the
        noise its values carry."""
        values, noise = self.moved(Moves.dense(name, np.asarray(change)[None, :], kind="columns"))
        return values[0], noise[0]

    def again(self) -> Array:
        """``F`` at the starting point once more (a determinism check)."""
        self.evaluations += 1
        values, _ = self._call("at the starting point, called again")
        return np.real(values)

    def roundoff(self, rows: Array, values: Array, noise: Array) -> Array:
        """Round-off bound of ``F_i(moved) - F_i(x)`` for the outputs ``rows``."""
        with np.errstate(invalid="ignore"):
            model = LOSS_ROUNDOFF * self.output_eps * np.maximum(np.abs(self.base[rows]), np.abs(np.real(values)))
        bound: Array = model + noise + self.base_noise[rows] + self.noise[rows]
        return bound


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
        parts: list[tuple[Array, Array]] = []
        groups: list[Array] = []
        for u in range(len(unique)):
            members = order[bounds[u] : bounds[u + 1]]
            first = members[0]
            g = int(columns.group[c[first]])
            if columns.directions is not None:
                step = steps[first]
                parts.append((np.arange(size), step * columns.directions[c[first]]))
            else:
                assert columns.entry is not None
                in_group = members_of[starts[g] : starts[g + 1]]
                s = ratio[first] * h[in_group]
                s[position[c[members]]] = np.imag(steps[members]) if imaginary else steps[members]
                parts.append((columns.entry[in_group], 1j * s if imaginary else s))
            groups.append(members)
        values, noise = fn.moved(Moves.groups(name, parts))
        for u, members in enumerate(groups):
            change[members] = values[u, r[members]] - fn.base[r[members]]
            roundoff[members] = fn.roundoff(r[members], values[u, r[members]], noise[u, r[members]])
        return Evaluation(change, roundoff, None)

    return evaluate


def measure_output_noise(fn: VectorFunction, name: str, rows: Array, rng: np.random.Generator) -> Array:
    """Each output's noise in ``rows``, measured along one random direction of the
    input (``numerics.noise.measure_noise``, per output)."""
    x = fn.params[name].reshape(-1)
    v = rng.standard_normal(x.size)
    v /= np.linalg.norm(v)
    magnitude = max(1.0, float(np.max(np.abs(x), initial=0.0)))
    smallest = 64 * float(np.spacing(magnitude))
    spacings = sorted({max(smallest, 1e-6 * magnitude), max(smallest, 1e-9 * magnitude), max(smallest, 1e-6)})
    found = np.full((len(spacings), rows.size), np.inf)
    for k, s in enumerate(spacings):
        values, _ = fn.moved(Moves.dense(name, np.array([i * s * v for i in range(1, 11)]), kind="columns"))
        runs = np.real(values[:, rows])
        assert runs.shape[0] == NOISE_POINTS
        for j in range(rows.size):
            column = runs[:, j] - fn.base[rows[j]]
            if np.all(np.isfinite(column)):
                sigma = noise_from_differences(column)
                if sigma is not None and sigma > 0:
                    found[k, j] = sigma
    best = found.min(axis=0)
    noise: Array = np.where(np.isfinite(best), NOISE_SAFETY * best, 0.0)
    return noise
