"""Orchestration for every derivative besides a loss's gradient: a layer's backward
pass (VJP), forward-mode products (JVP), Jacobians, Hessians and Hessian-vector
products.  One ``Report`` type for all.

A VJP is the gradient of the scalar ``<dout, F(x)>``: it goes through
``check_gradients`` whole.  The others compare arrays of derivatives of a vector
function entry by entry: each input's entries are measured as a batch
(``vector.column_evaluator``), by one step first and the adaptive ladder where
that does not settle them (as for a black-box loss), and judged by the same pass
rule.  A Hessian is the Jacobian of the gradient: of the user's gradient when
given, else of a central-difference gradient of the loss (second differences).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.errors import BadValueError, GradcheckError, InputError, option_ref
from ..core.estimates import (
    EPS64,
    Derivatives,
    Evaluate,
    Evaluation,
    TaylorResult,
)
from ..core.indexing import entry_index, format_index
from ..core.methods import CENTRAL, Method
from ..core.options import (
    Execution,
    Settings,
)
from ..core.result import ParameterResult, Report
from ..core.rule import PassRule
from ..execution.evaluation import Noisy, numeric_array, plain_numbers
from ..execution.usercode import call_user
from ..execution.workers import Runner, guard
from ..insight.diagnosis import diagnose
from ..numerics.differences import subset
from ..numerics.screen import SCREEN_SAMPLE
from ..numerics.steps import LOSS_ROUNDOFF, absolute_steps, loss_roundoff
from ..numerics.taylor import curvature_test
from ..probes.vector import (
    Columns,
    VectorFunction,
    column_evaluator,
    direction_columns,
    measure_output_noise,
    unit_columns,
)
from .frontend import (
    api,
    as_params,
    called_by_name,
    normalise_gradients,
    opened_runner,
    shape_text,
    split_options,
    unit_directions,
)
from .gradient import check_gradients
from .pipeline import NOISE_EVALUATIONS, How, ProgressSink, Row, judged, measure, measure_each, taylor

Array = npt.NDArray[Any]
Params = dict[str, Array]

DOUT_STREAM = 1  # dout is drawn from default_rng([seed, DOUT_STREAM])


# ---- analytic Jacobian blocks ----------------------------------------------------------------


@dataclass
class Block:
    """One analytic Jacobian block ``d out / d input`` as ``(out.size, input.size)``:
    a dense array, or the entries of a sparse matrix (anything with ``tocoo()``)."""

    shape: tuple[int, int]
    dense: Array | None = None
    coo: tuple[Array, Array, Array] | None = None

    def at(self, rows: Array, cols: Array) -> Array:
        if self.dense is not None:
            values: Array = self.dense[rows, cols]
            return values
        assert self.coo is not None
        r, c, v = self.coo
        n = self.shape[1]
        keys = r.astype(np.int64) * n + c
        order = np.argsort(keys, kind="stable")
        keys, v = keys[order], v[order]
        wanted = rows.astype(np.int64) * n + cols
        where = np.clip(np.searchsorted(keys, wanted), 0, max(0, keys.size - 1))
        found = (keys.size > 0) & (keys[where] == wanted) if keys.size else np.zeros(wanted.size, bool)
        return np.where(found, v[where] if keys.size else 0.0, 0.0)

    def nonzero_outside(self, mask: Array) -> tuple[Array, Array, Array]:
        """Entries that are non-zero where ``mask`` (a sparsity pattern) says zero."""
        if self.dense is not None:
            if np.count_nonzero(self.dense) == np.count_nonzero(self.dense[mask]):
                empty = np.zeros(0, dtype=np.int64)
                return empty, empty.copy(), np.zeros(0)
            r, c = np.nonzero((self.dense != 0) & ~mask)
            return r, c, self.dense[r, c]
        assert self.coo is not None
        r, c, v = self.coo
        outside = (v != 0) & ~mask[r, c]
        return r[outside], c[outside], v[outside]

    def matvec(self, v: Array) -> Array:
        if self.dense is not None:
            product: Array = self.dense @ v
            return product
        assert self.coo is not None
        r, c, values = self.coo
        out = np.zeros(self.shape[0])
        np.add.at(out, r, values * v[c])
        return out


def _block(raw: Any, out_shape: tuple[int, ...], in_name: str, in_shape: tuple[int, ...], where: str) -> Block:
    m, n = int(np.prod(out_shape, dtype=np.int64)), int(np.prod(in_shape, dtype=np.int64))
    layouts = f"({m}, {n}) (output size, {in_name} size)"
    if out_shape + in_shape != (m, n):
        layouts += f" or {shape_text(out_shape + in_shape)} (output shape + {in_name} shape)"
    if hasattr(raw, "tocoo") and not isinstance(raw, np.ndarray):
        try:
            coo = raw.tocoo()
            rows, cols, values = (np.asarray(coo.row), np.asarray(coo.col), np.asarray(coo.data, dtype=np.float64))
        except Exception:
            raise BadValueError(f"{where}: {in_name} is a sparse matrix that cannot be read; return an array") from None
        if tuple(coo.shape) != (m, n):
            raise BadValueError(f"{where}: {in_name} has shape {shape_text(tuple(coo.shape))}; expected {layouts}")
        _finite(values, where, in_name, lambda k: f"[{int(rows[k])}, {int(cols[k])}]")
        return Block((m, n), coo=(rows, cols, values))
    try:
        array = np.asarray(plain_numbers(raw, where, f"for {in_name}"))
    except GradcheckError:
        raise
    except Exception:
        array = np.asarray(None)
    if array.dtype.kind not in "fiu":
        raise BadValueError(f"{where}: {in_name} is {type(raw).__name__}; expected a real array of {layouts}")
    if array.shape not in ((m, n), out_shape + in_shape):
        hint = "; it looks transposed: rows are outputs, columns inputs" if array.shape == (n, m) else ""
        raise BadValueError(f"{where}: {in_name} has shape {shape_text(array.shape)}; expected {layouts}{hint}")
    dense = np.asarray(array, dtype=np.float64).reshape(m, n)
    if not np.isfinite(np.sum(dense)):  # a fast pass first: the sum of finite values is finite
        _finite(dense.reshape(-1), where, in_name, lambda k: format_index((m, n), k))
    return Block((m, n), dense=dense)


def _finite(values: Array, where: str, name: str, label: Callable[[int], str]) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise BadValueError(f"{where}: {name} is {values[k]} at {label(k)}; derivatives must be finite")


def _per_input(raw: Any, names: list[str], where: str, what: str) -> dict[str, Any]:
    """A dict by input name, or a tuple in input order (one input: the value alone)."""
    if isinstance(raw, Mapping):
        missing = [n for n in names if n not in raw]
        extra = [str(k) for k in raw if k not in names]
        if missing or extra:
            problem = f"no entry for {', '.join(missing)}" if missing else f"unknown keys {', '.join(extra)}"
            raise BadValueError(f"{where} returned {problem}; expected one {what} per input: {', '.join(names)}")
        return {n: raw[n] for n in names}
    if isinstance(raw, (tuple, list)):
        if len(raw) != len(names):
            raise BadValueError(
                f"{where} returned {len(raw)} arrays; expected {len(names)}, one {what} per input ({', '.join(names)})"
            )
        return dict(zip(names, raw, strict=True))
    if len(names) == 1:
        return {names[0]: raw}
    raise BadValueError(
        f"{where} returned one {type(raw).__name__}; expected one {what} per input ({', '.join(names)}) "
        f"as a dict or a tuple"
    )


# ---- measuring a batch of entries ------------------------------------------------------------


@dataclass
class _Batch:
    """One input's entries of a derivative array, measured, not yet judged."""

    input_name: str
    rows: Array  # output entry (flat over every output)
    cols: Array  # column: input entry, or direction number
    analytic: Array
    derivatives: Derivatives
    evaluations: int
    directions: bool  # columns are directions (JVP, HVP, directional mode)
    taylor: dict[str, TaylorResult] = field(default_factory=dict)  # by output block
    outside: int = 0  # trailing entries that are outside a declared sparsity pattern


