"""Formulas as the seed writes them: ``sum((X@theta - y)**2)/(2*m)``.

A formula is parsed (Python's ``ast``) into a tree of the few node kinds below and
nothing else: numbers, names, ``+ - * / ** @``, unary minus, ``.T`` and calls of the
functions in ``FUNCTIONS``.  Anything else (an attribute other than ``.T``, a
subscript, a lambda, a comprehension, a keyword argument, a name starting with an
underscore, a string) is refused with the piece named, before anything runs.  The
tree is then evaluated by ``evaluate`` over numpy: nothing is passed to ``eval``.

Notes
-----
Why shapes first.  The seed's trick differentiates as if every matrix were a scalar
and then rearranges until the dimensions match; ``infer_shape`` does that matching
before any number is computed, and says where it fails and what would match (a
transpose), as the seed would.  Matching dimensions still prove nothing, which is
what the numerical check is for.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.errors import InputError
from ..core.limits import require_bytes

Array = npt.NDArray[Any]
Shape = tuple[int, ...]


def _sigmoid(a: Array) -> Array:
    return 1 / (1 + np.exp(-a))


# name: (number of arguments, what it does to shapes, what it computes)
_ELEMENTWISE: dict[str, Callable[[Array], Array]] = {
    "exp": np.exp,
    "log": np.log,
    "log1p": np.log1p,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "softplus": lambda a: np.log1p(np.exp(a)) if np.iscomplexobj(a) else np.logaddexp(0, a),
    "relu": lambda a: np.maximum(a, 0),
    # For writing the derivatives of relu and abs: relu' = step, abs' = sign.
    "step": lambda a: (np.real(a) > 0).astype(float),
    "sign": lambda a: np.sign(np.real(a)),
}
_REDUCING: dict[str, Callable[[Array], Any]] = {
    "sum": np.sum,
    "mean": np.mean,
    "norm": np.linalg.norm,
    "trace": np.trace,
    "det": np.linalg.det,
    "logdet": lambda a: np.linalg.slogdet(a)[1],
}
_SQUARE = {"trace", "det", "logdet", "inv"}
NOT_ANALYTIC = ("abs", "relu", "step", "sign", "norm")  # the complex step cannot see through them
FUNCTIONS = (*_ELEMENTWISE, *_REDUCING, "inv", "diag", "eye", "ones", "outer")
_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@"}


@dataclass(frozen=True)
class Node:
    """A piece of a formula, with its source text (for messages)."""

    text: str
    kind: str  # "name", "number", "unary", "binary", "transpose", "call"
    value: Any = None  # the name, the number, the operator or the function
    args: tuple[Node, ...] = ()


def shape_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "a scalar"


# ---- parsing ---------------------------------------------------------------------------------


def parse_formula(text: str, what: str = "formula") -> Node:
    """The formula's tree; an ``InputError`` naming the first piece a formula may not hold."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise InputError(f"{what} {text!r} is not a formula ({reason})") from None
    return _node(tree.body, text.strip(), what)


def _refuse(node: ast.AST, source: str, what: str, why: str) -> InputError:
    piece = ast.get_source_segment(source, node) or type(node).__name__
    return InputError(
        f"{what} {source!r}: {piece!r} is {why}, which a formula may not hold; a formula has numbers, names, "
        f"+ - * / ** @, .T and the functions {', '.join(FUNCTIONS)}"
    )


