"""Config suites: ``configs/*.toml`` -> named checks -> reports.

A suite is a TOML file with one or more ``[[check]]`` tables.  Each has a ``name``,
a ``model`` (``mlp``, ``linreg`` or ``func``) and the same options as the command
line, spelled as TOML keys (``max_memory`` for ``--max-memory``)::

    [[check]]
    name = "seed model"
    model = "mlp"
    layers = [4, 8, 3]
    activations = ["sigmoid", "sigmoid"]
    bias = false

Errors name the file, the line and the key.  Nothing in a suite runs code except
the file a ``func`` check names.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .check import DTYPES, ENGINES, MODES, InputError, ProgressSink, Report, Settings, check_model
from .models import ACTIVATIONS, LOSSES, MLP, LinearRegression, LinRegSpec, MLPSpec, SpecError
from .numeric import METHODS
from .userfunc import FuncSpec, check_function, parse_param, parse_shape


class ConfigError(InputError):
    """A suite that cannot be run; the message starts with ``file:line:``."""


# ---- the schema: key -> (type name, validator) -----------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool))


def _choice(options: tuple[str, ...] | list[str]) -> tuple[str, Callable[[Any], bool]]:
    return f"one of {', '.join(map(repr, options))}", lambda v: v in options


def _int_at_least(low: int) -> tuple[str, Callable[[Any], bool]]:
    return f"an integer >= {low}", lambda v: _is_int(v) and v >= low


def _number_at_least(low: float) -> tuple[str, Callable[[Any], bool]]:
    return f"a number >= {low:g}", lambda v: _is_number(v) and v >= low


COMMON: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "name": ("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip())),
    "model": _choice(("mlp", "linreg", "func")),
    "method": _choice(METHODS),
    "eps": ('"auto" or a number > 0', lambda v: v == "auto" or (_is_number(v) and v > 0)),
    "dtype": _choice(DTYPES),
    "rtol": _number_at_least(0),
    "atol": _number_at_least(0),
    "mode": _choice(MODES),
    "samples": _int_at_least(1),
    "directions": _int_at_least(1),
    "taylor": ("true or false", lambda v: isinstance(v, bool)),
    "seed": ("an integer", _is_int),
    "engine": _choice(ENGINES),
    "max_memory": _int_at_least(1),
}
MODEL_KEYS: dict[str, dict[str, tuple[str, Callable[[Any], bool]]]] = {
    "mlp": {
        "layers": ('a list of sizes like [4, 8, 3] or a string "4,8,3"',
                   lambda v: isinstance(v, str) or (isinstance(v, list) and all(_is_int(n) for n in v))),
        "activation": _choice(list(ACTIVATIONS)),
        "activations": ('a list of activation names, one per layer',
                        lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v)),
        "loss": _choice(list(LOSSES)),
        "bias": ("true or false", lambda v: isinstance(v, bool)),
        "m": _int_at_least(1),
    },
    "linreg": {"m": _int_at_least(1), "n": _int_at_least(1), "l2": _number_at_least(0)},
    "func": {
        "loss": ('a string "FILE.py:FUNCTION"', lambda v: isinstance(v, str)),
        "grad": ('a string "FILE.py:FUNCTION"', lambda v: isinstance(v, str)),
        "params": ('a table like {W = "4x3", b = "3"}',
                   lambda v: isinstance(v, dict) and all(isinstance(s, str) for s in v.values())),
        "init": ('a path to an .npz file', lambda v: isinstance(v, str)),
    },
}
REQUIRED = {"mlp": ("layers",), "linreg": (), "func": ("loss", "grad")}


def _toml_type(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(v), type(v).__name__)


# ---- locating keys in the file -----------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[\s*check\s*\]\]")
_TABLE = re.compile(r"^\s*\[")


def _line_of(lines: list[str], check: int, key: str | None) -> int:
    """1-based line of ``key`` in the ``check``-th ``[[check]]`` table (its header if absent)."""
    headers = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    if check >= len(headers):
        return 1
    start = headers[check]
    if key is None:
        return start + 1
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for i in range(start + 1, len(lines)):
        if _HEADER.match(lines[i]) or (_TABLE.match(lines[i]) and not lines[i].lstrip().startswith("[check.")):
            break
        if pattern.match(lines[i]):
            return i + 1
    return start + 1


# ---- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckConfig:
    """One named check of a suite."""

    name: str
    model: str
    spec: MLPSpec | LinRegSpec | FuncSpec
    settings: Settings
    engine: str
    max_memory: int  # bytes


def load_suite(path: str | Path) -> list[CheckConfig]:
    """Read and validate a suite; raises ``ConfigError`` naming file, line and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror}); give a TOML file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line = max(1, len(text.splitlines())) if "end of document" in message else _line_from_message(message)
        raise ConfigError(f"{path}:{line}: not valid TOML: {_first_clause(message)}") from None
    lines = text.splitlines()
    extra = [k for k in data if k != "check"]
    if extra:
        raise ConfigError(f"{path}:1: unknown top-level key {extra[0]!r}; a suite holds only [[check]] tables")
    checks = data.get("check")
    if not isinstance(checks, list) or not checks:
        raise ConfigError(f"{path}:1: no [[check]] tables; add one per check, each with name and model")
    configs: list[CheckConfig] = []
    seen: set[str] = set()
    for index, table in enumerate(checks):
        config = _one_check(path, lines, index, table)
        if config.name in seen:
            raise ConfigError(f"{path}:{_line_of(lines, index, 'name')}: check name {config.name!r} is used twice; "
                              f"give every check its own name")
        seen.add(config.name)
        configs.append(config)
    return configs


