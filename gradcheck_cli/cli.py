"""The command line: parse options, call the library, render, exit with ``Report.exit_code``.

Exit codes: 0 every parameter passes, 1 any parameter fails, 2 bad usage or input
(one line on stderr, never a traceback).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from . import __version__
from .check import DTYPES, ENGINES, MODES, InputError, Report, Settings, check_model
from .config import load_suite, run_check
from .engine import DEFAULT_MAX_MEMORY, tune_allocator
from .models import ACTIVATIONS, LOSSES, MLP, LinearRegression, LinRegSpec, MLPSpec, SpecError
from .numeric import METHODS, BadValueError, UserCodeError
from .report import RichProgress, render_suite_summary, render_summary, reports_to_junit, suite_to_dict
from .userfunc import FuncSpec, check_function, parse_param

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class SizeList(click.ParamType):
    """Comma-separated layer sizes, e.g. ``4,8,3``: at least two whole numbers >= 1."""

    name = "n0,n1,...,nL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        sizes = []
        for position, part in enumerate(parts, start=1):
            text = part.strip()
            if not text:
                self.fail(f"size {position} of {value!r} is empty; give comma-separated whole numbers, e.g. 4,8,3",
                          param, ctx)
            try:
                size = int(text)
            except ValueError:
                self.fail(f"{text!r} is not a whole number; give comma-separated layer sizes, e.g. 4,8,3", param, ctx)
            if size < 1:
                self.fail(f"size {position} is {size}; every layer needs at least 1 unit, e.g. 4,8,3", param, ctx)
            sizes.append(size)
        if len(sizes) < 2:
            self.fail(f"{value!r} has one size; give at least two (input,...,output), e.g. 4,8,3", param, ctx)
        return tuple(sizes)


class NameList(click.ParamType):
    """Comma-separated names, each from a fixed set."""

    name = "a1,...,aL"

    def __init__(self, choices: list[str]) -> None:
        self.choices = choices

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        names = tuple(part.strip() for part in str(value).split(","))
        for name in names:
            if name not in self.choices:
                self.fail(f"{name!r} is not one of {', '.join(self.choices)}", param, ctx)
        return names


class Step(click.ParamType):
    """``auto`` or a positive relative step."""

    name = "auto|FLOAT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | None:
        if value is None or value == "auto":
            return None
        try:
            step = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor a number; e.g. --eps auto or --eps 1e-6", param, ctx)
        if not step > 0 or step == float("inf"):
            self.fail(f"{value!r} is not a positive finite number; e.g. --eps 1e-6", param, ctx)
        return step


class Tolerance(click.ParamType):
    """A finite number >= 0."""

    name = "FLOAT>=0"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            number = float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number; give a number >= 0, e.g. 1e-6", param, ctx)
        if not 0 <= number < float("inf"):
            self.fail(f"{value!r} is not >= 0; give a finite number >= 0, e.g. 1e-6", param, ctx)
        return number


class OutputPath(click.ParamType):
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


def _check_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every checking command shares."""
    options = [
        click.option("--method", type=click.Choice(METHODS), default="central", show_default=True,
                     help="Difference method: central, forward, richardson (4th order) or complex step."),
        click.option("--eps", type=Step(), default="auto", show_default=True,
                     help="Relative step h = eps*max(1,|x|); auto picks it per method."),
        click.option("--dtype", type=click.Choice(DTYPES), default="float64", show_default=True,
                     help="dtype of the model and its analytic gradients (the reference is float64)."),
        click.option("--rtol", type=Tolerance(), default=None,
                     help="Relative tolerance [default: per dtype and method, see README]."),
        click.option("--atol", type=Tolerance(), default=None,
                     help="Absolute tolerance [default: per dtype and method, see README]."),
        click.option("--mode", type=click.Choice(MODES), default="full", show_default=True,
                     help="full: every entry; sample: --samples entries per parameter; "
                          "directional: --directions random directions per parameter."),
        click.option("--samples", type=click.IntRange(min=1), default=16, show_default=True,
                     help="Entries per parameter with --mode sample."),
        click.option("--directions", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Directions per parameter with --mode directional."),
        click.option("--taylor", is_flag=True, help="Also run the Taylor test (order 2 = correct)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for data, weights and sampling."),
        click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
                     help="Numerical side for built-in models: incremental (fast), loop (one forward pass "
                          "per perturbation) or auto."),
        click.option("--max-memory", type=click.IntRange(min=1), default=DEFAULT_MAX_MEMORY // 2**20,
                     show_default=True, help="MiB of scratch space the incremental engine may use."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar, no table: the verdict line only."),
        click.option("--junit", type=OutputPath(), default=None, help="Also write a JUnit XML report to this path."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _settings(kw: dict[str, Any]) -> Settings:
    return Settings(method=kw["method"], mode=kw["mode"], dtype=kw["dtype"], eps=kw["eps"], rtol=kw["rtol"],
                    atol=kw["atol"], samples=kw["samples"], directions=kw["directions"], taylor=kw["taylor"],
                    seed=kw["seed"])


def _progress(as_json: bool, quiet: bool) -> RichProgress | None:
    """A progress bar only for a person watching a terminal: not with --json, --quiet, or a pipe."""
    console = Console()
    if as_json or quiet or not console.is_terminal:
        return None
    return RichProgress(console)


def _engine_options(kw: dict[str, Any]) -> dict[str, Any]:
    return {"engine": kw["engine"], "max_memory": kw["max_memory"] * 2**20,
            "progress": _progress(kw["as_json"], kw["quiet"])}


def _emit(reports: list[Report], as_json: bool, quiet: bool, junit: Path | None, suite: bool = False) -> int:
    """Print the report(s) (tables or JSON), write JUnit, return the exit code."""
    if as_json:
        click.echo(json.dumps(suite_to_dict(reports), indent=2) if suite else reports[0].to_json())
    else:
        console = _stdout_console()
        for report in reports:
            console.print(render_summary(report) if quiet else report)
            if suite:
                console.print()
        if suite:
            console.print(render_suite_summary(reports))
    if junit is not None:
        junit.write_text(reports_to_junit(reports), encoding="utf-8")
    return EXIT_PASS if all(r.passed for r in reports) else EXIT_FAIL


def _stdout_console() -> Console:
    """Tables go to stdout; when it is not a terminal (a pipe, a CI log) use a wide page
    so no column is cut."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    return console


def _spec_errors(command: Callable[..., int]) -> Callable[..., int]:
    """Turn a spec the model rejects into the same one-line usage error as a bad option."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return command(*args, **kwargs)
        except SpecError as exc:
            raise click.BadParameter(exc.message, param_hint=f"'--{exc.field}'") from None

    return wrapper


class _Cli(click.Group):
    """A group whose errors are one line on stderr with exit code 2, never a traceback."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            rv = super().main(args, prog_name or "gradcheck", complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())
            rv = EXIT_PASS
        except click.ClickException as exc:
            _error_line(exc.format_message())
            rv = EXIT_USAGE
        except (InputError, BadValueError) as exc:
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
    import traceback

    tb = exc.original.__traceback__
    frames = [f for f in traceback.extract_tb(tb) if not _is_ours(f.filename)]
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
    prints a per-parameter table. Exit code 0 = pass, 1 = fail, 2 = bad input.

    Example: gradcheck mlp --layers 4,8,3
    """


@cli.command()
@click.option("--layers", type=SizeList(), required=True, help="Layer sizes n0,n1,...,nL, e.g. 4,8,3.")
@click.option("--activation", type=click.Choice(list(ACTIVATIONS)), default="tanh", show_default=True,
              help="Activation of every hidden layer.")
@click.option("--activations", type=NameList(list(ACTIVATIONS) + ["softmax"]), default=None,
              help="One activation per layer (hidden and output), e.g. relu,tanh,identity.")
@click.option("--loss", type=click.Choice(list(LOSSES)), default="mse", show_default=True,
              help="mse (identity output), bce (sigmoid output) or softmax-ce (softmax output, integer labels).")
@click.option("--bias/--no-bias", default=True, show_default=True, help="--no-bias is the seed's exact model.")
@click.option("--m", type=click.IntRange(min=1), default=32, show_default=True, help="Number of samples.")
@_check_options
@_spec_errors
def mlp(layers: tuple[int, ...], activation: str, activations: tuple[str, ...] | None, loss: str, bias: bool,
        m: int, **kw: Any) -> int:
    """Check the backward pass of an MLP (matrix form, vectorised over the batch).

    Example: gradcheck mlp --layers 4,8,3 --activation relu --loss softmax-ce
    """
    spec = MLPSpec.build(layers, activation, activations, loss, bias, m, kw["seed"])
    report = check_model(MLP(spec), _settings(kw), **_engine_options(kw))
    return _emit([report], kw["as_json"], kw["quiet"], kw["junit"])


@cli.command()
@click.option("--m", type=click.IntRange(min=1), default=100, show_default=True, help="Number of samples.")
@click.option("--n", type=click.IntRange(min=1), default=3, show_default=True, help="Number of features.")
@click.option("--l2", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Ridge strength: adds l2/(2m)*||theta[1:]||^2 (the bias is not penalised).")
@_check_options
@_spec_errors
def linreg(m: int, n: int, l2: float, **kw: Any) -> int:
    """Check the linear-regression gradient (1/m) X^T (X theta - y).

    Example: gradcheck linreg --m 100 --n 3 --l2 0.1
    """
    spec = LinRegSpec.build(m, n, l2, kw["seed"])
    report = check_model(LinearRegression(spec), _settings(kw), **_engine_options(kw))
    return _emit([report], kw["as_json"], kw["quiet"], kw["junit"])


class ParamSpec(click.ParamType):
    """``NAME=SHAPE``: ``W=4x3``, ``b=3``, ``s=`` (a scalar)."""

    name = "NAME=SHAPE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, tuple]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_param(str(value))
        except InputError as exc:
            self.fail(str(exc), param, ctx)


@cli.command()
@click.argument("loss", metavar="FILE.py:LOSS")
@click.option("--grad", required=True, metavar="FILE.py:GRAD", help="Your gradient: GRAD(**params) -> dict.")
@click.option("--param", "params", type=ParamSpec(), multiple=True,
              help="A parameter and its shape, e.g. W=4x3, b=3, s= (scalar); repeat for each.")
@click.option("--init", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start from the arrays of this .npz instead of drawing them from --seed.")
@_check_options
def func(loss: str, grad: str, params: tuple[tuple[str, tuple[int, ...]], ...], init: Path | None,
         **kw: Any) -> int:
    """Check your own gradient: LOSS(**params) -> float against GRAD(**params) -> dict.

    Parameters are drawn from --seed (standard normal) with the shapes of --param,
    or loaded with --init. Kinks (|x|, max) are found from the one-sided
    differences and judged by the subgradient rule.

    Example: gradcheck func examples/two_layer.py:loss --grad examples/two_layer.py:grad
    --param W1=4x8 --param b1=8 --param W2=8x2 --param b2=2
    """
    if kw["engine"] == "incremental":
        raise click.BadParameter("the incremental engine is only for mlp; use auto or loop", param_hint="'--engine'")
    spec = FuncSpec(loss, grad, params, None if init is None else str(init), kw["seed"])
    report = check_function(spec, _settings(kw), progress=_progress(kw["as_json"], kw["quiet"]))
    return _emit([report], kw["as_json"], kw["quiet"], kw["junit"])


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path), metavar="CONFIG.toml")
@click.option("--json", "as_json", is_flag=True, help="Print the suite's reports as JSON instead of tables.")
@click.option("--junit", type=OutputPath(), default=None,
              help="Also write a JUnit XML report (one testcase per parameter per check).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no tables: verdict lines and the summary.")
def run(config: Path, as_json: bool, junit: Path | None, quiet: bool) -> int:
    """Run every [[check]] of a TOML suite; exit 1 if any check fails.

    Example: gradcheck run configs/ci.toml --junit gradcheck.xml
    """
    checks = load_suite(config)
    reports = [run_check(c, _progress(as_json, quiet)) for c in checks]
    return _emit(reports, as_json, quiet, junit, suite=True)


def main(args: list[str] | None = None, prog_name: str = "gradcheck") -> None:
    """Console-script entry point."""
    tune_allocator()  # the whole process is ours: keep the engine's scratch memory warm
    cli.main(args=args, prog_name=prog_name)
