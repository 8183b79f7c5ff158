"""Check a user's own loss and gradient: load them from files, draw or load parameters.

``LOSS(**params) -> float`` and ``GRAD(**params) -> dict[name, array]`` (or a tuple
in parameter order), where ``params`` are the arrays named by ``--param``.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .check import InputError, Report, Settings, check_gradients
from .numeric import UserCodeError

Array = np.ndarray
Params = dict[str, Array]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_target(text: str) -> tuple[Path, str]:
    """``path/to/file.py:function`` -> (path, function)."""
    path, sep, name = str(text).rpartition(":")
    if not sep or not path or not name:
        raise InputError(f"{text!r} is not FILE.py:FUNCTION; e.g. examples/two_layer.py:loss")
    if not _NAME.match(name):
        raise InputError(f"{name!r} in {text!r} is not a function name; e.g. examples/two_layer.py:loss")
    return Path(path), name


def parse_shape(text: str) -> tuple[int, ...]:
    """``4x3`` -> (4, 3); ``3`` -> (3,); the empty string -> () (a scalar)."""
    text = text.strip()
    if not text:
        return ()
    dims = []
    for part in text.lower().split("x"):
        try:
            dim = int(part)
        except ValueError:
            raise InputError(f"shape {text!r}: {part!r} is not a whole number; e.g. W=4x3, b=3, s= (a scalar)") from None
        if dim < 1:
            raise InputError(f"shape {text!r}: every dimension must be >= 1; e.g. W=4x3")
        dims.append(dim)
    return tuple(dims)


def parse_param(text: str) -> tuple[str, tuple[int, ...]]:
    """``W=4x3`` -> ("W", (4, 3))."""
    name, sep, shape = text.partition("=")
    name = name.strip()
    if not sep or not _NAME.match(name):
        raise InputError(f"{text!r} is not NAME=SHAPE; e.g. W=4x3, b=3, s= (a scalar)")
    return name, parse_shape(shape)


_loaded: dict[Path, ModuleType] = {}


def load_function(path: Path, name: str, role: str) -> Callable[..., Any]:
    """Import ``path`` (once) and return its function ``name``."""
    path = path.expanduser()
    if not path.is_file():
        raise InputError(f"{role}: file {str(path)!r} not found; give an existing FILE.py:FUNCTION")
    resolved = path.resolve()
    module = _loaded.get(resolved)
    if module is None:
        module_name = f"gradcheck_user_{len(_loaded)}_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
        spec = importlib.util.spec_from_file_location(module_name, resolved)
        if spec is None or spec.loader is None:
            raise InputError(f"{role}: {str(path)!r} cannot be loaded as a Python module; give a .py file")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(resolved.parent))  # so the file can import its neighbours
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise UserCodeError(f"importing {path}", exc) from exc
        finally:
            sys.path.remove(str(resolved.parent))
        _loaded[resolved] = module
    function = getattr(module, name, None)
    if not callable(function):
        defined = sorted(k for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", "") ==
                         module.__name__)
        listing = ", ".join(defined) if defined else "none"
        raise InputError(f"{role}: {path} has no function {name!r}; functions defined there: {listing}")
    return function


def load_init(path: Path, shapes: dict[str, tuple[int, ...]]) -> Params:
    """Parameters from an ``.npz``; ``shapes`` (possibly empty) must match it."""
    if not path.is_file():
        raise InputError(f"--init: file {str(path)!r} not found; give an .npz written by numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k], dtype=np.float64) for k in data.files}
    except Exception as exc:
        raise InputError(f"--init: {path} is not a readable .npz file ({exc})") from None
    if shapes:
        missing = [n for n in shapes if n not in arrays]
        if missing:
            raise InputError(f"--init: {path} has no array {', '.join(missing)}; it holds {', '.join(arrays)}")
        for name, shape in shapes.items():
            if arrays[name].shape != shape:
                raise InputError(f"--init: {name} in {path} has shape {arrays[name].shape}, but --param says {shape}")
        arrays = {n: arrays[n] for n in shapes}
    if not arrays:
        raise InputError(f"--init: {path} holds no arrays")
    return arrays


def draw_params(shapes: dict[str, tuple[int, ...]], seed: int) -> Params:
    """Standard normal starting values, in ``--param`` order, from ``seed``."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape) for name, shape in shapes.items()}


def _check_signature(target: str, function: Callable[..., Any], names: list[str]) -> None:
    """The parameters must be accepted as keyword arguments, by name."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin or extension without a signature: let the call decide
    try:
        signature.bind(**{n: None for n in names})
    except TypeError as exc:
        raise InputError(f"{target} takes {signature} but the parameters are {', '.join(names)} ({exc}); "
                         f"name each --param after an argument") from None


@dataclass(frozen=True)
class FuncSpec:
    """A user check: loss and gradient targets, parameter shapes, optional init file."""

    loss: str
    grad: str
    params: tuple[tuple[str, tuple[int, ...]], ...]
    init: str | None = None
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "model": "func", "loss": self.loss, "grad": self.grad,
            "params": {n: list(s) for n, s in self.params}, "init": self.init, "seed": self.seed,
        }

    def title(self) -> str:
        return f"func {self.loss} with gradient {self.grad}"


def check_function(spec: FuncSpec, settings: Settings | None = None, **options: Any) -> Report:
    """Load and check a user's ``LOSS`` and ``GRAD`` (the ``gradcheck func`` command)."""
    loss_path, loss_name = parse_target(spec.loss)
    grad_path, grad_name = parse_target(spec.grad)
    shapes: dict[str, tuple[int, ...]] = {}
    for name, shape in spec.params:
        if name in shapes:
            raise InputError(f"--param {name} is given twice; name each parameter once")
        shapes[name] = shape
    if spec.init is None and not shapes:
        raise InputError("give the parameters: --param NAME=SHAPE (one per parameter) or --init FILE.npz")
    loss_fn = load_function(loss_path, loss_name, "loss")
    grad_fn = load_function(grad_path, grad_name, "--grad")
    params = load_init(Path(spec.init), shapes) if spec.init else draw_params(shapes, spec.seed)
    for target, function in ((spec.loss, loss_fn), (spec.grad, grad_fn)):
        _check_signature(target, function, list(params))
    return check_gradients(
        lambda p: loss_fn(**p), lambda p: grad_fn(**p), params, settings,
        title=spec.title(), model=spec.describe(), loss_name=spec.loss, grad_name=spec.grad, **options,
    )
