"""Helpers for a user's own pytest suite: a failed check is a failed test."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .check import Params, api, check_gradients
from .options import Settings, settings_for_call
from .report import report_to_text
from .result import Report


@api
def assert_gradients(
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
    name: str = "",
) -> Report:
    """``check_gradients`` for a test suite: returns the Report when every parameter
    passes, raises ``AssertionError`` whose message is the plain-text table otherwise."""
    __tracebackhide__ = True  # pytest shows the caller's line, not this helper's
    report = check_gradients(
        loss,
        gradients,
        params,
        settings_for_call(settings, locals()),
        name=name,
    )
    if not report.passed:
        label = f"gradient check {name!r}" if name else "gradient check"
        raise AssertionError(f"{label} failed\n" + report_to_text(report))
    return report