def _node(node: ast.AST, source: str, what: str) -> Node:
    text = ast.get_source_segment(source, node) or ""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _refuse(node, source, what, f"a {type(node.value).__name__} constant")
        return Node(text, "number", float(node.value))
    if isinstance(node, ast.Name):
        if node.id.startswith("_") or node.id in FUNCTIONS:
            raise _refuse(node, source, what, "a reserved name" if node.id in FUNCTIONS else "a private name")
        return Node(text, "name", node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return Node(text, "unary", "-" if isinstance(node.op, ast.USub) else "+", (_node(node.operand, source, what),))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        sides = (_node(node.left, source, what), _node(node.right, source, what))
        return Node(text, "binary", _OPERATORS[type(node.op)], sides)
    if isinstance(node, ast.Attribute) and node.attr == "T":
        return Node(text, "transpose", None, (_node(node.value, source, what),))
    if isinstance(node, ast.Call):
        return _call(node, source, what, text)
    kind = type(node).__name__.lower()
    raise _refuse(node, source, what, f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}")


def _call(node: ast.Call, source: str, what: str, text: str) -> Node:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        raise _refuse(node.func, source, what, "a call of something other than the formula functions")
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise _refuse(node, source, what, "a call with keyword or starred arguments")
    return Node(text, "call", node.func.id, tuple(_node(a, source, what) for a in node.args))


def functions_used(node: Node) -> set[str]:
    """Every function the formula calls."""
    found = {node.value} if node.kind == "call" else set()
    for arg in node.args:
        found |= functions_used(arg)
    return found


def names(node: Node) -> set[str]:
    """Every name the formula uses."""
    found = {node.value} if node.kind == "name" else set()
    for arg in node.args:
        found |= names(arg)
    return found


# ---- shapes ----------------------------------------------------------------------------------


def infer_shape(node: Node, shapes: Mapping[str, Shape]) -> Shape:
    """The shape of ``node``'s value, from the shapes of its names; an ``InputError``
    naming the sub-expression whose dimensions do not match, and what would."""
    if node.kind == "number":
        return ()
    if node.kind == "name":
        return shapes[node.value]
    inner = [infer_shape(arg, shapes) for arg in node.args]
    if node.kind == "unary":
        return inner[0]
    if node.kind == "transpose":
        return inner[0][::-1]
    if node.kind == "binary":
        return _binary_shape(node, inner[0], inner[1])
    return _call_shape(node, inner)


def shape_steps(node: Node, shapes: Mapping[str, Shape]) -> list[str]:
    """The dimension matching of ``node``, step by step: each sub-expression with its
    factors' shapes and its own (``X@theta: 100x4 @ 4x1 -> 100x1``), innermost first."""
    steps: list[str] = []
    for arg in node.args:
        steps += shape_steps(arg, shapes)
    if node.kind in ("name", "number"):
        return steps
    parts = [_dims(infer_shape(arg, shapes)) for arg in node.args]
    if node.kind == "binary":
        how = f"{parts[0]} {node.value} {parts[1]}"
    elif node.kind == "transpose":
        how = f"({parts[0]}).T"
    elif node.kind == "unary":
        how = f"{node.value}({parts[0]})"
    else:
        how = f"{node.value}({', '.join(parts)})"
    steps.append(f"{node.text}: {how} -> {_dims(infer_shape(node, shapes))}")
    return steps


def _dims(shape: Shape) -> str:
    return shape_text(shape) if shape else "scalar"


def _binary_shape(node: Node, a: Shape, b: Shape) -> Shape:
    left, right = node.args
    if node.value != "@":
        try:
            return tuple(np.broadcast_shapes(a, b))
        except ValueError:
            raise InputError(
                f"`{node.text}`: `{left.text}` is {shape_text(a)} and `{right.text}` is {shape_text(b)}, which do not "
                f"match elementwise ({node.value}); give operands of one shape (or one a scalar)"
            ) from None
    for side, shape in ((left, a), (right, b)):
        if not 1 <= len(shape) <= 2:
            raise InputError(
                f"`{node.text}`: @ takes vectors and matrices, and `{side.text}` is {shape_text(shape)}"
                + ("; use * for a scalar" if not shape else "")
            )
    if a[-1] == b[0]:
        return a[:-1] + b[1:]
    fix = _match(a, b, left, right)
    raise InputError(f"`{node.text}`: `{left.text}` is {shape_text(a)}, `{right.text}` is {shape_text(b)}; {fix}")


def _match(a: Shape, b: Shape, left: Node, right: Node) -> str:
    """What would make ``a @ b`` match, as the seed would rearrange it."""
    if len(a) == 2 and a[0] == b[0]:
        return f"transpose `{left.text}` (`{left.text}`.T is {shape_text(a[::-1])})"
    if len(b) == 2 and b[-1] == a[-1]:
        return f"transpose `{right.text}` (`{right.text}`.T is {shape_text(b[::-1])})"
    return "the inner dimensions must be equal"


def _call_shape(node: Node, inner: list[Shape]) -> Shape:
    name, count = node.value, len(inner)
    wanted = {"outer": 2, "ones": (1, 2), "eye": 1}.get(name, 1)
    if count not in (wanted if isinstance(wanted, tuple) else (wanted,)):
        raise InputError(f"`{node.text}`: {name} takes {wanted} argument{'s' if wanted != 1 else ''}, not {count}")
    if name in ("eye", "ones"):
        sizes = tuple(_size(arg, node) for arg in node.args)
        shape = (sizes[0], sizes[0]) if name == "eye" else sizes
        require_bytes(8 * int(np.prod(shape, dtype=np.int64)), f"`{node.text}`", "shape")
        return shape
    if name == "outer":
        return (int(np.prod(inner[0], dtype=np.int64)), int(np.prod(inner[1], dtype=np.int64)))
    shape = inner[0]
    if name in _SQUARE and (len(shape) != 2 or shape[0] != shape[1]):
        raise InputError(
            f"`{node.text}`: {name} needs a square matrix, and `{node.args[0].text}` is {shape_text(shape)}"
        )
    if name == "diag":
        if len(shape) == 1:
            return (shape[0], shape[0])
        if len(shape) == 2 and shape[0] == shape[1]:
            return (shape[0],)
        raise InputError(f"`{node.text}`: diag needs a vector or a square matrix, not {shape_text(shape)}")
    return () if name in _REDUCING else shape


def _size(arg: Node, node: Node) -> int:
    if arg.kind != "number" or arg.value != int(arg.value) or arg.value < 1:
        raise InputError(f"`{node.text}`: its sizes must be whole numbers written in the formula, e.g. eye(4)")
    return int(arg.value)


# ---- values ----------------------------------------------------------------------------------


def evaluate(node: Node, values: Mapping[str, Any]) -> Any:
    """The formula's value for ``values`` (arrays, numbers) by name."""
    if node.kind == "number":
        return node.value
    if node.kind == "name":
        return values[node.value]
    if node.kind == "call" and node.value in ("eye", "ones"):
        sizes = [int(arg.value) for arg in node.args]
        return np.eye(sizes[0]) if node.value == "eye" else np.ones(sizes)
    args = [evaluate(arg, values) for arg in node.args]
    if node.kind == "unary":
        return -args[0] if node.value == "-" else args[0]
    if node.kind == "transpose":
        return np.asarray(args[0]).T
    if node.kind == "binary":
        return _BINARY[node.value](args[0], args[1])
    name = node.value
    if name in _ELEMENTWISE:
        return _ELEMENTWISE[name](args[0])
    if name in _REDUCING:
        return _REDUCING[name](args[0])
    if name == "inv":
        return np.linalg.inv(args[0])
    if name == "diag":
        return np.diag(args[0])
    return np.outer(args[0], args[1])


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
    "@": lambda a, b: a @ b,
}