def _measure(
    fn: VectorFunction,
    name: str,
    columns: Columns,
    rows: Array,
    cols: Array,
    analytic: Array,
    plan: How,
    rng: np.random.Generator,
) -> Derivatives:
    """The numerical values of the entries ``(rows, cols)``, by the one pipeline."""
    entries = _Entries(fn, name, columns, rows, cols, np.dtype(plan.settings.dtype), fn.output_eps)
    return measure(entries, analytic, plan, rng).derivatives


@dataclass
class _Entries:
    """The entries ``(rows[k], cols[k])`` of one input's derivative array (output row,
    input column or direction), as the pipeline measures them: columns of one group
    share an evaluation, and noise is measured per output."""

    fn: VectorFunction
    name: str
    columns: Columns
    rows: Array
    cols: Array
    dtype: np.dtype[Any]
    output_eps: float
    both_sides: bool = False  # the screen's second look: one evaluation of a column group

    @property
    def directions(self) -> bool:
        return self.columns.directions is not None

    def at_step(self, rel: float, method: Method) -> tuple[Evaluate, Array]:
        x = self.fn.params[self.name].reshape(-1)
        if self.columns.directions is not None:
            magnitudes = np.full(self.columns.count, float(np.max(np.abs(x), initial=0.0)))
        else:
            assert self.columns.entry is not None
            magnitudes = x[self.columns.entry]
        h = absolute_steps(magnitudes, rel, method, self.dtype)
        return column_evaluator(self.fn, self.name, self.columns, self.rows, self.cols, h), h[self.cols]

    def noise(self, pending: Array, rng: np.random.Generator) -> tuple[float, float]:
        """Each involved output's noise, measured and added to its round-off model (so
        the ladder adds none of its own)."""
        fn, involved = self.fn, np.unique(self.rows[pending])
        fn.noise[involved] = np.maximum(fn.noise[involved], measure_output_noise(fn, self.name, involved, rng))
        return 0.0, self.output_eps

    def require_deterministic(self) -> None:
        _require_deterministic(self.fn)

    def screen_sample(self, rng: np.random.Generator) -> Array | None:
        """One column group's entries: their second look moves that group once."""
        groups = self.columns.group[self.cols]
        chosen = groups == groups[rng.integers(len(groups))] if len(groups) else groups.astype(bool)
        sample = np.flatnonzero(chosen)
        if sample.size > SCREEN_SAMPLE:
            sample = np.sort(rng.choice(sample, size=SCREEN_SAMPLE, replace=False))
        return sample


def _scalar_taylor(fn: VectorFunction, name: str, v: Array, weights: Array, slope: float, plan: How) -> TaylorResult:
    """The Taylor test of ``<weights, F>`` along the input direction ``v``."""
    x = fn.params[name].reshape(-1)

    def along(steps: Array) -> Evaluation:
        change, roundoff = np.empty(len(steps)), np.empty(len(steps))
        rows = np.arange(fn.size)
        for k, s in enumerate(steps):
            values, noise = fn.at(name, s * v, f"with {name} moved along a direction")
            change[k] = float(weights @ (np.real(values) - fn.base))
            roundoff[k] = float(np.abs(weights) @ fn.roundoff(rows, values, noise))
        return Evaluation(change, roundoff, None)

    return taylor(along, slope, abs(slope), x, plan.rule)


# ---- judging and the report ------------------------------------------------------------------


RowName = Callable[[str, str], str]  # (output block, input) -> row name


