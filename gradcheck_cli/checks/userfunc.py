"""Check a user's own loss and gradient: load them from files, draw or load parameters.

``LOSS(**params) -> float`` and ``GRAD(**params) -> dict[name, array]`` (or a tuple
in parameter order), where ``params`` are the arrays named by the ``params`` option.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import inspect
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.errors import BadValueError, InputError, option_ref
from ..core.options import DERIVATIVE_KINDS, Constants, Execution, ParamShapes, Settings
from ..core.result import Report, json_safe
from ..execution.evaluation import plain_numbers
from ..execution.usercode import call_user
from .derivatives import check_hessian, check_jacobian, check_jvp, check_vjp
from .frontend import LayerBackward, accepted, gradient_part, value_part
from .gradient import check_gradients
from .pipeline import ProgressSink

Array = npt.NDArray[Any]
Params = dict[str, Array]


def parse_target(text: str, option: str) -> tuple[str, str]:
    """``path/to/file.py:function`` or ``package.module:function`` -> (where, function)."""
    where, sep, name = str(text).rpartition(":")
    if not sep or not where or not name:
        raise InputError(
            f"{text!r} is not FILE.py:FUNCTION or MODULE:FUNCTION; e.g. examples/two_layer.py:loss", option=option
        )
    path, _ = _row_of(name)
    if not all(part.isidentifier() for part in path.split(".")):
        raise InputError(
            f"{name!r} in {text!r} is not a function name (or a dotted path to a method of a module-level object, "
            f"e.g. problem.fun, or a row of what a function returns, e.g. soft_l1[1]); e.g. examples/two_layer.py:loss",
            option=option,
        )
    return where, name


def _row_of(name: str) -> tuple[str, int | None]:
    """``soft_l1[1]`` -> (``soft_l1``, 1): the row ``k`` of what the function returns
    (scipy's robust losses return ``[rho, rho', rho'']`` stacked); no index: None."""
    match = re.fullmatch(r"(.*)\[(\d+)\]", name)
    return (match.group(1), int(match.group(2))) if match else (name, None)


class _Row:
    """Row ``k`` of what ``function`` returns (it pickles when the function does)."""

    def __init__(self, function: Callable[..., Any], k: int, where: str) -> None:
        self.function, self.k, self.where = function, k, where
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.function(*args, **kwargs)
        try:
            return out[self.k]
        except (IndexError, TypeError, KeyError):
            raise BadValueError(
                f"{self.where} returned {type(out).__name__} with no row {self.k}; a target NAME[k] takes row k of "
                f"what the function returns"
            ) from None


_loaded: dict[str, ModuleType] = {}


def _is_module_path(where: str) -> bool:
    """``package.module`` (dotted identifiers) rather than a file path."""
    return not where.endswith(".py") and all(part.isidentifier() for part in where.split("."))


def _in_folder(text: str, folder: str | None) -> Path:
    path = Path(text).expanduser()
    return path if folder is None else Path(folder) / path


def _code_file(where: str, folder: str | None) -> Path | None:
    """The file a target's ``where`` names, taken from ``folder`` (None: the working
    folder): a path, or a module target naming a file there (``random`` and
    ``random.py``, preferred to a module of that name loaded already); None for a
    module imported by name."""
    path = _in_folder(where, folder)
    if not _is_module_path(where) or path.is_file():
        return path
    single = _in_folder(f"{where}.py", folder)
    return single if "." not in where and single.is_file() else None


def _import(where: str, role: str, folder: str | None = None) -> ModuleType:
    """Import a file by path, or a module by its dotted name (a package in ``folder``
    first, keeping its relative imports), once."""
    path = _code_file(where, folder)
    if path is not None:
        return _import_file(path, where, role)
    return _import_module(where, role, folder if folder is not None else os.getcwd())


def _import_module(where: str, role: str, home: str) -> ModuleType:
    if where not in _loaded:
        top = where.split(".", maxsplit=1)[0]
        elsewhere = _loaded_elsewhere(top, Path(home) / top)
        if elsewhere is not None:
            raise InputError(
                f"the package {top!r} in {home} has the name of a module loaded already ({elsewhere}); rename "
                f"the package, or give the file: FILE.py:FUNCTION",
                option=role,
            )
        sys.path.insert(0, home)
        try:
            if importlib.util.find_spec(top) is None:
                raise InputError(
                    f"no module {where!r} (from the working folder or installed); give FILE.py:FUNCTION "
                    f"or MODULE:FUNCTION",
                    option=role,
                )
            _loaded[where] = call_user(f"importing {where}", importlib.import_module, where)
        finally:
            sys.path.remove(home)
    return _loaded[where]


def _loaded_elsewhere(name: str, package: Path) -> str | None:
    """Where the module ``name`` is loaded from, when ``package`` (a folder) would be
    shadowed by it (``import`` would return the loaded one); else None."""
    loaded = sys.modules.get(name)
    file = getattr(loaded, "__file__", None)
    if not package.is_dir() or not file or Path(file).resolve().is_relative_to(package.resolve()):
        return None
    return str(file)


def _import_file(path: Path, shown: str, role: str) -> ModuleType:
    """Import the file at ``path`` (``shown`` as the user named it) under a name of its own."""
    if not path.exists():
        raise InputError(f"file {shown!r} not found; give an existing FILE.py:FUNCTION", option=role)
    if not path.is_file():
        raise InputError(f"{shown!r} is not a regular file; give a .py file", option=role)
    resolved = path.resolve()
    key = str(resolved)
    if key not in _loaded:
        stem = re.sub(r"\W", "_", path.stem)
        module_name = f"gradcheck_user_{len(_loaded)}_{stem}"
        spec = importlib.util.spec_from_file_location(module_name, resolved)
        if spec is None or spec.loader is None:
            raise InputError(f"{shown!r} cannot be loaded as a Python module; give a .py file", option=role)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(resolved.parent))  # so the file can import its neighbours
        try:
            call_user(f"importing {shown}", spec.loader.exec_module, module)
        finally:
            sys.path.remove(str(resolved.parent))
        _loaded[key] = module
    return _loaded[key]


def load_function(where: str, name: str, role: str, folder: str | None = None) -> Callable[..., Any]:
    """Import ``where`` (a file or a module, once, from ``folder``) and return its
    function ``name``; ``role`` is the option that named it (``loss``, ``grad``)."""
    name, row = _row_of(name)
    if row is not None:
        return _Row(load_function(where, name, role, folder), row, f"{where}:{name}")
    module = _import(where, role, folder)
    first, *rest = name.split(".")
    function = getattr(module, first, None)
    for depth, part in enumerate(rest, start=1):  # a method of a module-level object: problem.fun
        owner = ".".join([first, *rest[: depth - 1]])
        if function is None:
            break
        if not hasattr(function, part):
            available = sorted(
                a for a in dir(function) if not a.startswith("_") and callable(getattr(function, a, None))
            )
            raise InputError(
                f"{where}:{owner} has no attribute {part!r}; its methods: {', '.join(available) or 'none'}",
                option=role,
            )
        function = call_user(f"{where}:{owner}.{part}", getattr, function, part)
    if function is not None and rest and not callable(function):
        raise InputError(f"{where}:{name} is a {type(function).__name__}, not a function", option=role)
    if not callable(function):
        defined = sorted(
            k for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", "") == module.__name__
        )
        listing = ", ".join(defined) if defined else "none"
        raise InputError(f"{where} has no function {name!r}; functions defined there: {listing}", option=role)
    return function  # type: ignore[no-any-return]


INIT_HELP = "give an .npz written by numpy.savez (one array per parameter) or, for one parameter, an .npy"


def load_init(path: Path, shapes: dict[str, tuple[int, ...]], shown: str | None = None) -> Params:
    """Parameters from an ``.npz`` (or an ``.npy`` for one parameter); ``shapes``
    (possibly empty) must match it.  ``shown``: the path as the user gave it."""
    label = Path(shown) if shown is not None else path
    if not path.exists():
        raise InputError(f"file {str(label)!r} not found; {INIT_HELP}", option="init")
    if not path.is_file():
        raise InputError(f"{str(label)!r} is not a regular file; {INIT_HELP}", option="init")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception:
        raise InputError(f"{label} is not a numpy .npz or .npy file; {INIT_HELP}", option="init") from None
    if isinstance(loaded, np.ndarray):
        if len(shapes) != 1:
            raise InputError(
                f"{label} holds one array (.npy) but {len(shapes)} parameters are declared; "
                f"declare exactly one parameter, or give an .npz",
                option="init",
            )
        raw = {next(iter(shapes)): loaded}
    else:
        raw = _npz_members(loaded, label, "init")
    arrays: Params = {}
    for name, array in raw.items():
        if array.dtype.kind not in "fiu":
            kind = "complex" if array.dtype.kind == "c" else str(array.dtype)
            raise InputError(f"array {name} in {label} is {kind}; parameters must be real numbers", option="init")
        arrays[name] = np.asarray(array, dtype=np.float64)
    if shapes:
        missing = [n for n in shapes if n not in arrays]
        if missing:
            raise InputError(f"{label} has no array {', '.join(missing)}; it holds {', '.join(arrays)}", option="init")
        for name, shape in shapes.items():
            if arrays[name].shape != shape:
                raise InputError(
                    f"{name} in {label} has shape {arrays[name].shape}, but it is declared {shape}", option="init"
                )
        arrays = {n: arrays[n] for n in shapes}
    if not arrays:
        raise InputError(f"{label} holds no arrays", option="init")
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


FILE_KEYS = ("init", "data", "dout", "sparsity")  # options that name a file (not code)


@dataclass(frozen=True)
class FuncSpec:
    """A user check: the function, the derivative it is held against (exactly one
    kind of ``DERIVATIVE_KINDS``, ``grad`` also beside ``hess``/``hvp``/``hessp``), parameter
    shapes, optional files (init, fixed data, upstream gradient, sparsity) and
    constants."""

    loss: str
    grad: str | None = None
    params: ParamShapes = ()
    init: str | None = None
    seed: int = 0
    vjp: str | None = None
    jvp: str | None = None
    jac: str | None = None
    hess: str | None = None
    hvp: str | None = None
    hessp: str | None = None
    deriv: str | None = None
    deriv2: str | None = None
    value_and_grad: bool = False  # ``loss`` returns ``(loss, gradient)``: the gradient part is checked
    data: str | None = None
    const: Constants = ()
    dout: str | None = None
    sparsity: str | None = None
    # Where relative files and module targets are taken from (None: the working folder
    # when the check is loaded): fixed before any user code runs, since it may chdir.
    folder: str | None = None

    @classmethod
    def build(cls, values: dict[str, Any]) -> FuncSpec:
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def anchored(self) -> FuncSpec:
        """This spec with its folder fixed (the working folder, unless it has one)."""
        return self if self.folder is not None else replace(self, folder=os.getcwd())

    def file(self, text: str) -> Path:
        """A file this spec names, taken from its folder when relative."""
        return _in_folder(text, self.folder)

    @property
    def kind(self) -> str:
        """Which derivative is checked; an ``InputError`` unless exactly one is named."""
        named = [k for k in DERIVATIVE_KINDS if k != "grad" and getattr(self, k) is not None]
        if "deriv2" in named:
            if "deriv" not in named:
                raise InputError(
                    f"the elementwise second derivative is checked as the derivative of {option_ref('deriv')}; give "
                    f"{option_ref('deriv')} too",
                    option="deriv2",
                )
            named.remove("deriv")
        if len(named) > 1:
            raise InputError(
                f"--{named[0]} and --{named[1]} both given; a check holds one derivative against the function",
                option=named[1],
            )
        kind = named[0] if named else "grad"
        if self.value_and_grad and (named or self.grad is not None):
            raise InputError(
                f"{option_ref('value_and_grad')} takes the gradient from the function itself; give it without "
                f"{option_ref(named[0] if named else 'grad')}",
                option="value_and_grad",
            )
        if kind == "grad" and self.grad is None and not self.value_and_grad:
            raise InputError(
                f"no derivative to check; give {option_ref('grad')} (a loss's gradient), {option_ref('vjp')}, "
                f"{option_ref('jvp')}, {option_ref('jac')}, {option_ref('hess')}, {option_ref('hvp')} or "
                f"{option_ref('hessp')}",
                option="grad",
            )
        if kind in ("vjp", "jvp", "jac") and self.grad is not None:
            raise InputError(
                f"{option_ref('grad')} goes with a loss (alone, or beside {option_ref('hess')}, {option_ref('hvp')} "
                f"or {option_ref('hessp')}), not with {option_ref(kind)}",
                option="grad",
            )
        if self.dout is not None and kind != "vjp":
            raise InputError(
                f"{option_ref('dout')} is the upstream gradient of {option_ref('vjp')}; give it with "
                f"{option_ref('vjp')}",
                option="dout",
            )
        if self.sparsity is not None and kind != "jac":
            raise InputError(
                f"{option_ref('sparsity')} declares a Jacobian's pattern; give it with {option_ref('jac')}",
                option="sparsity",
            )
        return kind

    @property
    def derivative(self) -> str:
        target = self.loss if self.value_and_grad else getattr(self, self.kind)
        assert isinstance(target, str)
        return target

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": "func", "kind": self.kind, "function": self.loss}
        out.update({k: getattr(self, k) for k in DERIVATIVE_KINDS if getattr(self, k) is not None})
        out["params"] = {n: list(s) for n, s in self.params}
        out.update({k: getattr(self, k) for k in FILE_KEYS})
        out["const"] = dict(self.const)
        out["seed"] = self.seed
        if self.value_and_grad:
            out["value_and_grad"] = True
        return out

    def title(self) -> str:
        what = {
            "grad": "gradient",
            "vjp": "backward (VJP)",
            "jvp": "forward mode (JVP)",
            "jac": "Jacobian",
            "hess": "Hessian",
            "hvp": "Hessian-vector product",
            "hessp": "Hessian-vector product (scipy's hessp)",
            "deriv": "elementwise derivative",
            "deriv2": "elementwise second derivative",
        }[self.kind]
        if self.value_and_grad:
            return f"func {self.loss} with the gradient it returns beside its value"
        return f"func {self.loss} with {what} {self.derivative}"


@dataclass(frozen=True)
class LoadedFunction:
    """A user check ready to run: its functions imported, its parameters drawn or
    loaded, its fixed inputs read."""

    spec: FuncSpec
    loss: Callable[..., Any]
    derivative: Callable[..., Any]
    params: Params
    fixed: dict[str, Any]
    grad: Callable[..., Any] | None = None
    dout: Array | None = None
    sparsity: Params | None = None

    def call(self, function: Callable[..., Any], *args: Any, **params: Any) -> Any:
        """``function(*args, **params, **fixed)``, the fixed inputs it takes."""
        return function(*args, **params, **accepted(function, self.fixed))


DATA_HELP = "give an .npz of the fixed arrays, one per name"


def _arrays(spec: FuncSpec, option: str, help_text: str) -> Params:
    """The arrays of the .npz (or one .npy, named ``array``) that ``option`` names."""
    shown = getattr(spec, option)
    return load_arrays(spec.file(shown), option, help_text, shown)


def load_arrays(file: Path, option: str, help_text: str = DATA_HELP, shown: str | None = None) -> Params:
    """The arrays of an .npz (or one .npy, named ``array``), never unpickled; ``shown``:
    the path as the user gave it."""
    shown = str(file) if shown is None else shown
    if not file.is_file():
        what = "not found" if not file.exists() else "not a regular file"
        raise InputError(f"{shown!r} is {what}; {help_text}", option=option)
    try:
        loaded = np.load(file, allow_pickle=False)
    except Exception:
        raise InputError(f"{shown} is not a numpy .npz or .npy file; {help_text}", option=option) from None
    if isinstance(loaded, np.ndarray):
        return {"array": loaded}
    return _npz_members(loaded, Path(shown), option)


def _npz_members(loaded: Any, path: Path, option: str) -> Params:
    """The arrays of an opened .npz; an array of Python objects is refused, never
    unpickled (a pickle runs code)."""
    with loaded as data:
        out = {}
        for key in data.files:
            try:
                out[key] = data[key]
            except ValueError:
                raise InputError(
                    f"{path}: {key} is an array of Python objects, which is not loaded (it would be unpickled); "
                    f"save numbers, e.g. numpy.savez(file, {key}=array.astype(float))",
                    option=option,
                ) from None
        return out


def load_check(spec: FuncSpec) -> LoadedFunction:
    """Everything about a user check that can fail before its first evaluation:
    targets, imports, functions, parameters, fixed inputs, signatures."""
    spec = spec.anchored()  # before the imports: the code under test may chdir
    kind = spec.kind
    loss_where, loss_name = parse_target(spec.loss, "loss")
    derivative_where, derivative_name = parse_target(spec.derivative, kind)
    shapes = dict(spec.params)
    if spec.init is None and not shapes:
        raise InputError(
            "no parameters given; name each with its shape (NAME=SHAPE) or give an init .npz", option="params"
        )
    loss_fn = load_function(loss_where, loss_name, "loss", spec.folder)
    derivative_fn = load_function(derivative_where, derivative_name, kind, spec.folder)
    grad_fn = None
    if kind in ("hess", "hvp", "hessp") and spec.grad is not None:
        grad_where, grad_name = parse_target(spec.grad, "grad")
        grad_fn = load_function(grad_where, grad_name, "grad", spec.folder)
    params = load_init(spec.file(spec.init), shapes, spec.init) if spec.init else draw_params(shapes, spec.seed)
    if kind in ("deriv", "deriv2") and len(params) != 1:
        raise InputError(
            f"an elementwise derivative ({option_ref(kind)}) is of a function of one input, but there are "
            f"{len(params)} ({', '.join(params)}); give one",
            option=kind,
        )
    if kind == "hessp" and len(params) != 1:
        raise InputError(
            f"scipy's hessp(x, p) takes one parameter, x, but there are {len(params)} ({', '.join(params)}); give "
            f"one, or {option_ref('hvp')} HVP(v, **params) for several",
            option="hessp",
        )
    fixed: dict[str, Any] = {}
    if spec.data is not None:
        fixed.update(_arrays(spec, "data", DATA_HELP))
    fixed.update(copy.deepcopy(dict(spec.const)))  # the user's code may write into them (CS231n's bn_param)
    clash = sorted(set(fixed) & set(params))
    if clash:
        raise InputError(
            f"{clash[0]} is both a parameter and a fixed input ({option_ref('data')}/{option_ref('const')}); "
            f"a name is one or the other",
            option="data" if spec.data and clash[0] not in dict(spec.const) else "const",
        )
    _check_signature(spec.loss, loss_fn, [*params, *fixed])
    if kind in ("grad", "jac", "hess"):
        _check_signature(spec.derivative, derivative_fn, [*params, *accepted(derivative_fn, fixed)])
    if grad_fn is not None and spec.grad is not None:
        _check_signature(spec.grad, grad_fn, [*params, *accepted(grad_fn, fixed)])
    dout = None
    if spec.dout is not None:
        arrays = _arrays(spec, "dout", "give an .npy of the upstream gradient (the output's shape)")
        if len(arrays) != 1:
            raise InputError(f"{spec.dout} holds {len(arrays)} arrays; give one (.npy)", option="dout")
        dout = np.asarray(next(iter(arrays.values())), dtype=np.float64)
    sparsity = None
    if spec.sparsity is not None:
        sparsity = _arrays(spec, "sparsity", "give an .npz with a boolean mask per input")
    return LoadedFunction(spec, loss_fn, derivative_fn, params, fixed, grad_fn, dout, sparsity)


class UserFunction:
    """One of a user check's functions, called with the parameters as keywords and the
    fixed inputs it takes: ``f(params)``.  It pickles as its target and fixed inputs,
    so a worker process imports the file again by its path (a Dask worker that lacks
    the path, by the module name ``upload_file`` gave it)."""

    def __init__(
        self,
        target: str,
        role: str,
        fixed: dict[str, Any],
        function: Callable[..., Any] | None = None,
        folder: str | None = None,
        value_only: bool = False,
        positional: bool = False,
    ):
        where, name = parse_target(target, role)
        path = _code_file(where, folder)
        if path is not None:
            where = str(path.resolve())  # a worker's folder may differ
        self.target = f"{where}:{name}"
        self.role = role
        self.fixed = fixed
        self.folder = folder if folder is not None else os.getcwd()
        self.value_only = value_only  # the function returns (value, gradient): its value is called for
        self.positional = positional  # one input, passed by position (an elementwise derivative's)
        self._function = function

    def __getstate__(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "role": self.role,
            "fixed": self.fixed,
            "folder": self.folder,
            "value_only": self.value_only,
            "positional": self.positional,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._function = None

    def function(self) -> Callable[..., Any]:
        if self._function is None:
            where, name = parse_target(self.target, self.role)
            if where.endswith(".py") and not Path(where).is_file():
                module = importlib.import_module(re.sub(r"\W", "_", Path(where).stem))
                path, row = _row_of(name)
                found: Any = functools.reduce(getattr, path.split("."), module)  # problem.fun: a method
                self._function = found if row is None else _Row(found, row, self.target)
            else:
                self._function = load_function(where, name, self.role, self.folder)
        return self._function

    def load(self) -> None:
        """Import the function's module now (a worker does before its first move)."""
        self.function()

    def __call__(self, params: Params) -> Any:
        function = self.function()
        if self.positional:
            out = function(*params.values(), **accepted(function, self.fixed))
        else:
            out = function(**params, **accepted(function, self.fixed))
        return value_part(out, self.target) if self.value_only else out


