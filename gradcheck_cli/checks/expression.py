"""A derivation written as formulas, checked: ``gradcheck expr`` and ``check_expression``.

The loss formula is the function and each gradient formula the derivative of one
parameter; the shapes are matched first (``models.formulas.infer_shape``), then the
same pipeline and verdict as ``gradcheck func`` judge the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InputError
from ..core.limits import require_bytes
from ..core.options import Execution, Settings
from ..core.result import Report
from ..models.formulas import (
    NOT_ANALYTIC,
    Node,
    Shape,
    evaluate,
    functions_used,
    infer_shape,
    names,
    parse_formula,
    shape_steps,
    shape_text,
)
from .frontend import api, split_options
from .gradient import check_gradients
from .pipeline import ProgressSink
from .userfunc import load_arrays


class _Formula:
    """A formula as a function of the parameters, the data and the constants fixed."""

    def __init__(self, node: Node, fixed: Mapping[str, Any]) -> None:
        self.node, self.fixed = node, dict(fixed)

    def __call__(self, params: Mapping[str, Any]) -> Any:
        return evaluate(self.node, {**self.fixed, **params})


class _Gradients:
    """Every parameter's gradient formula, as a dict."""

    def __init__(self, nodes: Mapping[str, Node], fixed: Mapping[str, Any]) -> None:
        self.nodes, self.fixed = dict(nodes), dict(fixed)

    def __call__(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self.fixed, **params}
        return {name: np.asarray(evaluate(node, values), dtype=float) for name, node in self.nodes.items()}


def matched_shapes(loss: Node, grads: Mapping[str, Node], shapes: Mapping[str, Shape]) -> None:
    """The seed's dimension matching, before any number: every name has a shape, the
    loss is a scalar, and each gradient has its parameter's shape (or says what would)."""
    for node in (loss, *grads.values()):
        missing = sorted(names(node) - set(shapes))
        if missing:
            raise InputError(
                f"`{missing[0]}` in `{node.text}` has no shape; give --shape {missing[0]}=SHAPE (e.g. 4x1)"
            )
    shape = infer_shape(loss, shapes)
    if shape != ():
        raise InputError(f"the loss `{loss.text}` is {shape_text(shape)}; a loss is a scalar (sum it)")
    for name, node in grads.items():
        got, wanted = infer_shape(node, shapes), shapes[name]
        if got != wanted:
            fix = "transpose it" if got == wanted[::-1] else f"it must be {shape_text(wanted)}"
            raise InputError(f"`{node.text}` is {shape_text(got)}, `{name}` is {shape_text(wanted)}: {fix}")


def explain_expression(loss: str, grads: Mapping[str, str], shapes: Mapping[str, Shape]) -> list[str]:
    """The derivation's shapes step by step: the loss, then each gradient as written
    (names given by ``shapes``; data shapes included)."""
    lines = []
    for title, text in [("the loss", loss), *((f"the gradient of {n}", g) for n, g in grads.items())]:
        node = parse_formula(text, title)
        lines.append(f"{title}: {text}")
        lines += [f"    {step}" for step in shape_steps(node, shapes)]
    return lines


@dataclass(frozen=True)
class ExprSpec:
    """An ``expr`` check of a suite: the options of ``EXPR_OPTIONS``; ``data`` is a
    path, taken from ``folder`` (the suite's) when relative."""

    loss: str
    grad: tuple[tuple[str, str], ...]
    shape: tuple[tuple[str, Shape], ...] = ()
    const: tuple[tuple[str, float], ...] = ()
    data: str | None = None
    folder: str | None = None

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> ExprSpec:
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def title(self) -> str:
        return f"expr {self.loss}"

    def check(self, settings: Settings, **keywords: Any) -> Report:
        """``check_expression`` of this spec (``keywords``: progress, name, execution)."""
        data = None
        if self.data is not None:
            path = Path(self.data) if self.folder is None else Path(self.folder) / self.data
            data = load_arrays(path, "data", shown=self.data)
        return check_expression(
            self.loss, dict(self.grad), dict(self.shape), settings, data=data, const=dict(self.const), **keywords
        )