def _results(
    batches: list[_Batch],
    fn: VectorFunction,
    plan: How,
    row_name: RowName,
    shapes: Mapping[str, tuple[int, ...]],
    where: str,
) -> list[ParameterResult]:
    """Every batch cut into one row per (output block, input), judged together."""
    rows: list[Row] = []
    for b in batches:
        for block_name, out_shape, block in fn.blocks():
            keep = np.flatnonzero((b.rows >= block.start) & (b.rows < block.stop))
            if keep.size == 0:
                continue
            local = b.rows[keep] - block.start
            out_size = block.stop - block.start
            in_shape = shapes[b.input_name]
            if b.directions:
                shape: tuple[int, ...] = (int(b.cols.max(initial=0)) + 1, *out_shape)
                positions = b.cols[keep] * out_size + local
            else:
                shape = out_shape + in_shape
                positions = local * int(np.prod(in_shape, dtype=np.int64)) + b.cols[keep]
            notes = []
            outside = keep[keep >= len(b.rows) - b.outside] if b.outside else keep[:0]
            if outside.size:
                first = entry_index(shape, int(positions[np.searchsorted(keep, outside[0])]))
                notes.append(
                    f"{outside.size} entries of {where} are non-zero outside the declared sparsity (first at "
                    f"{first}); the pattern says they are structurally zero"
                )
            name = row_name(block_name, b.input_name)
            d, analytic = subset(b.derivatives, keep), b.analytic[keep]
            rows.append(
                Row(name, shape, "entries", positions, analytic, d, b.taylor.get(block_name), b.evaluations, notes)
            )
    results = judged(rows, plan.rule)
    diagnose(results)
    return results


def _execution(
    settings: Settings | None, options: dict[str, Any]
) -> tuple[Settings, Execution, Runner | None, tuple[str, ...]]:
    """A check's ``options`` read: its settings, where it runs, a runner already open
    (a check inside a check), and the files that define it."""
    runner = options.pop("_runner", None)
    sources = options.pop("_sources", ())
    chosen, run = split_options(settings, options.pop("execution", None), options)
    return chosen, run, runner, tuple(sources)


def _plan(chosen: Settings, relative_step: float | None = None) -> How:
    return How.of(chosen, black_box=True, user_step=chosen.eps is not None, relative_step=relative_step)


def _require_deterministic(fn: VectorFunction) -> None:
    """Two calls at the same point must agree (once per function)."""
    if fn.verified:
        return
    fn.verified = True
    again = fn.again()
    differ = again != fn.base
    if differ.any():
        k = int(np.flatnonzero(differ)[0])
        raise BadValueError(
            f"{fn.where} is not deterministic: two calls at the same point differ at output entry {k} "
            f"({fn.base[k]!r} and {again[k]!r}); seed its randomness so equal inputs give equal outputs"
        )


def _begin(chosen: Settings, inputs: Mapping[str, Any]) -> tuple[How, float, Params, Params, Params]:
    """What every vector check starts from: its plan, the clock, the inputs as
    float64 arrays, in the check's dtype (for the analytic side), and the same
    values in float64 (for the numerical side)."""
    plan = _plan(chosen)
    start = time.perf_counter()
    params = as_params(inputs)
    dtype = np.dtype(plan.settings.dtype)
    typed = {k: v.astype(dtype) for k, v in params.items()}
    return plan, start, params, typed, {k: v.astype(np.float64) for k, v in typed.items()}


def _run(
    inputs: list[str],
    measure_one: Callable[[str], _Batch],
    progress: ProgressSink | None,
    fn: VectorFunction,
    per_input: Callable[[str], int],
    finish: Callable[[list[_Batch], list[str]], Report],
    run: Execution,
) -> Report:
    """Measure every input in turn and build the report; Ctrl-C keeps what finished
    (the caller shows it, marked incomplete, and exits 130).  The time guard first:
    ``per_input`` evaluations of each input, and the noise measured once per input."""
    planned = sum(per_input(q) + NOISE_EVALUATIONS for q in inputs)
    guard(fn.runner.forecast(planned), run.max_seconds, run.force, progress)
    if progress is not None:
        fn.progress = progress.advance
    return measure_each(inputs, measure_one, progress, per_input, finish)


# ---- Jacobians -------------------------------------------------------------------------------


def _entries(
    pattern: tuple[Array, Array] | None, m: int, n: int, settings: Settings, rng: np.random.Generator
) -> tuple[Array, Array]:
    """The (row, column) entries a full or sampled check compares: the pattern's, or all."""
    if pattern is None:
        rows, cols = np.repeat(np.arange(m), n), np.tile(np.arange(n), m)
    else:
        rows, cols = pattern
    if settings.mode == "sample" and settings.samples < rows.size:
        pick = np.sort(rng.choice(rows.size, size=settings.samples, replace=False))
        rows, cols = rows[pick], cols[pick]
    return rows, cols


def _masks(
    sparsity: Mapping[str, Any] | None, names: list[str], m: int, out_shape: tuple[int, ...], params: Params
) -> dict[str, Array]:
    if sparsity is None:
        return {}
    masks: dict[str, Array] = {}
    unknown = [str(k) for k in sparsity if k not in names]
    if unknown:
        raise InputError(
            f"the sparsity names {', '.join(unknown)}, which is no input; the inputs are {', '.join(names)}",
            option="sparsity",
        )
    for name, raw in sparsity.items():
        array = np.asarray(raw.toarray() if hasattr(raw, "toarray") else raw)
        n = params[name].size
        if array.shape not in ((m, n), out_shape + params[name].shape):
            expected = f"({m}, {n}) or {shape_text(out_shape + params[name].shape)}"
            raise InputError(
                f"the sparsity of {name} has shape {shape_text(array.shape)}; expected {expected} "
                f"(output x {name}, True where the entry may be non-zero)",
                option="sparsity",
            )
        if array.dtype.kind not in "biuf":
            raise InputError(f"the sparsity of {name} is {array.dtype}; give a boolean mask", option="sparsity")
        masks[name] = array.reshape(m, n) if array.dtype == bool else array.reshape(m, n) != 0
    return masks