def _hvp(kind: str, derivative: Callable[..., Any], call: Callable[..., Any]) -> Callable[..., Any] | None:
    """The HVP as the Hessian check calls it, ``hvp(v, params)``, from either convention:
    ``--hvp`` takes dicts by name, ``--hessp`` scipy's ``hessp(x, p)`` with arrays."""
    if kind == "hvp":
        return lambda v, p: call(derivative, v, **p)
    if kind == "hessp":
        return lambda v, p: call(derivative, *_hessp_args(v, p))
    return None


def _hessp_args(v: Params, params: Params) -> tuple[Array, Array]:
    """``(x, p)``: the one parameter's values and the vector, as arrays."""
    ((name, x),) = params.items()
    return x, v[name]


def _sources(spec: FuncSpec) -> tuple[str, ...]:
    """The files whose contents define a check: its code and its data."""
    targets = [parse_target(getattr(spec, k), k)[0] for k in ("loss", *DERIVATIVE_KINDS) if getattr(spec, k)]
    files = [_code_file(where, spec.folder) for where in targets]
    files += [spec.file(getattr(spec, k)) for k in FILE_KEYS if getattr(spec, k)]
    return tuple(sorted({str(f.resolve()) for f in files if f is not None and f.is_file()}))


def check_function(
    spec: FuncSpec | LoadedFunction,
    settings: Settings | None = None,
    *,
    progress: ProgressSink | None = None,
    name: str = "",
    execution: Execution | None = None,
) -> Report:
    """Load (unless loaded) and check a user's function and its derivative (``gradcheck func``);
    ``execution`` says where its evaluations run."""
    loaded = spec if isinstance(spec, LoadedFunction) else load_check(spec)
    report = _check_loaded(loaded, settings, progress, name, execution)
    report.notes.extend(_changed_constants(loaded))
    return report


