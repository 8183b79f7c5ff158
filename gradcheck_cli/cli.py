"""The command line: parse options, call the library, render, exit with ``Report.exit_code``.

Every check option comes from the tables in ``options.py``; this module only
turns them into click options and maps the library's errors to the flags.

Exit codes: 0 every parameter passes, 1 any parameter fails, 2 bad usage or input
(one line on stderr, never a traceback), 130 interrupted.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from ._version import __version__
from .check import check_model
from .config import build_spec, load_suite, run_check
from .engine import tune_allocator
from .errors import InputError, UserCodeError
from .models import MLP, LinearRegression
from .options import (
    CHECK_OPTIONS,
    FUNC_OPTIONS,
    LINREG_OPTIONS,
    MLP_OPTIONS,
    Option,
    parse_param,
    settings_from,
)
from .report import (
    RichProgress,
    render_report,
    render_suite_summary,
    render_summary,
    reports_to_junit,
)
from .result import EXIT_FAIL, EXIT_PASS, Report, suite_exit_code, suite_to_dict
from .userfunc import FuncSpec, check_function

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130

F = TypeVar("F", bound=Callable[..., Any])


class OptionType(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.3
    """A click type that parses with the option's own parser (``options.py``)."""

    def __init__(self, option: Option) -> None:
        self.option = option
        self.name = option.metavar or option.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.option.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class ParamSpec(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.3
    """``NAME=SHAPE``: ``W=4x3``, ``b=3``, ``s=`` (a scalar)."""

    name = "NAME=SHAPE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            return parse_param(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class OutputPath(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.3
    """A file to write: its folder must exist and be writable (checked before any work)."""

    name = "PATH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        path = Path(value)
        folder = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            self.fail(f"{str(path)!r} is a folder; give a file name, e.g. gradcheck.xml", param, ctx)
        if not folder.is_dir():
            self.fail(f"folder {str(folder)!r} does not exist; give a path in an existing folder", param, ctx)
        if not os.access(folder, os.W_OK):
            self.fail(f"folder {str(folder)!r} is not writable; give a path in a writable folder", param, ctx)
        return path


def _click_option(option: Option) -> Callable[[F], F]:
    """The click option for one table entry."""
    if option.flag:
        return click.option(option.flag_name, is_flag=True, default=option.default, help=option.help)
    if option.negatable:
        return click.option(
            f"{option.flag_name}/--no-{option.flag_name[2:]}",
            default=option.default,
            show_default=True,
            help=option.help,
        )
    # No default at all rather than None: click 8.3+ treats an explicit None as a given default.
    default = {} if option.default is None else {"default": option.default}
    return click.option(
        option.flag_name,
        type=OptionType(option),
        required=option.required,
        metavar=option.metavar,
        help=option.help,
        show_default=option.shown_default or option.default is not None,
        **default,
    )


def _options(options: Sequence[Option]) -> Callable[[F], F]:
    def decorate(command: F) -> F:
        for option in reversed(options):
            command = _click_option(option)(command)
        return command

    return decorate


def _output_options(command: F) -> F:
    """How to show the result: options of the command line alone (not suite keys)."""
    for option in reversed(
        [
            click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table."),
            click.option("--quiet", "-q", is_flag=True, help="No progress bar, no table: the verdict line only."),
            click.option(
                "--junit", type=OutputPath(), default=None, help="Also write a JUnit XML report to this path."
            ),
        ]
    ):
        command = option(command)
    return command


def _input_errors(command: F) -> F:
    """An ``InputError`` about an option of this command becomes click's usage error
    naming the flag (``Invalid value for '--engine': ...``)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            ctx = click.get_current_context()
            param = next((p for p in ctx.command.params if p.name == exc.option), None)
            if param is None:
                raise
            raise click.BadParameter(exc.message, ctx=ctx, param=param) from None

    return wrapper  # type: ignore[return-value]


def _progress(as_json: bool, quiet: bool) -> RichProgress | None:
    """A progress bar only for a person watching a terminal: not with --json, --quiet, or a pipe."""
    console = Console()
    if as_json or quiet or not console.is_terminal:
        return None
    return RichProgress(console)


def _stdout_console() -> Console:
    """Tables go to stdout; when it is not a terminal (a pipe, a CI log) use a wide page
    so no column is cut."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    return console


def _emit(reports: list[Report], as_json: bool, quiet: bool, junit: Path | None, suite: bool = False) -> int:
    """Print the report(s) (tables or JSON), write JUnit, return the exit code."""
    if as_json:
        click.echo(json.dumps(suite_to_dict(reports), indent=2) if suite else reports[0].to_json())
    else:
        console = _stdout_console()
        for report in reports:
            console.print(render_summary(report) if quiet else render_report(report, console.width))
            if suite:
                console.print()
        if suite:
            console.print(render_suite_summary(reports))
    if junit is not None:
        junit.write_text(reports_to_junit(reports), encoding="utf-8")
    return suite_exit_code(reports)


def _check_builtin(model_name: str, kw: dict[str, Any]) -> int:
    """Build a built-in model from the parsed options, check it, print, return the exit code."""
    spec = build_spec(model_name, kw)
    model = MLP(spec) if model_name == "mlp" else LinearRegression(spec)  # type: ignore[arg-type]
    report = check_model(
        model,
        settings_from(kw),
        engine=kw.get("engine", "auto"),
        max_memory=kw.get("max_memory"),
        progress=_progress(kw["as_json"], kw["quiet"]),
    )
    return _emit([report], kw["as_json"], kw["quiet"], kw["junit"])


class _Cli(click.Group):
    """A group whose errors are one line on stderr with exit code 2, never a traceback."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name or "gradcheck", complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())
            rv = EXIT_PASS
        except click.ClickException as exc:
            _error_line(exc.format_message())
            rv = EXIT_USAGE
        except InputError as exc:
            _error_line(str(exc))
            rv = EXIT_USAGE
        except UserCodeError as exc:
            _user_traceback(exc)
            _error_line(str(exc))
            rv = EXIT_USAGE
        except click.Abort:
            _error_line("interrupted; no verdict")
            rv = EXIT_INTERRUPTED
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else EXIT_PASS)


def _error_line(message: str) -> None:
    click.echo("Error: " + " ".join(message.split()), err=True)


def _user_traceback(exc: UserCodeError) -> None:
    """Show only the frames of the user's own code, then the error line."""
    frames = [f for f in traceback.extract_tb(exc.original.__traceback__) if not _is_ours(f.filename)]
    if frames:
        click.echo("Traceback (user code, most recent call last):", err=True)
        click.echo("".join(traceback.format_list(frames)).rstrip("\n"), err=True)


def _is_ours(filename: str) -> bool:
    return Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent) or "numpy" in Path(filename).parts


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradcheck")
def cli() -> None:
    """Check hand-derived gradients against finite differences.

    Matching dimensions do not prove a gradient right: gradcheck compares the
    analytic matrix-form gradient of every parameter with a numerical one and
    prints a per-parameter table. Exit code 0 = pass, 1 = fail, 2 = bad input,
    130 = interrupted.

    Example: gradcheck mlp --layers 4,8,3
    """