@api
def check_jacobian(
    function: Callable[[Params], Any],
    jacobian: Callable[[Params], Any],
    inputs: Mapping[str, Any],
    settings: Settings | None = None,
    *,
    data: Mapping[str, Any] | None = None,
    const: Mapping[str, Any] | None = None,
    sparsity: Mapping[str, Any] | None = None,
    progress: ProgressSink | None = None,
    name: str = "",
    function_name: str = "function",
    jacobian_name: str = "jacobian",
    title: str = "Jacobian check",
    model: dict[str, Any] | None = None,
    **options: Any,
) -> Report:
    """Check ``jacobian(inputs)`` against finite differences of ``function(inputs)``.

    ``function`` returns one array (any shape); ``jacobian`` one block per input (a
    dict, a tuple in input order, or the block alone for one input), each
    ``(out.size, input.size)`` or ``out.shape + input.shape``, dense or sparse
    (anything with ``tocoo()``).  ``sparsity`` maps an input to a boolean mask of
    the same layout: columns that share no output are evaluated together, and
    entries outside the mask are taken as structurally zero (a non-zero analytic
    value there fails).  Settings as for ``check_gradients`` (keywords or a
    ``Settings``); ``directional`` mode compares ``J v`` for random ``v``.
    """
    called = called_by_name({"function": function, "jacobian": jacobian}, inputs, data, const)
    function, jacobian = called["function"], called["jacobian"]
    chosen, run, given_runner, sources = _execution(settings, options)
    plan, start, params, typed, reference = _begin(chosen, inputs)
    with opened_runner(
        run, given_runner, sources, (title, model, function_name, jacobian_name, plan.settings), reference
    ) as runner:
        settings, names = plan.settings, list(params)
        fn = VectorFunction(function, reference, function_name, runner=runner)
        out_shape = fn.layout[0][1]
        m = fn.size
        raw = call_user(jacobian_name, jacobian, {k: v.copy() for k, v in typed.items()})
        blocks = {
            n: _block(b, out_shape, n, params[n].shape, jacobian_name)
            for n, b in _per_input(raw, names, jacobian_name, "Jacobian block").items()
        }
        masks = _masks(sparsity, names, m, out_shape, params)
        rng = np.random.default_rng(settings.seed)
        pick_rng, direction_rng, taylor_rng, noise_rng = rng.spawn(4)

        def measure_one(q: str) -> _Batch:
            before = fn.evaluations
            n = params[q].size
            block = blocks[q]
            mask = masks.get(q)
            if settings.mode == "directional":
                V = unit_directions(settings.directions, n, direction_rng)
                rows = np.tile(np.arange(m), len(V))
                cols = np.repeat(np.arange(len(V)), m)
                analytic = np.concatenate([block.matvec(v) for v in V])
                columns = direction_columns(V)
            else:
                pattern: tuple[Array, Array] | None = None
                if mask is not None:
                    pattern_rows, pattern_cols = np.nonzero(mask)
                    pattern = (pattern_rows, pattern_cols)
                rows, cols = _entries(pattern, m, n, settings, pick_rng)
                analytic = block.at(rows, cols)
                columns = unit_columns(n, pattern)
            d = _measure(fn, q, columns, rows, cols, analytic, plan, noise_rng)
            batch = _Batch(q, rows, cols, analytic, d, 0, settings.mode == "directional")
            if mask is not None and settings.mode == "full":
                _append_outside(batch, block, mask)
            if settings.taylor:
                v = unit_directions(1, n, taylor_rng)[0]
                w = taylor_rng.standard_normal(m)
                batch.taylor["out"] = _scalar_taylor(fn, q, v, w, float(w @ block.matvec(v)), plan)
            batch.evaluations = fn.evaluations - before
            return batch

        def per_input(q: str) -> int:
            return 2 * params[q].size

        def finish(batches: list[_Batch], unchecked: list[str]) -> Report:
            shapes = {n: params[n].shape for n in names}
            results = _results(batches, fn, plan, lambda _out, q: q, shapes, jacobian_name)
            return _report(title, model, settings, results, start, fn, name, "function", unchecked=unchecked)

        return _run(names, measure_one, progress, fn, per_input, finish, run)


def _append_outside(batch: _Batch, block: Block, mask: Array) -> None:
    """Entries the user's Jacobian has non-zero where the pattern declares zero: their
    numerical value is zero by that declaration."""
    r, c, v = block.nonzero_outside(mask)
    if r.size == 0:
        return
    d = batch.derivatives
    k = r.size
    nan = np.full(k, np.nan)
    extra = Derivatives(np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k, bool), nan, nan.copy())
    assert d.truncation is not None and d.flags is not None and d.jumps is not None
    assert extra.truncation is not None and extra.flags is not None and extra.jumps is not None
    fields = ("values", "steps", "noise", "kinks", "lower", "upper", "truncation", "flags", "jumps")
    joined = [np.concatenate([getattr(d, f), getattr(extra, f)]) for f in fields]
    values, steps, noise, kinks, lower, upper, truncation, flags, jumps = joined
    batch.derivatives = Derivatives(values, steps, noise, kinks, lower, upper, truncation, flags, jumps)
    batch.rows, batch.cols = np.concatenate([batch.rows, r]), np.concatenate([batch.cols, c])
    batch.analytic = np.concatenate([batch.analytic, v])
    batch.outside = k


def _report(
    title: str,
    model: dict[str, Any] | None,
    settings: Settings,
    results: list[ParameterResult],
    start: float,
    fn: VectorFunction | None,
    name: str,
    evaluated: str,
    notes: Sequence[str] = (),
    evaluations: int | None = None,
    unchecked: Sequence[str] = (),
) -> Report:
    count = evaluations if evaluations is not None else (fn.evaluations if fn is not None else 0)
    resumed = fn.runner.resumed() if fn is not None else None
    return Report(
        title,
        model or {},
        settings,
        results,
        time.perf_counter() - start,
        count,
        name=name,
        unchecked=list(unchecked),
        notes=[*notes, *([resumed] if resumed else [])],
        evaluated=evaluated,
    )


# ---- forward mode (JVP) ----------------------------------------------------------------------


