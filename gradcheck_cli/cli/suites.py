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

import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..checks.expression import ExprSpec
from ..checks.gradient import check_model
from ..checks.option_sets import MODEL_OPTIONS, MODELS, options_for
from ..checks.pipeline import ProgressSink
from ..checks.userfunc import FuncSpec, LoadedFunction, check_function, load_check
from ..core.errors import BadValueError, ConfigError, InputError, SpecError
from ..core.limits import MAX_CHECKS, MAX_SUITE_BYTES
from ..core.options import (
    EXECUTION_NAMES,
    SETTINGS_OPTIONS,
    Execution,
    Option,
    Settings,
    execution_from,
    settings_from,
)
from ..core.result import Report
from ..models import MLP, LinearRegression, LinRegSpec, MLPSpec

Spec = MLPSpec | LinRegSpec | FuncSpec | ExprSpec
SETTINGS_NAMES = {o.name for o in SETTINGS_OPTIONS}


def _toml_type(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(v), type(v).__name__
    )


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
    spec: Spec
    settings: Settings
    engine: str | None  # None where the model has no engine to choose (linreg, func)
    max_memory: float | None  # MiB
    where: str = ""  # "file:line" of the check's table, for messages
    key_lines: dict[str, int] = field(default_factory=dict)  # line of each key given
    loaded: LoadedFunction | None = None  # a func check, once prepare_suite imported it
    execution: Execution = field(default_factory=Execution)


def load_suite(path: str | Path) -> list[CheckConfig]:
    """Read and validate a suite; raises ``ConfigError`` naming file, line and key."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_SUITE_BYTES:
            raise ConfigError(
                f"{path}: the config file is {path.stat().st_size:,} bytes; the limit is {MAX_SUITE_BYTES:,} "
                f"(a suite is a short list of checks)"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror}); give a TOML file") from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is not part of the TOML
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); a suite is a TOML text file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line = max(1, len(text.splitlines())) if "end of document" in message else _line_from_message(message)
        raise ConfigError(f"{path}:{line}: not valid TOML: {_first_clause(message)}") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: values nested too deeply to read (arrays or tables inside one another, beyond Python's "
            f"recursion limit of {sys.getrecursionlimit()}); a suite's values are flat"
        ) from None
    lines = text.splitlines()
    extra = [k for k in data if k != "check"]
    if extra:
        raise ConfigError(f"{path}:1: unknown top-level key {extra[0]!r}; a suite holds only [[check]] tables")
    checks = data.get("check")
    if not isinstance(checks, list) or not checks:
        raise ConfigError(f"{path}:1: no [[check]] tables; add one per check, each with name and model")
    if len(checks) > MAX_CHECKS:
        raise ConfigError(f"{path}:1: {len(checks)} checks; the limit is {MAX_CHECKS} per suite")
    configs: list[CheckConfig] = []
    seen: set[str] = set()
    for index, table in enumerate(checks):
        config = _one_check(path, lines, index, table)
        if config.name in seen:
            raise ConfigError(
                f"{path}:{_line_of(lines, index, 'name')}: check name {config.name!r} is used twice; "
                f"give every check its own name"
            )
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
    name = table.get("name")
    if isinstance(name, str):
        label = f"check {name!r}"
    for key in ("name", "model"):
        if key not in table:
            raise fail(None, f"{label} has no {key!r}; every check needs name and model ({', '.join(MODELS)})")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", f"key 'name' in {label} must be a non-empty string; got {name!r} ({_toml_type(name)})")
    model = table["model"]
    if model not in MODELS:
        raise fail("model", f"key 'model' in {label}: {model!r} is not one of {', '.join(MODELS)}")
    schema = options_for(model)
    values = _converted(table, schema, model, label, fail)
    _resolve_paths(values, model, path.parent)
    try:
        settings = settings_from(values)
        spec = build_spec(model, values)
    except InputError as exc:
        if exc.option in schema:
            raise fail(exc.option, f"key {exc.option!r} in {label}: {exc.message}") from None
        raise fail(None, f"{label}: {exc}") from None
    key_lines = {key: _line_of(lines, index, key) for key in table}
    return CheckConfig(
        name,
        model,
        spec,
        settings,
        values.get("engine"),
        values.get("max_memory"),
        f"{path}:{_line_of(lines, index, None)}",
        key_lines,
        execution=execution_from(values),
    )


def _converted(
    table: dict[str, Any],
    schema: dict[str, Option],
    model: str,
    label: str,
    fail: Callable[[str | None, str], ConfigError],
) -> dict[str, Any]:
    """Every key of a check's table through its option's parser, the required ones
    present, the others at their defaults."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in ("name", "model"):
            continue
        option = schema.get(key)
        if option is None:
            valid = ", ".join(["name", "model", *schema])
            raise fail(key, f"unknown key {key!r} in {label} (model {model}); valid keys: {valid}")
        try:
            values[key] = option.convert(value)
        except InputError as exc:
            raise fail(key, f"key {key!r} in {label}: {exc.message}") from None
    for option in MODEL_OPTIONS[model]:
        if option.required and option.name not in values:
            raise fail(None, f"{label} (model {model}) needs the key {option.name!r}")
    return {**{o.name: o.default for o in schema.values()}, **values}


