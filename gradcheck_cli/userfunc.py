"""Check a user's own loss and gradient: load them from files, draw or load parameters.

``LOSS(**params) -> float`` and ``GRAD(**params) -> dict[name, array]`` (or a tuple
in parameter order), where ``params`` are the arrays named by the ``params`` option.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
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
from .errors import InputError
from .options import ParamShapes, Settings
from .result import Report
from .usercode import call_user

Array = npt.NDArray[Any]
Params = dict[str, Array]


def parse_target(text: str, option: str) -> tuple[str, str]:
    """``path/to/file.py:function`` or ``package.module:function`` -> (where, function)."""
    where, sep, name = str(text).rpartition(":")
    if not sep or not where or not name:
        raise InputError(
            f"{text!r} is not FILE.py:FUNCTION or MODULE:FUNCTION; e.g. examples/two_layer.py:loss", option=option
        )
    if not name.isidentifier():
        raise InputError(f"{name!r} in {text!r} is not a function name; e.g. examples/two_layer.py:loss", option=option)
    return where, name


_loaded: dict[str, ModuleType] = {}


def _is_module_path(where: str) -> bool:
    """``package.module`` (dotted identifiers) rather than a file path."""
    return not where.endswith(".py") and all(part.isidentifier() for part in where.split("."))


def _import(where: str, role: str) -> ModuleType:
    """Import a file by path, or a module by its dotted name (from the working folder
    first, so a package's relative imports work), once."""
    if _is_module_path(where) and not Path(where).is_file():
        key = where
        if key not in _loaded:
            sys.path.insert(0, os.getcwd())
            try:
                if importlib.util.find_spec(where.split(".", maxsplit=1)[0]) is None:
                    raise InputError(
                        f"no module {where!r} (from the working folder or installed); give FILE.py:FUNCTION "
                        f"or MODULE:FUNCTION",
                        option=role,
                    )
                _loaded[key] = call_user(f"importing {where}", importlib.import_module, where)
            finally:
                sys.path.remove(os.getcwd())
        return _loaded[key]
    path = Path(where).expanduser()
    if not path.exists():
        raise InputError(f"file {str(path)!r} not found; give an existing FILE.py:FUNCTION", option=role)
    if not path.is_file():
        raise InputError(f"{str(path)!r} is not a regular file; give a .py file", option=role)
    resolved = path.resolve()
    key = str(resolved)
    if key not in _loaded:
        stem = re.sub(r"\W", "_", path.stem)
        module_name = f"gradcheck_user_{len(_loaded)}_{stem}"
        spec = importlib.util.spec_from_file_location(module_name, resolved)
        if spec is None or spec.loader is None:
            raise InputError(f"{str(path)!r} cannot be loaded as a Python module; give a .py file", option=role)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(resolved.parent))  # so the file can import its neighbours
        try:
            call_user(f"importing {path}", spec.loader.exec_module, module)
        finally:
            sys.path.remove(str(resolved.parent))
        _loaded[key] = module
    return _loaded[key]


def load_function(where: str, name: str, role: str) -> Callable[..., Any]:
    """Import ``where`` (a file or a module, once) and return its function ``name``;
    ``role`` is the option that named it (``loss``, ``grad``)."""
    module = _import(where, role)
    function = getattr(module, name, None)
    if not callable(function):
        defined = sorted(
            k for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", "") == module.__name__
        )
        listing = ", ".join(defined) if defined else "none"
        raise InputError(f"{where} has no function {name!r}; functions defined there: {listing}", option=role)
    return function  # type: ignore[no-any-return]


INIT_HELP = "give an .npz written by numpy.savez (one array per parameter) or, for one parameter, an .npy"


def load_init(path: Path, shapes: dict[str, tuple[int, ...]]) -> Params:
    """Parameters from an ``.npz`` (or an ``.npy`` for one parameter); ``shapes``
    (possibly empty) must match it."""
    if not path.exists():
        raise InputError(f"file {str(path)!r} not found; {INIT_HELP}", option="init")
    if not path.is_file():
        raise InputError(f"{str(path)!r} is not a regular file; {INIT_HELP}", option="init")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception:
        raise InputError(f"{path} is not a numpy .npz or .npy file; {INIT_HELP}", option="init") from None
    if isinstance(loaded, np.ndarray):
        if len(shapes) != 1:
            raise InputError(
                f"{path} holds one array (.npy) but {len(shapes)} parameters are declared; "
                f"declare exactly one parameter, or give an .npz",
                option="init",
            )
        raw = {next(iter(shapes)): loaded}
    else:
        with loaded as data:
            raw = {k: data[k] for k in data.files}
    arrays: Params = {}
    for name, array in raw.items():
        if array.dtype.kind not in "fiu":
            kind = "complex" if array.dtype.kind == "c" else str(array.dtype)
            raise InputError(f"array {name} in {path} is {kind}; parameters must be real numbers", option="init")
        arrays[name] = np.asarray(array, dtype=np.float64)
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


@dataclass(frozen=True)
class LoadedFunction:
    """A user check ready to run: its functions imported, its parameters drawn or loaded."""

    spec: FuncSpec
    loss: Callable[..., Any]
    grad: Callable[..., Any]
    params: Params


def load_check(spec: FuncSpec) -> LoadedFunction:
    """Everything about a user check that can fail before its first evaluation:
    targets, imports, functions, parameters, signatures."""
    loss_where, loss_name = parse_target(spec.loss, "loss")
    grad_where, grad_name = parse_target(spec.grad, "grad")
    shapes = dict(spec.params)
    if spec.init is None and not shapes:
        raise InputError(
            "no parameters given; name each with its shape (NAME=SHAPE) or give an init .npz", option="params"
        )
    loss_fn = load_function(loss_where, loss_name, "loss")
    grad_fn = load_function(grad_where, grad_name, "grad")
    params = load_init(Path(spec.init), shapes) if spec.init else draw_params(shapes, spec.seed)
    for target, function in ((spec.loss, loss_fn), (spec.grad, grad_fn)):
        _check_signature(target, function, list(params))
    return LoadedFunction(spec, loss_fn, grad_fn, params)


def check_function(
    spec: FuncSpec | LoadedFunction,
    settings: Settings | None = None,
    *,
    progress: ProgressSink | None = None,
    name: str = "",
) -> Report:
    """Load (unless loaded) and check a user's ``LOSS`` and ``GRAD`` (``gradcheck func``)."""
    loaded = spec if isinstance(spec, LoadedFunction) else load_check(spec)
    loss_fn, grad_fn = loaded.loss, loaded.grad
    return check_gradients(
        lambda p: loss_fn(**p),
        lambda p: grad_fn(**p),
        loaded.params,
        settings,
        title=loaded.spec.title(),
        model=loaded.spec.describe(),
        loss_name=loaded.spec.loss,
        grad_name=loaded.spec.grad,
        progress=progress,
        name=name,
    )