@api
def check_jvp(
    function: Callable[[Params], Any],
    tangent: Callable[[Params, Params], Any],
    inputs: Mapping[str, Any],
    settings: Settings | None = None,
    *,
    data: Mapping[str, Any] | None = None,
    const: Mapping[str, Any] | None = None,
    progress: ProgressSink | None = None,
    name: str = "",
    function_name: str = "function",
    tangent_name: str = "tangent",
    title: str = "JVP check",
    model: dict[str, Any] | None = None,
    **options: Any,
) -> Report:
    """Check ``tangent(tangents, inputs)``, the directional derivative of
    ``function(inputs)`` (one array, or a layer's ``(out, cache)``), along
    ``directions`` random unit tangents per input (the other inputs' tangents
    zero), output entry by output entry."""
    called = called_by_name({"function": function, "tangent": tangent}, inputs, data, const)
    function, tangent = called["function"], called["tangent"]
    chosen, run, given_runner, sources = _execution(settings, options)
    plan, start, params, typed, reference = _begin(chosen, inputs)
    with opened_runner(
        run, given_runner, sources, (title, model, function_name, tangent_name, plan.settings), reference
    ) as runner:
        settings, names = plan.settings, list(params)
        fn = VectorFunction(_LayerOutput(function), reference, function_name, runner=runner)
        out_shape = fn.layout[0][1]
        m = fn.size
        rng = np.random.default_rng(settings.seed)
        direction_rng, noise_rng = rng.spawn(2)

        def measure_one(q: str) -> _Batch:
            before = fn.evaluations
            V = unit_directions(settings.directions, params[q].size, direction_rng)
            products = []
            for v in V:
                tangents = {k: np.zeros_like(t) for k, t in typed.items()}
                tangents[q] = v.reshape(params[q].shape).astype(typed[q].dtype)
                raw = call_user(tangent_name, tangent, tangents, {k: t.copy() for k, t in typed.items()})
                products.append(_product(raw, out_shape, tangent_name, "the output"))
            rows = np.tile(np.arange(m), len(V))
            cols = np.repeat(np.arange(len(V)), m)
            analytic = np.concatenate(products)
            d = _measure(fn, q, direction_columns(V), rows, cols, analytic, plan, noise_rng)
            batch = _Batch(q, rows, cols, analytic, d, 0, True)
            if settings.taylor:  # along the first tangent, outputs weighted at random
                w = noise_rng.standard_normal(m)
                batch.taylor["out"] = _scalar_taylor(fn, q, V[0], w, float(w @ products[0]), plan)
            batch.evaluations = fn.evaluations - before
            return batch

        def finish(batches: list[_Batch], unchecked: list[str]) -> Report:
            shapes = {n: params[n].shape for n in names}
            results = _results(batches, fn, plan, lambda _out, q: f"J·v[{q}]", shapes, tangent_name)
            return _report(title, model, settings, results, start, fn, name, "function", unchecked=unchecked)

        return _run(names, measure_one, progress, fn, lambda q: 2 * settings.directions, finish, run)


def _layer_output(raw: Any) -> Any:
    """A layer's output: its forward may return ``(out, cache)``."""
    return raw[0] if isinstance(raw, tuple) and len(raw) == 2 else raw


def _product(raw: Any, shape: tuple[int, ...], where: str, what: str) -> Array:
    try:
        array = np.asarray(plain_numbers(raw, where, f"for {what}"), dtype=np.float64)
    except GradcheckError:
        raise
    except Exception:
        raise BadValueError(f"{where} returned {type(raw).__name__}; expected an array shaped like {what}") from None
    if array.shape != shape:
        raise BadValueError(
            f"{where} returned shape {shape_text(array.shape)}; expected {shape_text(shape)} (the shape of {what})"
        )
    _finite(array.reshape(-1), where, "the product", lambda k: format_index(shape, k))
    flat: Array = array.reshape(-1)
    return flat


# ---- layer backward passes (VJP) -------------------------------------------------------------


@api
def check_vjp(
    forward: Callable[[Params], Any],
    backward: Callable[[Any, Any, Params], Any],
    inputs: Mapping[str, Any],
    settings: Settings | None = None,
    *,
    data: Mapping[str, Any] | None = None,
    const: Mapping[str, Any] | None = None,
    dout: Any = None,
    progress: ProgressSink | None = None,
    name: str = "",
    forward_name: str = "forward",
    backward_name: str = "backward",
    title: str = "VJP check",
    model: dict[str, Any] | None = None,
    **options: Any,
) -> Report:
    """Check a layer's backward pass: ``backward(dout, cache, inputs)`` against the
    gradient of ``<dout, out>`` where ``forward(inputs)`` returns ``out`` or
    ``(out, cache)`` (``cache`` is None when it returns ``out`` alone); a forward of
    several outputs returns ``(out1, out2, ..., cache)`` and ``dout`` is then the
    tuple of their upstream gradients.  The backward returns one gradient per input
    (dict, or tuple in input order).
    ``dout`` is drawn from ``seed`` (standard normal) unless given."""
    called = called_by_name({"forward": forward, "backward": backward}, inputs, data, const)
    forward, backward = called["forward"], called["backward"]
    chosen, run, given_runner, sources = _execution(settings, options)
    params = as_params(inputs)
    resolved = chosen.resolved()
    outs, _ = _forward(forward, params, forward_name, "at the starting point")
    if dout is None:
        # A stream of its own: the parameters drawn from the same seed must not be dout.
        rng = np.random.default_rng([resolved.seed, DOUT_STREAM])
        upstream = tuple(rng.standard_normal(out.shape) for out in outs)
    else:
        upstream = (np.asarray(dout, dtype=np.float64),)
        if len(outs) > 1 or upstream[0].shape != outs[0].shape:
            shapes = " and ".join(shape_text(out.shape) for out in outs)
            raise InputError(
                f"dout has shape {shape_text(upstream[0].shape)}; it must have the output's shape {shapes}"
                + (" (one dout for a forward of one output; several are drawn from the seed)" if len(outs) > 1 else ""),
                option="dout",
            )
    dtype = np.dtype(resolved.dtype)
    loss = _Contracted(forward, upstream, forward_name)

    def gradients(p: Params) -> Any:
        _, cache = _forward(forward, p, forward_name, "at the starting point")
        # Copies: a backward may write into its dout (CS231n's relu_backward does).
        douts = tuple(d.astype(dtype) for d in upstream)
        return backward(douts[0] if len(douts) == 1 else douts, cache, p)

    return check_gradients(
        loss,
        gradients,
        params,
        chosen,
        progress=progress,
        title=title,
        model=model,
        name=name,
        loss_name=f"<dout, {forward_name}>",
        grad_name=backward_name,
        execution=run,
        _runner=given_runner,
        _sources=sources,
    )


