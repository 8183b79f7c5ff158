"""Helpers for a user's own pytest suite: a failed check is a failed test."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..core.options import Execution, Settings
from ..core.result import Report
from ..core.text import report_as_text
from .derivatives import check_hessian, check_jacobian, check_jvp, check_vjp
from .frontend import Params, api
from .gradient import check_gradients


@api
def assert_gradients(
    loss: Callable[[Params], Any],
    gradients: Callable[[Params], Any],
    params: Mapping[str, Any],
    settings: Settings | None = None,
    *,
    name: str = "",
    execution: Execution | None = None,
    **options: Any,
) -> Report:
    """``check_gradients`` for a test suite: returns the Report when every parameter
    passes, raises ``AssertionError`` whose message is the plain-text table otherwise."""
    __tracebackhide__ = True  # pytest shows the caller's line, not this helper's
    report = check_gradients(
        loss,
        gradients,
        params,
        settings,
        name=name,
        execution=execution,
        **options,
    )
    if not report.passed:
        label = f"gradient check {name!r}" if name else "gradient check"
        raise AssertionError(f"{label} failed\n" + report_as_text(report))
    return report


def _passes(report: Report, label: str) -> Report:
    __tracebackhide__ = True
    if not report.passed:
        raise AssertionError(f"{label} failed\n" + report_as_text(report))
    return report


def assert_vjp(
    forward: Callable[[Params], Any], backward: Callable[..., Any], inputs: Mapping[str, Any], **options: Any
) -> Report:
    """``check_vjp`` for a test suite: the Report when it passes, else ``AssertionError``
    with the table."""
    __tracebackhide__ = True
    return _passes(check_vjp(forward, backward, inputs, **options), "VJP check")


def assert_jvp(
    function: Callable[[Params], Any], tangent: Callable[..., Any], inputs: Mapping[str, Any], **options: Any
) -> Report:
    """``check_jvp`` for a test suite."""
    __tracebackhide__ = True
    return _passes(check_jvp(function, tangent, inputs, **options), "JVP check")


def assert_jacobian(
    function: Callable[[Params], Any], jacobian: Callable[[Params], Any], inputs: Mapping[str, Any], **options: Any
) -> Report:
    """``check_jacobian`` for a test suite."""
    __tracebackhide__ = True
    return _passes(check_jacobian(function, jacobian, inputs, **options), "Jacobian check")


def assert_hessian(loss: Callable[[Params], Any] | None, params: Mapping[str, Any], **options: Any) -> Report:
    """``check_hessian`` for a test suite (``hessian=`` or ``hvp=``, ``gradient=``)."""
    __tracebackhide__ = True
    return _passes(check_hessian(loss, params, **options), "Hessian check")