def _line_from_message(message: str) -> int:
    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else 1


def _first_clause(message: str) -> str:
    return re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message).strip()


def _one_check(path: Path, lines: list[str], index: int, table: dict[str, Any]) -> CheckConfig:
    def fail(key: str | None, message: str) -> ConfigError:
        return ConfigError(f"{path}:{_line_of(lines, index, key)}: {message}")

    label = f"check {index + 1}"
    if "name" in table and isinstance(table["name"], str):
        label = f"check {table['name']!r}"
    for key in ("name", "model"):
        if key not in table:
            raise fail(None, f"{label} has no {key!r}; every check needs name and model (mlp, linreg or func)")
    model = table["model"]
    kind, valid = COMMON["model"]
    if not valid(model):
        raise fail("model", f"key 'model' in {label} must be {kind}; got {model!r}")
    schema = {**COMMON, **MODEL_KEYS[model]}
    for key, value in table.items():
        if key not in schema:
            raise fail(key, f"unknown key {key!r} in {label} (model {model}); valid keys: {', '.join(schema)}")
        expected, is_valid = schema[key]
        if not is_valid(value):
            shown = repr(value) if not isinstance(value, (dict, list)) else _toml_type(value)
            raise fail(key, f"key {key!r} in {label} must be {expected}; got {shown} ({_toml_type(value)})")
    for key in REQUIRED[model]:
        if key not in table:
            raise fail(None, f"{label} (model {model}) needs the key {key!r}")
    if model != "mlp" and table.get("engine") == "incremental":
        raise fail("engine", f"key 'engine' in {label}: the incremental engine is only for model mlp; "
                             f"use \"auto\" or \"loop\"")
    if model == "func" and "params" not in table and "init" not in table:
        raise fail(None, f"{label} (model func) needs 'params' (e.g. {{W = \"4x3\"}}) or 'init' (an .npz file)")

    seed = table.get("seed", 0)
    eps = table.get("eps", "auto")
    settings = Settings(
        method=table.get("method", "central"), mode=table.get("mode", "full"), dtype=table.get("dtype", "float64"),
        eps=None if eps == "auto" else float(eps), rtol=table.get("rtol"), atol=table.get("atol"),
        samples=table.get("samples", 16), directions=table.get("directions", 8),
        taylor=table.get("taylor", False), seed=seed,
    )
    try:
        spec = _spec(model, table, seed, path.parent)
    except SpecError as exc:
        raise fail(exc.field, f"key {exc.field!r} in {label}: {exc.message}") from None
    except InputError as exc:
        raise fail("params", f"{label}: {exc}") from None
    return CheckConfig(table["name"], model, spec, settings, table.get("engine", "auto"),
                       table.get("max_memory", 512) * 2**20)


def _spec(model: str, t: dict[str, Any], seed: int, base: Path) -> MLPSpec | LinRegSpec | FuncSpec:
    if model == "mlp":
        layers = t["layers"]
        if isinstance(layers, str):
            try:
                layers = [int(n) for n in layers.split(",")]
            except ValueError:
                raise SpecError("layers", f"{t['layers']!r} is not comma-separated whole numbers, e.g. \"4,8,3\"") \
                    from None
        return MLPSpec.build(layers, t.get("activation", "tanh"), t.get("activations"), t.get("loss", "mse"),
                             t.get("bias", True), t.get("m", 32), seed)
    if model == "linreg":
        return LinRegSpec.build(t.get("m", 100), t.get("n", 3), t.get("l2", 0.0), seed)
    params = tuple((name, parse_shape(shape)) for name, shape in t.get("params", {}).items())
    for name, _ in params:
        parse_param(f"{name}=")  # the name must be an identifier
    init = t.get("init")
    return FuncSpec(_relative(t["loss"], base), _relative(t["grad"], base), params,
                    None if init is None else str(base / init), seed)


def _relative(target: str, base: Path) -> str:
    """``FILE.py:FUNCTION`` with FILE taken relative to the config file's folder."""
    file, sep, function = target.rpartition(":")
    if not sep:
        return target
    return f"{os.path.normpath(base / file)}:{function}"


def run_check(config: CheckConfig, progress: ProgressSink | None = None) -> Report:
    """Run one configured check; the report carries the check's name."""
    if config.model == "func":
        assert isinstance(config.spec, FuncSpec)
        try:
            report = check_function(config.spec, config.settings, progress=progress)
        except InputError as exc:
            raise InputError(f"check {config.name!r}: {exc}") from None
    else:
        model = MLP(config.spec) if config.model == "mlp" else LinearRegression(config.spec)  # type: ignore[arg-type]
        report = check_model(model, config.settings, engine=config.engine, max_memory=config.max_memory,
                             progress=progress)
    report.name = config.name
    return report