class _Contracted:
    """``<dout, forward(params)>``: the scalar whose gradient a VJP is (a class, not a
    closure, so that worker processes can receive it)."""

    def __init__(self, forward: Callable[[Params], Any], dout: tuple[Array, ...], where: str) -> None:
        self.forward, self.dout, self.where = forward, dout, where

    def __call__(self, params: Params) -> Any:
        values, _ = _forward(self.forward, params, self.where, "at a moved point")
        return sum(np.sum(d * v) for d, v in zip(self.dout, values, strict=True))


class _LayerOutput:
    """A function's output alone, when it returns ``(out, cache)`` like a layer."""

    def __init__(self, function: Callable[[Params], Any]) -> None:
        self.function = function

    def __call__(self, params: Params) -> Any:
        return _layer_output(self.function(params))


class _GradientOutputs:
    """A gradient's value as named arrays, one per parameter (complex under a complex step)."""

    def __init__(self, reference: Params) -> None:
        self.reference = reference

    def __call__(self, raw: Any, where: str) -> dict[str, Array]:
        return normalise_gradients(raw, self.reference, where, complex_ok=True)


def _forward(
    forward: Callable[[Params], Any], params: Params, where: str, context: str
) -> tuple[tuple[Array, ...], Any]:
    """``(outputs, cache)`` of a layer's forward, which returns ``out``, ``(out, cache)``
    or, for a layer of several outputs, ``(out1, out2, ..., cache)`` (an LSTM step's
    ``(next_h, next_c, cache)``)."""
    raw = call_user(where, forward, params)
    outs, cache = ((raw[:-1], raw[-1]) if len(raw) >= 2 else (raw, None)) if isinstance(raw, tuple) else ((raw,), None)
    arrays = []
    for out in outs:
        array = numeric_array(out)
        if array is None:
            raise BadValueError(
                f"{where} returned {type(out).__name__} {context}; a forward returns an array, (array, cache), or "
                f"(array, array, ..., cache)"
            )
        if array.ndim == 0:
            raise BadValueError(
                f"{where} returned a scalar {context}; {option_ref('vjp')} checks a layer whose forward returns an "
                f"array (for a scalar loss use {option_ref('grad')})"
            )
        arrays.append(array)
    return tuple(arrays), cache


# ---- second order ----------------------------------------------------------------------------


class NumericalGradient:
    """The gradient of ``loss`` by central differences at step ``EPS^(1/4) max(1, |x|)``
    (the step that balances a second difference's truncation against its
    round-off), with its round-off bound: what a Hessian is taken of when no
    analytic gradient is given."""

    def __init__(self, loss: Callable[[Params], Any], where: str, params: Params) -> None:
        self._loss, self._where = loss, where
        self.rel = float(EPS64**0.25)
        self.steps = {k: absolute_steps(v.reshape(-1), self.rel, CENTRAL) for k, v in params.items()}
        self.per_call = 2 * sum(x.size for x in params.values())  # loss evaluations in one gradient

    def _value(self, params: Params) -> complex:
        raw = plain_numbers(call_user(self._where, self._loss, params), self._where, "in second differences")
        return complex(np.asarray(raw).reshape(()).item()) if np.iscomplexobj(raw) else float(raw)  # type: ignore[arg-type]

    def __call__(self, params: Params) -> Noisy:
        values: dict[str, Array] = {}
        noise: dict[str, Array] = {}
        for name, x in params.items():
            flat = x.reshape(-1)
            complex_input = any(np.iscomplexobj(v) for v in params.values())
            g = np.empty(flat.size, dtype=np.complex128 if complex_input else np.float64)
            bound = np.empty(flat.size)
            for i, h in enumerate(self.steps[name]):
                moved = dict(params)
                for sign, slot in ((1, 0), (-1, 1)):
                    work = flat.copy()
                    work[i] = work[i] + sign * h
                    moved[name] = work.reshape(x.shape)
                    if slot == 0:
                        plus = self._value(moved)
                    else:
                        minus = self._value(moved)
                g[i] = (plus - minus) / (2 * h)
                bound[i] = LOSS_ROUNDOFF * EPS64 * max(abs(plus), abs(minus)) / h
            values[name], noise[name] = g.reshape(x.shape), bound.reshape(x.shape)
        return Noisy(values, noise)


