"""Check a user's own loss and gradient: load them from files, draw or load parameters.

``LOSS(**params) -> float`` and ``GRAD(**params) -> dict[name, array]`` (or a tuple
in parameter order), where ``params`` are the arrays named by the ``params`` option.
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
import numpy.typing as npt

from .check import ProgressSink, check_gradients
from .errors import InputError, UserCodeError
from .options import ParamShapes, Settings
from .result import Report

Array = npt.NDArray[Any]
Params = dict[str, Array]


def parse_target(text: str, option: str) -> tuple[Path, str]:
    """``path/to/file.py:function`` -> (path, function)."""
    path, sep, name = str(text).rpartition(":")
    if not sep or not path or not name:
        raise InputError(f"{text!r} is not FILE.py:FUNCTION; e.g. examples/two_layer.py:loss", option=option)
    if not name.isidentifier():
        raise InputError(f"{name!r} in {text!r} is not a function name; e.g. examples/two_layer.py:loss", option=option)
    return Path(path), name


_loaded: dict[Path, ModuleType] = {}


def load_function(path: Path, name: str, role: str) -> Callable[..., Any]:
    """Import ``path`` (once) and return its function ``name``; ``role`` is the option
    that named it (``loss``, ``grad``)."""
    path = path.expanduser()
    if not path.is_file():
        raise InputError(f"file {str(path)!r} not found; give an existing FILE.py:FUNCTION", option=role)
    resolved = path.resolve()
    module = _loaded.get(resolved)
    if module is None:
        module_name = f"gradcheck_user_{len(_loaded)}_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
        spec = importlib.util.spec_from_file_location(module_name, resolved)
        if spec is None or spec.loader is None:
            raise InputError(f"{str(path)!r} cannot be loaded as a Python module; give a .py file", option=role)
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
        defined = sorted(
            k for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", "") == module.__name__
        )
        listing = ", ".join(defined) if defined else "none"
        raise InputError(f"{path} has no function {name!r}; functions defined there: {listing}", option=role)
    return function  # type: ignore[no-any-return]


def load_init(path: Path, shapes: dict[str, tuple[int, ...]]) -> Params:
    """Parameters from an ``.npz``; ``shapes`` (possibly empty) must match it."""
    if not path.is_file():
        raise InputError(f"file {str(path)!r} not found; give an .npz written by numpy.savez", option="init")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k], dtype=np.float64) for k in data.files}
    except Exception as exc:
        raise InputError(f"{path} is not a readable .npz file ({exc})", option="init") from None
    if shapes:
        missing = [n for n in shapes if n not in arrays]
        if missing:
            raise InputError(f"{path} has no array {', '.join(missing)}; it holds {', '.join(arrays)}", option="init")
        for name, shape in shapes.items():
            if arrays[name].shape != shape:
                raise InputError(
                    f"{name} in {path} has shape {arrays[name].shape}, but it is declared {shape}", option="init"
                )
        arrays = {n: arrays[n] for n in shapes}
    if not arrays:
        raise InputError(f"{path} holds no arrays", option="init")
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
        raise InputError(
            f"{target} takes {signature} but the parameters are {', '.join(names)} ({exc}); "
            f"name each parameter after an argument",
            option="params",
        ) from None


@dataclass(frozen=True)
class FuncSpec:
    """A user check: loss and gradient targets, parameter shapes, optional init file."""

    loss: str
    grad: str
    params: ParamShapes
    init: str | None = None
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "model": "func",
            "loss": self.loss,
            "grad": self.grad,
            "params": {n: list(s) for n, s in self.params},
            "init": self.init,
            "seed": self.seed,
        }

    def title(self) -> str:
        return f"func {self.loss} with gradient {self.grad}"


def check_function(
    spec: FuncSpec, settings: Settings | None = None, *, progress: ProgressSink | None = None, name: str = ""
) -> Report:
    """Load and check a user's ``LOSS`` and ``GRAD`` (the ``gradcheck func`` command)."""
    loss_path, loss_name = parse_target(spec.loss, "loss")
    grad_path, grad_name = parse_target(spec.grad, "grad")
    shapes = dict(spec.params)
    if spec.init is None and not shapes:
        raise InputError(
            "no parameters given; name each with its shape (NAME=SHAPE) or give an init .npz", option="params"
        )
    loss_fn = load_function(loss_path, loss_name, "loss")
    grad_fn = load_function(grad_path, grad_name, "grad")
    params = load_init(Path(spec.init), shapes) if spec.init else draw_params(shapes, spec.seed)
    for target, function in ((spec.loss, loss_fn), (spec.grad, grad_fn)):
        _check_signature(target, function, list(params))
    return check_gradients(
        lambda p: loss_fn(**p),
        lambda p: grad_fn(**p),
        params,
        settings,
        title=spec.title(),
        model=spec.describe(),
        loss_name=spec.loss,
        grad_name=spec.grad,
        progress=progress,
        name=name,
    )