def _resolve_paths(values: dict[str, Any], model: str, folder: Path) -> None:
    """Files and modules a suite names are taken from the suite's folder."""
    if model in ("func", "expr"):
        values["folder"] = str(folder.absolute())
    if values.get("checkpoint") is not None:
        values["checkpoint"] = str(folder.absolute() / values["checkpoint"])


def build_spec(model: str, values: dict[str, Any]) -> Spec:
    """The model spec from parsed option values (every option of the model, and seed)."""
    if model == "mlp":
        return MLPSpec.build(
            values["layers"],
            values["activation"],
            values["activations"],
            values["loss"],
            values["bias"],
            values["m"],
            values["seed"],
        )
    if model == "linreg":
        return LinRegSpec.build(values["m"], values["n"], values["l2"], values["seed"])
    if model == "func":
        return FuncSpec.build(values)
    if model == "expr":
        return ExprSpec.build(values)
    raise SpecError("model", f"{model!r} is not one of {', '.join(MODELS)}")


def prepare_suite(checks: list[CheckConfig]) -> list[CheckConfig]:
    """Import every func check's code and load its parameters before any check runs,
    so a misspelled function or a missing file stops the suite at once (exit 2)
    rather than when its turn comes."""
    prepared = []
    for config in checks:
        if isinstance(config.spec, FuncSpec):
            try:
                loaded = load_check(config.spec)
            except BadValueError:
                raise  # the code under test misbehaved (exited, say): not a mistake in the suite
            except InputError as exc:
                line = config.key_lines.get(exc.option or "", 0)
                where = f"{config.where.rpartition(':')[0]}:{line}" if line else config.where
                key = f"key {exc.option!r} in " if line else ""
                raise ConfigError(f"{where}: {key}check {config.name!r}: {exc.message}") from None
            prepared.append(replace(config, loaded=loaded))
        else:
            prepared.append(config)
    return prepared


def run_check(
    config: CheckConfig, progress: ProgressSink | None = None, overrides: dict[str, Any] | None = None
) -> Report:
    """Run one configured check; ``overrides`` (settings and execution options given on
    the command line) replace the check's own.  The report carries the check's name."""
    given = overrides or {}
    settings = config.settings.updated(**{k: v for k, v in given.items() if k in SETTINGS_NAMES})
    execution = config.execution.updated(**{k: v for k, v in given.items() if k in EXECUTION_NAMES})
    if isinstance(config.spec, ExprSpec):
        return config.spec.check(settings, progress=progress, name=config.name, execution=execution)
    if isinstance(config.spec, FuncSpec):
        try:
            return check_function(
                config.loaded or config.spec, settings, progress=progress, name=config.name, execution=execution
            )
        except InputError as exc:
            raise InputError(f"check {config.name!r}: {exc}") from None
    model = MLP(config.spec) if isinstance(config.spec, MLPSpec) else LinearRegression(config.spec)
    report = check_model(
        model,
        settings,
        engine=config.engine or "auto",
        max_memory=config.max_memory,
        progress=progress,
        execution=execution,
    )
    report.name = config.name
    return report