def _hessian_blocks(raw: Any, params: Params, where: str) -> dict[tuple[str, str], Block]:
    """A Hessian as blocks ``(p, q)``: nested dicts ``{p: {q: block}}``, a dict keyed by
    ``(p, q)``, or one array over every parameter's entries flattened and concatenated
    in parameter order (``(N, N)``; for one parameter also ``shape + shape``)."""
    names = list(params)
    sizes = {n: params[n].size for n in names}
    total = sum(sizes.values())
    out: dict[tuple[str, str], Any] = {}
    if isinstance(raw, Mapping) and raw and all(isinstance(k, tuple) for k in raw):
        for p in names:
            for q in names:
                if (p, q) in raw:
                    out[p, q] = plain_numbers(raw[p, q], where, f"for ({p!r}, {q!r})")
                elif (q, p) in raw:
                    out[p, q] = (
                        np.asarray(plain_numbers(raw[q, p], where, f"for ({q!r}, {p!r})")).reshape(sizes[q], sizes[p]).T
                    )
                else:
                    raise BadValueError(f"{where} returned no block ({p!r}, {q!r}) nor ({q!r}, {p!r})")
    elif isinstance(raw, Mapping):
        rows = _per_input(raw, names, where, "row of blocks")
        for p in names:
            row = rows[p]
            if not isinstance(row, Mapping):
                raise BadValueError(f"{where}[{p!r}] is {type(row).__name__}; expected a dict {{q: block}}")
            cols = _per_input(row, names, f"{where}[{p!r}]", "block")
            for q in names:
                out[p, q] = cols[q]
    else:
        try:
            array = np.asarray(plain_numbers(raw, where, "for the Hessian"), dtype=np.float64)
        except GradcheckError:
            raise
        except Exception:
            raise BadValueError(f"{where} returned {type(raw).__name__}; expected a Hessian array or dict") from None
        one = names[0]
        allowed = [(total, total)] + ([params[one].shape * 2] if len(names) == 1 else [])
        if array.shape not in allowed:
            layouts = " or ".join(shape_text(s) for s in allowed)
            raise BadValueError(
                f"{where} returned shape {shape_text(array.shape)}; expected {layouts} (every parameter's entries "
                f"flattened and concatenated in parameter order), or a dict of blocks"
            )
        array = array.reshape(total, total)
        offsets = np.cumsum([0, *sizes.values()])
        for a, p in enumerate(names):
            for b, q in enumerate(names):
                out[p, q] = array[offsets[a] : offsets[a + 1], offsets[b] : offsets[b + 1]]
    return {(p, q): _block(out[p, q], params[p].shape, q, params[q].shape, f"{where} block [{p}, {q}]") for p, q in out}


def _symmetry(blocks: Mapping[tuple[str, str], Block], rule: PassRule, where: str) -> str:
    """Whether a dense Hessian is symmetric, in words."""
    dense = [b.dense for b in blocks.values() if b.dense is not None]
    scale = max((float(np.max(np.abs(b), initial=0.0)) for b in dense), default=0.0)
    worst, at = 0.0, ""
    for (p, q), block in blocks.items():
        other = blocks.get((q, p))
        if block.dense is None or other is None or other.dense is None:
            return f"{where}: symmetry not measured (sparse blocks)"
        gap = np.abs(block.dense - other.dense.T)
        k = int(np.argmax(gap)) if gap.size else 0
        if gap.size and float(gap.reshape(-1)[k]) > worst:
            index = ", ".join(str(int(i)) for i in np.unravel_index(k, gap.shape))
            worst, at = float(gap.reshape(-1)[k]), f"H[{p},{q}][{index}]"
    if worst <= float(rule.limit(scale)):
        return f"{where} is symmetric (largest |H - Hᵀ| {worst:.3g}, largest |H| {scale:.3g})"
    return (
        f"{where} is not symmetric: |H - Hᵀ| reaches {worst:.3g} at {at} (largest |H| {scale:.3g}); "
        f"the Hessian of a twice-differentiable loss is symmetric, so at least one of the two entries is wrong"
    )


@api
def check_hessian(
    loss: Callable[[Params], Any] | None,
    params: Mapping[str, Any],
    settings: Settings | None = None,
    *,
    data: Mapping[str, Any] | None = None,
    const: Mapping[str, Any] | None = None,
    hessian: Callable[[Params], Any] | None = None,
    hvp: Callable[[Params, Params], Any] | None = None,
    gradient: Callable[[Params], Any] | None = None,
    progress: ProgressSink | None = None,
    name: str = "",
    loss_name: str = "loss",
    hessian_name: str = "hessian",
    gradient_name: str = "gradient",
    title: str = "Hessian check",
    model: dict[str, Any] | None = None,
    **options: Any,
) -> Report:
    """Check a Hessian (``hessian(params)``) or Hessian-vector product
    (``hvp(v, params)``, ``v`` a dict of arrays shaped like the parameters) against
    finite differences of ``gradient(params)`` when given (its own check comes
    first: a Hessian is only as good as the gradient it is checked against), else
    second differences of ``loss``.  A dense Hessian's symmetry is reported; with
    ``taylor`` each diagonal block gets the second-order Taylor test."""
    called = called_by_name({"loss": loss, "hessian": hessian, "hvp": hvp, "gradient": gradient}, params, data, const)
    loss, hessian, hvp, gradient = called["loss"], called["hessian"], called["hvp"], called["gradient"]
    if (hessian is None) == (hvp is None):
        raise InputError("give exactly one of hessian and hvp", option="hess")
    if loss is None and gradient is None:
        raise InputError("a Hessian check needs the loss or its gradient", option="grad")
    chosen, run, given_runner, sources = _execution(settings, options)
    plan, start, base, typed, reference = _begin(chosen, params)
    with opened_runner(
        run, given_runner, sources, (title, model, loss_name, hessian_name, gradient_name, plan.settings), reference
    ) as runner:
        settings, names = plan.settings, list(base)
        shapes = {n: base[n].shape for n in names}
        results: list[ParameterResult] = []
        evaluations = 0
        numerical_gradient: NumericalGradient | None = None
        if gradient is not None:
            if loss is not None:
                first = check_gradients(
                    loss,
                    gradient,
                    base,
                    settings,
                    loss_name=loss_name,
                    grad_name=gradient_name,
                    progress=progress,
                    execution=run,
                    _runner=runner,
                )
                results += first.parameters
                evaluations += first.evaluations

            fn = VectorFunction(gradient, reference, gradient_name, outputs=_GradientOutputs(reference), runner=runner)
        else:
            assert loss is not None
            numerical_gradient = NumericalGradient(loss, loss_name, reference)
            fn = VectorFunction(numerical_gradient, reference, f"second differences of {loss_name}", runner=runner)
            plan = replace(plan, relative_step=numerical_gradient.rel)
        blocks = (
            _hessian_blocks(
                call_user(hessian_name, hessian, {k: v.copy() for k, v in typed.items()}), base, hessian_name
            )
            if hessian is not None
            else {}
        )
        check = _HessianEntries(fn, plan, base, typed, reference, blocks, hvp, hessian_name)
        taylor_loss = loss if hessian is not None else None

        def measure_one(q: str) -> _Batch:
            before = fn.evaluations
            batch = check.measure(q)
            if settings.taylor:
                check.taylor(q, batch, taylor_loss)
            batch.evaluations = fn.evaluations - before
            return batch

        unit = "Hv" if hvp is not None else "H"
        where = hessian_name if hessian is not None else "hvp"

        def finish(batches: list[_Batch], unchecked: list[str]) -> Report:
            rows = results + _results(batches, fn, plan, lambda p, q: f"{unit}[{p},{q}]", shapes, where)
            notes = [_symmetry(blocks, plan.rule, hessian_name)] if hessian is not None else []
            if numerical_gradient is not None:
                count, evaluated = evaluations + fn.evaluations * numerical_gradient.per_call, "loss"
            else:
                count = evaluations + fn.evaluations
                evaluated = "gradient" if loss is None else "loss and gradient"
            return _report(title, model, settings, rows, start, None, name, evaluated, notes, count, unchecked)

        return _run(names, measure_one, progress, fn, lambda q: 2 * base[q].size, finish, run)


