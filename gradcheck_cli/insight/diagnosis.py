"""What a failing derivative looks like: a next step, not only a verdict.

Each pattern is tested with the pass rule itself: the analytic values against a
rearranged numerical side (negated, scaled, transposed, another parameter's), each
entry within its own limit.  A label is given only when every compared entry fits
it, so a random error gets none.  Patterns, in the order they are tried:

- ``kinks``: every failing entry sits at a kink (the rest pass): a value outside
  the one-sided slopes there;
- ``sign``: ``a = -n``;
- ``zero``: ``a = 0`` where ``n`` is not;
- ``factor``: ``a = c n`` for one constant ``c`` (named when it is 2, 1/2, m or
  1/m, ``m`` the batch size);
- ``transposed``: a square matrix (or a Jacobian block ``out.shape + in.shape`` with
  as many outputs as inputs) that matches ``n`` transposed;
- ``swapped``: ``a`` matches the numerical values of another parameter of the same
  shape;
- ``entry``, ``row``, ``column``: one entry, or the entries of one row or one
  column, wrong, and every other entry passes.

For a built-in model, ``match_zoo`` also names the mistake of the zoo whose
gradient the analytic one equals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.indexing import format_index
from ..core.result import ParameterResult
from ..models.base import Model
from ..models.mlp import MLP
from .zoo import MISTAKES, inject

Array = npt.NDArray[Any]


def _fits(analytic: Array, numerical: Array, allowed: Array) -> bool:
    with np.errstate(invalid="ignore"):
        return bool(analytic.size and np.all(np.abs(analytic - numerical) <= allowed))


def _looks_transposed(result: ParameterResult) -> bool:
    """A square block whose analytic entries match the numerical ones at the mirrored
    positions: every checked entry whose mirror was checked too (all of them, or the
    nonzeros of a symmetric sparsity pattern), at least two."""
    n = _square_side(result.shape)
    if result.coverage != "entries" or n < 2:
        return False
    index = {int(p): k for k, p in enumerate(result.positions)}
    mirror = np.array([index.get(int(p % n) * n + int(p // n), -1) for p in result.positions], dtype=np.int64)
    have = mirror >= 0
    if np.count_nonzero(have) < 2:
        return False
    limit = np.maximum(result.limit[have], result.limit[mirror[have]])
    return _fits(result.analytic[have], result.numerical[mirror[have]], limit)


def _square_side(shape: tuple[int, ...]) -> int:
    """``n`` when ``shape`` is an ``(n, n)`` matrix in some grouping of its axes (a
    Jacobian block ``out.shape + in.shape`` of a 2-D output with as many entries as
    its input), else 0."""
    for k in range(1, len(shape)):
        rows, cols = int(np.prod(shape[:k], dtype=np.int64)), int(np.prod(shape[k:], dtype=np.int64))
        if rows == cols:
            return rows
    return 0


def _named(c: float, batch: int | None) -> str:
    names = {2.0: "2", 0.5: "1/2"}
    if batch and batch > 2:
        names.update({float(batch): f"m = {batch}", 1.0 / batch: f"1/m = 1/{batch}"})
    for value, name in names.items():
        if abs(c - value) <= 1e-6 * abs(value):
            return name
    return f"{c:.4g}"


def _pattern(result: ParameterResult, others: Sequence[ParameterResult], batch: int | None) -> tuple[str, str] | None:
    a, n, limit = result.analytic, result.numerical, result.limit
    assert result.failed is not None
    failed = result.failed
    if result.kinks.any() and failed.any() and np.all(result.kinks[failed]):
        return "kinks", (
            f"the error is confined to entries at kinks ({int(failed.sum())}): a value outside the one-sided "
            f"slopes there; every other entry passes"
        )
    if np.max(np.abs(n), initial=0.0) == 0:
        return None
    if _fits(a, -n, limit):
        return "sign", "looks sign-flipped: it matches minus the numerical values"
    if _fits(a, np.zeros_like(a), limit):
        return "zero", "is zero where the numerical values are not: a term left out entirely"
    c = float(a @ n / (n @ n))
    if np.isfinite(c) and abs(c) > 0 and abs(c - 1) > 1e-3 and _fits(a, c * n, limit * max(1.0, abs(c))):
        return "factor", f"looks off by a constant factor: it matches {_named(c, batch)} times the numerical values"
    if _looks_transposed(result):
        return "transposed", "looks transposed: it matches the numerical values with rows and columns swapped"
    for other in others:
        if (
            other is not result
            and other.shape == result.shape
            and other.coverage == result.coverage
            and np.array_equal(other.positions, result.positions)
            and _fits(a, other.numerical, np.maximum(limit, other.limit))
        ):
            return "swapped", f"matches the numerical values of {other.name}: the two look swapped"
    wrong = np.flatnonzero(failed)
    if wrong.size == 1:
        label = format_index(result.shape, int(result.positions[wrong[0]])) if result.coverage == "entries" else ""
        return "entry", f"one entry is wrong ({result.name}{label}); every other entry passes"
    if wrong.size > 1 and result.coverage == "entries" and len(result.shape) == 2:
        return _row_or_column(result, wrong)
    return None


def _row_or_column(result: ParameterResult, wrong: Any) -> tuple[str, str] | None:
    """The failing entries of a 2-D block all in one row, or one column: said so.
    Named with the block: in a product's block (Hv, J·v) the rows are directions and
    a column is an entry of the product, not a column of H or J."""
    rows, cols = np.unravel_index(result.positions[wrong], result.shape)
    if np.all(rows == rows[0]) and result.shape[1] > 1:
        return "row", f"only row {int(rows[0])} of {result.name} is wrong; every other entry passes"
    if np.all(cols == cols[0]) and result.shape[0] > 1:
        if "v[" in result.name:
            return "column", (
                f"only entry {int(cols[0])} of the product {result.name} is wrong, along every direction; every "
                f"other entry passes"
            )
        return "column", f"only column {int(cols[0])} of {result.name} is wrong; every other entry passes"
    return None


def diagnose(results: Sequence[ParameterResult], batch: int | None = None) -> None:
    """Label every failing result whose failure has a clear pattern (module Notes);
    ``batch`` is the batch size, for naming a factor of m or 1/m."""
    for result in results:
        if result.status != "FAIL" or result.diagnosis is not None:
            continue
        found = _pattern(result, results, batch)
        if found is not None:
            result.diagnosis, sentence = found
            result.notes.append(sentence)


def match_zoo(results: Sequence[ParameterResult], model: Model) -> None:
    """For a failing built-in MLP: the zoo mistake whose gradient the analytic one
    equals on every failing parameter, named in a note (and as the label where no
    pattern was found)."""
    failing = [r for r in results if r.status == "FAIL"]
    if not failing or not isinstance(model, MLP):
        return
    params = model.initial_parameters()
    for mistake in MISTAKES:
        try:
            candidate = inject(mistake, model.spec).gradients(params)
        except Exception:  # a mistake that cannot be put into this model
            continue
        if all(_same(r, candidate.get(r.name)) for r in failing):
            for r in failing:
                r.notes.append(f"matches the zoo mistake {mistake.name!r}: {mistake.description} ({mistake.formula})")
                if r.diagnosis is None:
                    r.diagnosis = f"zoo: {mistake.name}"
            return


def _same(result: ParameterResult, gradient: Array | None) -> bool:
    """The analytic values checked equal this gradient's (to round-off)."""
    if gradient is None or result.coverage != "entries":
        return False
    values = np.asarray(gradient, dtype=np.float64).reshape(-1)[result.positions]
    scale = max(float(np.max(np.abs(values), initial=0.0)), 1e-300)
    return bool(np.max(np.abs(values - result.analytic), initial=0.0) <= 1e-5 * scale)  # float32 too