@api
def check_expression(
    loss: str,
    grads: Mapping[str, str],
    shapes: Mapping[str, Shape],
    settings: Settings | None = None,
    *,
    data: Mapping[str, Any] | None = None,
    const: Mapping[str, float] | None = None,
    progress: ProgressSink | None = None,
    name: str = "",
    execution: Execution | None = None,
    **options: Any,
) -> Report:
    """Check the gradient formulas ``grads`` (parameter name -> formula) of the loss
    formula ``loss``.  Every other name is data: from ``data``, a number of ``const``,
    or drawn standard normal from ``seed`` with its shape in ``shapes``."""
    loss_node = parse_formula(loss, "the loss")
    grad_nodes = {n: parse_formula(text, f"the gradient of {n}") for n, text in grads.items()}
    known = {**{k: tuple(np.shape(v)) for k, v in (data or {}).items()}, **{k: () for k in (const or {})}}
    all_shapes = {**dict(shapes), **known}
    unknown = sorted(set(grads) - set(all_shapes))
    if unknown:
        raise InputError(f"the parameter {unknown[0]} has no shape; give --shape {unknown[0]}=SHAPE", option="grad")
    matched_shapes(loss_node, grad_nodes, all_shapes)
    chosen, _ = split_options(settings, execution, dict(options))  # the settings as the check will read them
    kinked = sorted(functions_used(loss_node) & set(NOT_ANALYTIC))
    if chosen.method == "complex" and kinked:
        raise InputError(
            f"the complex step needs analytic functions, and the loss uses {', '.join(kinked)}; use another method "
            f"(central, the default, judges kinks by the subgradient rule)",
            option="method",
        )
    entries = sum(int(np.prod(s, dtype=np.int64)) for s in all_shapes.values())
    try:
        require_bytes(8 * entries, "the formulas' arrays", "shape")
    except InputError as exc:
        raise InputError(exc.raw) from None  # --shape is the command's own option, not a table one
    rng = np.random.default_rng(chosen.seed)
    drawn = {k: rng.standard_normal(s) for k, s in sorted(all_shapes.items()) if k not in known}
    params = {k: drawn[k] for k in grads}
    fixed = {**{k: v for k, v in drawn.items() if k not in grads}, **dict(data or {}), **dict(const or {})}
    described = {"model": "expr", "loss": loss, "grads": dict(grads), "shapes": {k: list(s) for k, s in shapes.items()}}
    report = check_gradients(
        _Formula(loss_node, fixed),
        _Gradients(grad_nodes, fixed),
        params,
        settings,
        progress=progress,
        name=name,
        title=f"expr {loss}",
        model=described,
        loss_name=f"`{loss}`",
        grad_name="the gradient formulas",
        execution=execution,
        **options,
    )
    if report.status == "FAIL":
        report.notes.extend(_slips(loss_node, grad_nodes))
    return report


ACTIVATIONS = ("sigmoid", "tanh", "relu", "softplus")


def _slips(loss: Node, grads: Mapping[str, Node]) -> list[str]:
    """The seed's classic slip, where a failing gradient shows it: an activation applied
    to its own output (``sigmoid(sigmoid(X@W))``) that the loss never computes: a
    derivative written from the output (``s(1-s)``) evaluated on the output again."""
    seen = set(_nested(loss))
    notes = []
    for name, node in grads.items():
        for text in _nested(node):
            if text not in seen:
                notes.append(
                    f"the gradient of {name} applies an activation to its own output ({text}), which the loss never "
                    f"does: a derivative written from the output (sigmoid: s(1-s), tanh: 1-t^2) is to be evaluated "
                    f"at the output once, not at the output's output (the seed's sigma'(Z^{{l+1}}) shorthand)"
                )
                break
    return notes


def _nested(node: Node) -> list[str]:
    """The sub-expressions ``f(f(...))`` for an activation ``f``."""
    found = []
    inner = node.args[0] if node.args else None
    if node.kind == "call" and node.value in ACTIVATIONS and inner is not None and inner.value == node.value:
        found.append(node.text)
    for arg in node.args:
        found += _nested(arg)
    return found