def _check_elementwise(loaded: LoadedFunction, settings: Settings | None, common: dict[str, Any]) -> Report:
    """An elementwise derivative as a JVP: the Jacobian is diagonal, so along a tangent
    ``t`` the output moves by ``f'(z) * t``, and one evaluation per step moves every
    entry.  ``--deriv2`` is the derivative of ``--deriv``.  Derivatives take the one
    input by position (numpy-ml's ``fn(z)`` beside ``grad(x)``: the names differ)."""
    s = loaded.spec
    ((name, _),) = loaded.params.items()
    if s.kind == "deriv2":
        assert s.deriv is not None
        function = UserFunction(s.deriv, "deriv", loaded.fixed, None, s.folder, positional=True)
        function_name = s.deriv
    else:
        function = UserFunction(s.loss, "loss", loaded.fixed, loaded.loss, s.folder)
        function_name = s.loss
    derivative, call = loaded.derivative, loaded.call

    def along(t: Params, p: Params) -> Any:
        return np.asarray(plain_numbers(call(derivative, p[name]), s.derivative, "")) * t[name]

    return check_jvp(
        function, along, loaded.params, settings, function_name=function_name, tangent_name=s.derivative, **common
    )


def _changed_constants(loaded: LoadedFunction) -> list[str]:
    """What the user's code wrote into its fixed inputs while it ran, said: the report
    shows the values given (CS231n's batchnorm stores its running mean in bn_param)."""
    out = []
    for name, given in loaded.spec.const:
        now = loaded.fixed.get(name)
        if json.dumps(json_safe(now), sort_keys=True) != json.dumps(json_safe(given), sort_keys=True):
            out.append(
                f"the code under test changed the fixed input {name} while it ran (the check passes it a copy of "
                f"the value given, which the report shows)"
            )
    return out