class _HessianEntries:
    """The entries a Hessian (or Hessian-vector) check compares for each parameter, and
    their Taylor tests: the front end's half of ``check_hessian``."""

    def __init__(
        self,
        fn: VectorFunction,
        plan: How,
        base: Params,
        typed: Params,
        reference: Params,
        blocks: dict[tuple[str, str], Block],
        hvp: Callable[[Params, Params], Any] | None,
        where: str,
    ) -> None:
        self.fn, self.plan, self.base, self.typed, self.reference = fn, plan, base, typed, reference
        self.blocks, self.hvp, self.where = blocks, hvp, where
        self.names = list(base)
        rng = np.random.default_rng(plan.settings.seed)
        self.direction_rng, self.noise_rng, self.taylor_rng, self.pick_rng = rng.spawn(4)

    def measure(self, q: str) -> _Batch:
        """Parameter ``q``'s column of the Hessian: entries, or products with directions."""
        fn, settings, n = self.fn, self.plan.settings, self.base[q].size
        if self.hvp is not None or settings.mode == "directional":
            V = unit_directions(settings.directions, n, self.direction_rng)
            cols = np.repeat(np.arange(len(V)), fn.size)
            rows = np.tile(np.arange(fn.size), len(V))
            if self.hvp is not None:
                analytic = np.concatenate([_hvp_product(self.hvp, v, q, self.typed, self.where) for v in V])
            else:
                products = [np.concatenate([self.blocks[p, q].matvec(v) for p in self.names]) for v in V]
                analytic = np.concatenate(products)
            columns, directions = direction_columns(V), True
        else:
            rows, cols = _entries(None, fn.size, n, settings, self.pick_rng)
            offsets = np.cumsum([0, *(self.base[p].size for p in self.names)])
            owner = np.searchsorted(offsets, rows, side="right") - 1
            analytic = np.empty(rows.size)
            for a, p in enumerate(self.names):
                here = owner == a
                analytic[here] = self.blocks[p, q].at(rows[here] - offsets[a], cols[here])
            columns, directions = unit_columns(n), False
        d = _measure(fn, q, columns, rows, cols, analytic, self.plan, self.noise_rng)
        return _Batch(q, rows, cols, analytic, d, 0, directions)

    def taylor(self, q: str, batch: _Batch, loss: Callable[[Params], Any] | None) -> None:
        """The second-order Taylor test of a dense Hessian's diagonal block (from the
        loss), or the first-order test of the gradient against the product."""
        if loss is not None:
            batch.taylor[q] = _curvature_taylor(loss, self.reference, q, self.blocks[q, q], self.plan, self.taylor_rng)
        elif self.hvp is not None:
            # The gradient along a random direction of q: G_q(x + h v) - G_q(x) - h (Hv)_q
            # leaves O(h^2) when the product is right (q's own outputs, weighted at random).
            fn, rng = self.fn, self.taylor_rng
            v = unit_directions(1, self.base[q].size, rng)[0]
            own = next(block for name_, _, block in fn.blocks() if name_ == q)
            w = np.zeros(fn.size)
            w[own] = rng.standard_normal(own.stop - own.start)
            slope = float(w @ _hvp_product(self.hvp, v, q, self.typed, self.where))
            batch.taylor[q] = _scalar_taylor(fn, q, v, w, slope, self.plan)


def _hvp_product(hvp: Callable[[Params, Params], Any], v: Array, q: str, typed: Params, where: str) -> Array:
    vectors = {k: np.zeros_like(t) for k, t in typed.items()}
    vectors[q] = v.reshape(typed[q].shape).astype(typed[q].dtype)
    raw = call_user(where, hvp, vectors, {k: t.copy() for k, t in typed.items()})
    product = normalise_gradients(raw, typed, where)
    return np.concatenate([np.asarray(product[p], dtype=np.float64).reshape(-1) for p in typed])


def _curvature_taylor(
    loss: Callable[[Params], Any], params: Params, q: str, block: Block, plan: How, rng: np.random.Generator
) -> TaylorResult:
    """The second-order Taylor test along a random direction of ``q``."""
    v = unit_directions(1, params[q].size, rng)[0]
    curvature = float(v @ block.matvec(v))
    x = params[q]

    def value(s: float) -> float:
        moved = dict(params)
        moved[q] = x + s * v.reshape(x.shape)
        return float(np.real(call_user("loss", loss, moved)))

    base = value(0.0)

    def along(steps: Array) -> Evaluation:
        plus = np.array([value(s) for s in steps])
        minus = np.array([value(-s) for s in steps])
        change = plus + minus - 2 * base
        roundoff = 4 * loss_roundoff(base, plus - base) + 4 * loss_roundoff(base, minus - base)
        return Evaluation(change, roundoff, None)

    tolerance = float(plan.rule.limit(abs(curvature)))
    h0 = 0.1 * max(1.0, float(np.max(np.abs(x), initial=0.0)))
    return curvature_test(along, curvature, tolerance, h0)
