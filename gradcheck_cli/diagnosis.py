"""What a failing derivative looks like: a next step, not only a verdict.

A failing square block that matches the transpose of the numerical one, or its
negative, says so.  The test is the pass rule itself, applied to the rearranged
numerical values with their own uncertainties: a diagnosis is made only when
every entry fits it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .result import ParameterResult

Array = npt.NDArray[Any]


def _fits(analytic: Array, numerical: Array, allowed: Array) -> bool:
    return bool(np.all(np.abs(analytic - numerical) <= allowed))


def diagnose_square(result: ParameterResult, shape: tuple[int, ...], out_ndim: int) -> tuple[str | None, str]:
    """``(label, sentence)`` for a failing block of ``shape`` (output dims first),
    every entry checked: ``transposed`` or ``sign``, else ``(None, "")``."""
    m = int(np.prod(shape[:out_ndim], dtype=np.int64))
    n = int(np.prod(shape[out_ndim:], dtype=np.int64))
    order = np.argsort(result.positions)
    a = result.analytic[order]
    num = result.numerical[order]
    # The slack each entry was allowed beyond the analytic value's own size.
    allowed = result.limit[order]
    if a.size != m * n:
        return None, ""
    if np.max(np.abs(num), initial=0.0) == 0:
        return None, ""
    if m == n and m > 1:
        A, N, L = a.reshape(m, n), num.reshape(m, n), allowed.reshape(m, n)
        if not _fits(A, N, L) and _fits(A, N.T, np.maximum(L, L.T)):
            return "transposed", ("looks transposed: it matches the numerical values with rows and columns swapped")
    if _fits(a, -num, allowed):
        return "sign", "looks sign-flipped: it matches minus the numerical values"
    return None, ""