def _check_loaded(
    loaded: LoadedFunction,
    settings: Settings | None,
    progress: ProgressSink | None,
    name: str,
    execution: Execution | None,
) -> Report:
    s = loaded.spec
    kind = s.kind
    derivative, call = loaded.derivative, loaded.call
    f = UserFunction(s.loss, "loss", loaded.fixed, loaded.loss, s.folder, value_only=s.value_and_grad)
    common: dict[str, Any] = {
        "progress": progress,
        "name": name,
        "title": s.title(),
        "model": s.describe(),
        "execution": execution,
        "_sources": _sources(s),
    }
    if kind == "grad":
        return check_gradients(
            f,
            (lambda p: gradient_part(call(derivative, **p), s.loss))
            if s.value_and_grad
            else (lambda p: call(derivative, **p)),
            loaded.params,
            settings,
            loss_name=s.loss,
            grad_name=s.derivative,
            **common,
        )
    if kind == "vjp":
        return check_vjp(
            f,
            LayerBackward(derivative, loaded.fixed),
            loaded.params,
            settings,
            dout=loaded.dout,
            forward_name=s.loss,
            backward_name=s.derivative,
            **common,
        )
    if kind in ("deriv", "deriv2"):
        return _check_elementwise(loaded, settings, common)
    if kind == "jvp":
        return check_jvp(
            f,
            lambda t, p: call(derivative, t, **p),
            loaded.params,
            settings,
            function_name=s.loss,
            tangent_name=s.derivative,
            **common,
        )
    if kind == "jac":
        return check_jacobian(
            f,
            lambda p: call(derivative, **p),
            loaded.params,
            settings,
            sparsity=loaded.sparsity,
            function_name=s.loss,
            jacobian_name=s.derivative,
            **common,
        )
    grad = UserFunction(s.grad, "grad", loaded.fixed, loaded.grad, s.folder) if s.grad is not None else None
    return check_hessian(
        f,
        loaded.params,
        settings,
        hessian=(lambda p: call(derivative, **p)) if kind == "hess" else None,
        hvp=_hvp(kind, derivative, call),
        gradient=grad,
        loss_name=s.loss,
        hessian_name=s.derivative,
        gradient_name=s.grad or "gradient",
        **common,
    )