@cli.command()
@_options(MLP_OPTIONS + CHECK_OPTIONS["mlp"])
@_output_options
@_input_errors
def mlp(**kw: Any) -> int:
    """Check the backward pass of an MLP (matrix form, vectorised over the batch).

    Example: gradcheck mlp --layers 4,8,3 --activation relu --loss softmax-ce
    """
    return _check_builtin("mlp", kw)


@cli.command()
@_options(LINREG_OPTIONS + CHECK_OPTIONS["linreg"])
@_output_options
@_input_errors
def linreg(**kw: Any) -> int:
    """Check the linear-regression gradient (1/m) X^T (X theta - y).

    Example: gradcheck linreg --m 100 --n 3 --l2 0.1
    """
    return _check_builtin("linreg", kw)


_FUNC = {o.name: o for o in FUNC_OPTIONS}


@cli.command()
@click.argument("loss", metavar=_FUNC["loss"].metavar, type=OptionType(_FUNC["loss"]))
@_options([_FUNC["grad"]])
@click.option(
    "--param", "params", type=ParamSpec(), multiple=True, default=_FUNC["params"].default, help=_FUNC["params"].help
)
@_options([_FUNC["init"], *list(CHECK_OPTIONS["func"])])
@_output_options
@_input_errors
def func(**kw: Any) -> int:
    """Check your own gradient: LOSS(**params) -> float against GRAD(**params) -> dict.

    Parameters are drawn from --seed (standard normal) with the shapes of --param,
    or loaded with --init. Kinks (|x|, max) are found from the one-sided
    differences and judged by the subgradient rule.

    Example: gradcheck func examples/two_layer.py:loss --grad examples/two_layer.py:grad
    --param W1=4x8 --param b1=8 --param W2=8x2 --param b2=2
    """
    kw["params"] = _FUNC["params"].convert(kw["params"])
    spec = build_spec("func", kw)
    assert isinstance(spec, FuncSpec)
    report = check_function(spec, settings_from(kw), progress=_progress(kw["as_json"], kw["quiet"]))
    return _emit([report], kw["as_json"], kw["quiet"], kw["junit"])


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path), metavar="CONFIG.toml")
@_output_options
def run(config: Path, as_json: bool, junit: Path | None, quiet: bool) -> int:
    """Run every [[check]] of a TOML suite; exit 1 if any check fails.

    Every check takes the options of its command as keys (max_memory for
    --max-memory); see the README for the list.

    Example: gradcheck run configs/ci.toml --junit gradcheck.xml
    """
    checks = load_suite(config)
    reports = [run_check(c, _progress(as_json, quiet)) for c in checks]
    return _emit(reports, as_json, quiet, junit, suite=True)


def main(args: list[str] | None = None, prog_name: str = "gradcheck") -> None:
    """Console-script entry point."""
    tune_allocator()  # the whole process is ours: keep the engine's scratch memory warm
    cli.main(args=args, prog_name=prog_name)


__all__ = ["EXIT_FAIL", "EXIT_INTERRUPTED", "EXIT_PASS", "EXIT_USAGE", "cli", "main"]
