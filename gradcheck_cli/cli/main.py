"""The command line: parse options, call the library, render, exit with ``Report.exit_code``.

Every check option comes from the option table (``core.options``,
``checks.option_sets``); this module only turns them into click options and maps
the library's errors to the flags.  The exit codes are ``core.result.EXIT_CODES``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from .._version import __version__
from ..checks.expression import ExprSpec, explain_expression
from ..checks.gradient import check_model
from ..checks.option_sets import CHECK_OPTIONS, ENGINE_OPTIONS, LINREG_OPTIONS, MLP_OPTIONS
from ..checks.pipeline import ProgressSink
from ..checks.sweep import sweep_model, sweep_steps
from ..checks.userfunc import FuncSpec, check_function, load_arrays, load_check
from ..checks.zoo_check import ZOO_LAYERS, check_zoo
from ..core.errors import (
    CheckInterrupted,
    ConfigError,
    GradcheckError,
    InputError,
    TimeLimitExceeded,
    UserCodeError,
    command_line,
)
from ..core.options import (
    DERIVATIVE_KINDS,
    EXECUTION_OPTIONS,
    EXPR_OPTIONS,
    FUNC_OPTIONS,
    SETTINGS_OPTIONS,
    Option,
    execution_from,
    parse_param,
    settings_from,
)
from ..core.result import (
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_USAGE,
    CheckError,
    Outcome,
    Report,
    SweepResult,
    suite_exit_code,
    suite_to_dict,
)
from ..core.text import exit_codes_line
from ..execution.supervisor import Channel, Limits, RemoteProgress, forward_progress, supervised
from ..execution.usercode import user_frames
from ..insight.explain import explain_linreg, explain_mlp, itemsize_of
from ..models import MLP, LinearRegression, LinRegSpec, MLPSpec
from ..probes.engine import tune_allocator
from ..render.image import write_sweep_image
from ..render.report import (
    WIDE,
    RichProgress,
    is_junit_report,
    render_error,
    render_explanation,
    render_plain,
    render_report,
    render_suite_summary,
    render_summary,
    render_sweep,
    render_zoo,
    reports_to_junit,
)
from .suites import CheckConfig, build_spec, load_suite, prepare_suite, run_check

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


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
    """A file to write, checked before any work: a regular file, or one that can be
    created (tried, then removed).  A folder (``reports/``, made if it is not there)
    gets ``default_name`` inside it."""

    name = "PATH"

    def __init__(self, default_name: str = "gradcheck.xml") -> None:
        self.default_name = default_name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        path = Path(value)
        if str(value).endswith(("/", os.sep)) or path.is_dir():
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.fail(f"cannot make the folder {str(path)!r} ({exc.strerror}); give a writable path", param, ctx)
            path = path / self.default_name
        if path.is_symlink() and not path.exists():
            return self._through_link(path, param, ctx)
        if path.exists():
            if not path.is_file():
                self.fail(f"{str(path)!r} is not a regular file; give a file path, e.g. gradcheck.xml", param, ctx)
            if not os.access(path, os.W_OK):
                self.fail(f"{str(path)!r} is not writable; give a writable path", param, ctx)
            return path
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            self.fail(f"folder {str(folder)!r} does not exist; give a path in an existing folder", param, ctx)
        try:
            path.open("x").close()
            path.unlink()
        except OSError as exc:
            self.fail(f"cannot create {str(path)!r} ({exc.strerror}); give a path in a writable folder", param, ctx)
        return path

    def _through_link(self, path: Path, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        """A symbolic link to a file not there yet is followed deliberately, as a shell's
        ``>`` does: the file is made where the link points, and the link kept."""
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.fail(f"{str(path)!r} is a loop of symbolic links; give a file path", param, ctx)
        target = Path(os.path.realpath(path))
        if not target.parent.is_dir():
            self.fail(
                f"{str(path)!r} links to {str(target)!r}, whose folder does not exist; make the folder, or give "
                f"another path",
                param,
                ctx,
            )
        try:
            target.open("x").close()
            target.unlink()
        except OSError as exc:
            self.fail(
                f"cannot create {str(target)!r}, where {str(path)!r} links ({exc.strerror}); give a path "
                f"in a writable folder",
                param,
                ctx,
            )
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
            click.option(
                "--overwrite",
                is_flag=True,
                help="Let --junit replace an existing file that is not a JUnit report.",
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
            raise click.BadParameter(exc.flag_message, ctx=ctx, param=param) from None

    return wrapper  # type: ignore[return-value]


class _Output:
    """Where results go: tables (or JSON) to stdout, printed as each check finishes;
    JUnit to its file at the end.  Plain lines when stdout is not a terminal; a
    reader that closes the pipe early ends the printing, not the check."""

    def __init__(self, as_json: bool, quiet: bool, junit: Path | None, overwrite: bool) -> None:
        self.as_json, self.quiet, self.junit = as_json, quiet, junit
        if junit is not None and junit.is_file() and not overwrite:
            try:
                text = junit.read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            if not is_junit_report(text):
                raise click.BadParameter(
                    f"{str(junit)!r} exists and is not a JUnit report; give a new path, or --overwrite to replace it",
                    param_hint="'--junit'",
                )
        self.stdout = sys.stdout if sys.stdout is not None else open(os.devnull, "w")  # noqa: SIM115
        self.console = Console(file=self.stdout)
        self.terminal = self.console.is_terminal
        self.broken = False
        # Why the report could not be written (a closed or full standard output): the
        # verdict cannot reach its reader, so the exit is 2.
        self.unwritable = "" if sys.stdout is not None else "standard output is closed"

    def progress(self, label: str = "") -> RichProgress | None:
        """A progress bar only for a person watching a terminal: not with --json,
        --quiet, or a pipe.  It draws on stderr, clear of the results."""
        if self.as_json or self.quiet or not self.terminal:
            return None
        return RichProgress(Console(stderr=True), label=label)

    def _write(self, renderable: Any) -> None:
        if self.broken:
            return
        try:
            if self.terminal:
                self.console.print(renderable)
            else:
                self.stdout.write(render_plain(renderable))
                self.stdout.flush()
        except BrokenPipeError:
            self._close_pipe()
        except (OSError, ValueError) as exc:
            self._unwritable(exc)

    def _unwritable(self, exc: BaseException) -> None:
        self.unwritable = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        self._close_pipe()  # what is still buffered goes nowhere at exit, not into a traceback

    def _close_pipe(self) -> None:
        """The reader is gone: send the rest of our output nowhere, keep the verdict."""
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass

    def show(self, outcome: Outcome, suite: bool = False) -> None:
        """One check's result, as soon as it is known (not with --json)."""
        if self.as_json:
            return
        if isinstance(outcome, CheckError):
            self._write(render_error(outcome))
        elif self.quiet:
            self._write(render_summary(outcome))
        else:
            self._write(render_report(outcome, self.console.width if self.terminal else WIDE))
        if suite and not self.quiet:
            self._write("")

    def finish(self, outcomes: list[Outcome], unrun: Sequence[str] = (), suite: bool = False) -> int:
        """JSON or the suite summary, the JUnit file; returns the exit code."""
        if self.as_json:
            data = suite_to_dict(outcomes, unrun) if suite else outcomes[0].to_dict()
            self._write_json(json.dumps(data, indent=2))
        elif suite:
            self._write(render_suite_summary(outcomes, unrun))
        if self.junit is not None:
            try:
                self.junit.write_text(reports_to_junit(outcomes, unrun), encoding="utf-8")
            except OSError as exc:
                _error_line(f"cannot write the JUnit report to {self.junit} ({exc.strerror}); give a writable path")
                return EXIT_USAGE
        if self.unwritable:
            _error_line(f"cannot write the report to standard output ({self.unwritable}); the verdict was not shown")
            return EXIT_USAGE
        return suite_exit_code(outcomes, unrun)

    def write(self, renderable: Any) -> None:
        """Something shown beside the results (a derivation); nothing with --json or --quiet."""
        if not self.as_json and not self.quiet:
            self._write(renderable)

    def emit(self, renderable: Any, data: dict[str, Any]) -> None:
        """A result that is not a check's report (the zoo): its table, or its JSON."""
        if self.as_json:
            self._write_json(json.dumps(data, indent=2))
        else:
            self._write(renderable)

    def _write_json(self, text: str) -> None:
        if self.broken:
            return
        try:
            self.stdout.write(text + "\n")
            self.stdout.flush()
        except BrokenPipeError:
            self._close_pipe()
        except (OSError, ValueError) as exc:
            self._unwritable(exc)


def _limits(kw: dict[str, Any]) -> Limits:
    """How long the supervised work may run: --timeout per call of user code, and
    --max-seconds for the whole check (unless --force)."""
    return Limits(kw.get("timeout"), None if kw.get("force") else kw.get("max_seconds"))


def _supervise(run: Callable[[ProgressSink | None], T], progress: RichProgress | None, limits: Limits) -> T:
    """``run(progress)`` in a supervised child: this process runs no user code, draws
    the progress bar and keeps the verdict whatever the child does."""

    def work(channel: Channel) -> T:
        return run(RemoteProgress(channel) if progress is not None else None)

    with contextlib.redirect_stdout(sys.stderr):  # unsupervised (no fork here): user prints to stderr
        return supervised(work, forward_progress(progress), limits)


def _run_one(output: _Output, run: Callable[[ProgressSink | None], Report], limits: Limits) -> int:
    """Run one check under the supervisor, show it, finish: the exit code.  Ctrl-C
    shows the parameters that finished, marked incomplete, and exits 130; past
    --max-seconds they are shown too, and the exit is 2."""
    try:
        report = _supervise(run, output.progress(), limits)
    except CheckInterrupted as exc:
        report = exc.report
    except TimeLimitExceeded as exc:
        if exc.report is None:
            raise
        exc.report.stopped = str(exc)
        output.show(exc.report)
        code = output.finish([exc.report])
        _error_line(command_line(exc))
        return code
    output.show(report)
    return output.finish([report])


def _check_builtin(model_name: str, kw: dict[str, Any]) -> int:
    """Build a built-in model from the parsed options, check it, print, return the exit code."""
    output = _Output(kw["as_json"], kw["quiet"], kw["junit"], kw["overwrite"])
    spec = build_spec(model_name, kw)
    model = MLP(spec) if model_name == "mlp" else LinearRegression(spec)  # type: ignore[arg-type]
    if kw["explain"]:
        itemsize = itemsize_of(settings_from(kw).dtype)
        assert isinstance(spec, (MLPSpec, LinRegSpec))
        derivation = explain_mlp(spec, itemsize) if isinstance(spec, MLPSpec) else explain_linreg(spec, itemsize)
        output.write(render_explanation(derivation))
    return _run_one(
        output,
        lambda progress: check_model(
            model,
            settings_from(kw),
            engine=kw.get("engine", "auto"),
            max_memory=kw.get("max_memory"),
            progress=progress,
            execution=execution_from(kw),
        ),
        _limits(kw),
    )


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
        except click.exceptions.NoArgsIsHelpError as exc:  # a command was expected: usage, exit 2
            path, group = exc.ctx.command_path, exc.ctx.command
            names = ", ".join(sorted(group.commands)) if isinstance(group, click.Group) else ""
            _error_line(f"no command given; usage: {path} COMMAND [ARGS]..., COMMAND one of {names} ({path} --help)")
            rv = EXIT_USAGE
        except click.ClickException as exc:
            _error_line(exc.format_message())
            rv = EXIT_USAGE
        except InputError as exc:
            _error_line(command_line(exc))
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
    lines = exc.frames if exc.frames is not None else user_frames(exc.original)
    if lines:
        click.echo("Traceback (user code, most recent call last):", err=True)
        click.echo("".join(lines).rstrip("\n"), err=True)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]}, epilog=exit_codes_line())
@click.version_option(__version__, prog_name="gradcheck")
def cli() -> None:
    """Check hand-derived gradients against finite differences.

    Matching dimensions do not prove a gradient right: gradcheck compares the
    analytic matrix-form gradient of every parameter with a numerical one and
    prints a per-parameter table; the exit code is the verdict.

    Example: gradcheck mlp --layers 4,8,3
    """


_EXPLAIN = click.option(
    "--explain",
    is_flag=True,
    help="Before the table, the backward pass as the seed derives it: as scalars, then matrices with every shape.",
)


@cli.command()
@_options(MLP_OPTIONS + CHECK_OPTIONS["mlp"])
@_EXPLAIN
@_output_options
@_input_errors
def mlp(**kw: Any) -> int:
    """Check the backward pass of an MLP (matrix form, vectorised over the batch).

    Example: gradcheck mlp --layers 4,8,3 --activation relu --loss softmax-ce
    """
    return _check_builtin("mlp", kw)


@cli.command()
@_options(LINREG_OPTIONS + CHECK_OPTIONS["linreg"])
@_EXPLAIN
@_output_options
@_input_errors
def linreg(**kw: Any) -> int:
    """Check the linear-regression gradient (1/m) X^T (X theta - y).

    Example: gradcheck linreg --m 100 --n 3 --l2 0.1
    """
    return _check_builtin("linreg", kw)


_FUNC = {o.name: o for o in FUNC_OPTIONS}
# Repeatable NAME=JSON, converted by the option's own parser in the command.
_CONST = click.option(
    "--const",
    "const",
    multiple=True,
    default=_FUNC["const"].default,
    metavar=_FUNC["const"].metavar,
    help=_FUNC["const"].help,
)


@cli.command()
@click.argument("loss", metavar=_FUNC["loss"].metavar, type=OptionType(_FUNC["loss"]))
@_options([*(_FUNC[k] for k in DERIVATIVE_KINDS), _FUNC["value_and_grad"]])
@click.option(
    "--param", "params", type=ParamSpec(), multiple=True, default=_FUNC["params"].default, help=_FUNC["params"].help
)
@_options([_FUNC["init"], _FUNC["data"]])
@_CONST
@_options([_FUNC["dout"], _FUNC["sparsity"], *list(CHECK_OPTIONS["func"])])
@_output_options
@_input_errors
def func(**kw: Any) -> int:
    """Check your own derivative code against finite differences of your function.

    \b
    A loss's gradient:   FUNCTION(**params) -> float,  --grad GRAD(**params) -> dict
    A layer's backward:  FUNCTION(**inputs) -> out or (out, cache),
                         --vjp BACKWARD(dout, **inputs) or BACKWARD(dout, cache)
    Forward mode:        --jvp JVP(tangents, **inputs) -> d out along the tangents
    A Jacobian:          FUNCTION(**inputs) -> array, --jac JAC(**inputs) -> block per input
    A Hessian:           a loss, --hess HESS(**params), --hvp HVP(v, **params)
                         or --hessp HESSP(x, p) (scipy's, one parameter),
                         against --grad when given, else second differences of the loss

    Parameters are drawn from --seed (standard normal) with the shapes of --param,
    or loaded with --init; --data and --const pass fixed inputs by name. Kinks
    (|x|, max, relu) are found from the one-sided differences and judged by the
    subgradient rule.

    Example: gradcheck func examples/layers.py:affine_forward
    --vjp examples/layers.py:affine_backward --param x=8x4 --param w=4x5 --param b=5
    """
    output = _Output(kw["as_json"], kw["quiet"], kw["junit"], kw["overwrite"])
    kw["params"] = _FUNC["params"].convert(kw["params"])
    kw["const"] = _FUNC["const"].convert(kw["const"])
    spec = build_spec("func", kw)
    assert isinstance(spec, FuncSpec)
    # Importing the user's module runs its code: in the supervised child, with the check.
    return _run_one(
        output,
        lambda progress: check_function(spec, settings_from(kw), progress=progress, execution=execution_from(kw)),
        _limits(kw),
    )


class Assignment(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.3
    """``NAME=TEXT`` as a ``(name, text)`` pair; the option's own parser reads the text."""

    def __init__(self, option: Option) -> None:
        self.option = option
        self.name = option.metavar or option.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        key, sep, text = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not {self.name}; {self.option.help}", param, ctx)
        return key.strip(), text


_EXPR = {o.name: o for o in EXPR_OPTIONS}


def _assignments(option: Option) -> Callable[[F], F]:
    return click.option(
        option.flag_name,
        option.name,
        multiple=True,
        required=option.required,
        type=Assignment(option),
        metavar=option.metavar,
        help=option.help,
    )


@cli.command()
@click.argument("loss", metavar=_EXPR["loss"].metavar, type=OptionType(_EXPR["loss"]))
@_assignments(_EXPR["grad"])
@_assignments(_EXPR["shape"])
@_assignments(_EXPR["const"])
@click.option("--explain", is_flag=True, help="Print the derivation's shapes step by step before the check.")
@_options([_EXPR["data"], *list(CHECK_OPTIONS["expr"])])
@_output_options
@_input_errors
def expr(explain: bool, **kw: Any) -> int:
    """Check a derivation written as formulas: the shapes first, then the numbers.

    LOSS and each gradient are numpy-style formulas: + - * / ** @, .T, numbers, and
    sum mean exp log log1p sqrt abs tanh sigmoid softplus relu step sign trace inv det
    logdet diag eye ones outer norm. The names in --grad are the parameters; every
    other name is data, drawn from --seed with its --shape, read from --data, or a
    --const. Nothing of a formula is passed to eval: anything else is refused, and a
    shape mismatch is named with what would match.

    Example: gradcheck expr "sum((X@theta - y)**2)/(2*m)" --grad "theta=X.T@(X@theta - y)/m"
    --shape X=100x4 --shape theta=4x1 --shape y=100x1 --const m=100
    """
    output = _Output(kw["as_json"], kw["quiet"], kw["junit"], kw["overwrite"])
    for name in ("grad", "shape", "const"):
        kw[name] = _EXPR[name].convert(kw[name])
    spec = build_spec("expr", kw)
    assert isinstance(spec, ExprSpec)
    if explain:
        data = load_arrays(Path(spec.data), "data") if spec.data else {}
        known = {**dict(spec.shape), **{k: v.shape for k, v in data.items()}, **{k: () for k, _ in spec.const}}
        output.write(Text("\n".join([*explain_expression(spec.loss, dict(spec.grad), known), ""])))
    return _run_one(
        output,
        lambda progress: spec.check(settings_from(kw), progress=progress, execution=execution_from(kw)),
        _limits(kw),
    )


_SEED = tuple(o for o in SETTINGS_OPTIONS if o.name == "seed")
_ZOO_OPTIONS = [
    replace(
        o,
        default=ZOO_LAYERS,
        required=False,
        help="Layer sizes n0,n1,...,nL (default: one square and two equal-shaped weights, so every mistake can show).",
    )
    if o.name == "layers"
    else o
    for o in MLP_OPTIONS
] + list(_SEED)


@cli.command()
@_options(_ZOO_OPTIONS)
@click.option("--json", "as_json", is_flag=True, help="Print the zoo as JSON instead of a table.")
@_input_errors
def zoo(as_json: bool, **kw: Any) -> int:
    """Run the zoo of shape-correct mistakes against the checker, on an MLP.

    Every mistake the dimension-matching trick lets through (a forgotten 1/m, a
    sign, sigma' of the wrong thing, a transposed square weight, swapped layers,
    ...) is put into the MLP's backward pass in turn and checked with every method
    and mode: one row per mistake, what it is, the formula it wrongly uses, the rows
    that failed, who caught it and what the diagnosis called it. Exit 0 only when
    the correct gradient passes and every mistake that can show on the model is
    caught: a self-test of the checker on your machine.

    Example: gradcheck zoo --layers 4,6,6,6,3 --activation sigmoid
    """
    output = _Output(as_json, False, None, False)
    spec = build_spec("mlp", kw)
    assert isinstance(spec, MLPSpec)
    result = check_zoo(spec)
    output.emit(render_zoo(result), result.to_dict())
    return result.exit_code


# ---- gradcheck sweep --------------------------------------------------------------------------


class SweepParam(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.3
    """``NAME`` (sweep this parameter alone) or, for ``sweep func``, ``NAME=SHAPE`` (declare it)."""

    name = "NAME[=SHAPE]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        text = str(value)
        if "=" not in text:
            if not text.strip().isidentifier():
                self.fail(f"{text!r} is not a parameter name; e.g. W1", param, ctx)
            return ("select", text.strip())
        try:
            return ("shape", parse_param(text))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _sweep_options(command: F) -> F:
    for option in reversed(
        [
            click.option(
                "--points", type=click.IntRange(3, 200), default=25, show_default=True, help="Steps from 1e-1 to 1e-13."
            ),
            click.option(
                "--samples", type=click.IntRange(1), default=32, show_default=True, help="Entries per parameter."
            ),
            click.option(
                "--param",
                "params",
                type=SweepParam(),
                multiple=True,
                help="NAME: sweep this parameter alone (default: every one); sweep func also takes NAME=SHAPE.",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print the data as JSON instead of the chart."),
            click.option(
                "--plot",
                type=OutputPath("sweep.png"),
                default=None,
                help="Also write the chart as an image (.png or .svg; needs matplotlib: gradcheck-cli[plot]).",
            ),
            click.option("--overwrite", is_flag=True, help="Let --plot replace an existing file."),
        ]
    ):
        command = option(command)
    return command


def _selected(params: Sequence[tuple[str, Any]], allow_shapes: bool) -> tuple[str | None, tuple[Any, ...]]:
    chosen = [v for kind, v in params if kind == "select"]
    shapes = tuple(v for kind, v in params if kind == "shape")
    if shapes and not allow_shapes:
        raise click.BadParameter(
            "NAME=SHAPE declares a parameter of sweep func; here give a NAME", param_hint="'--param'"
        )
    if len(chosen) > 1:
        raise click.BadParameter(f"one parameter at a time; got {', '.join(chosen)}", param_hint="'--param'")
    return (chosen[0] if chosen else None), shapes


def _show_sweep(run: Callable[[], SweepResult], kw: dict[str, Any]) -> int:
    output = _Output(kw["as_json"], False, None, False)
    plot = kw["plot"]
    if plot is not None and plot.exists() and not kw["overwrite"]:
        raise click.BadParameter(
            f"{str(plot)!r} exists; give a new path, or --overwrite to replace it", param_hint="'--plot'"
        )
    result = _supervise(lambda _: run(), None, Limits())
    if kw["plot"] is not None:
        write_sweep_image(result, kw["plot"])
    width = output.console.width if output.terminal else 80
    output.emit(render_sweep(result, min(width, 100)), result.to_dict())
    return EXIT_PASS


@cli.group()
def sweep() -> None:
    """Plot the error of each method against the step: why the step size matters.

    For relative steps from 1e-1 down to 1e-13, every method's largest error on
    sampled entries, as a log-log chart in the terminal and a table: truncation
    error falls as the step shrinks, round-off rises, and the complex step stays
    at round-off. Each method's best step and the auto step are marked.

    Example: gradcheck sweep mlp --layers 4,8,3 --plot sweep.png
    """


@sweep.command("mlp")
@_options(MLP_OPTIONS + _SEED)
@_sweep_options
@_input_errors
def sweep_mlp(**kw: Any) -> int:
    """Error against step for an MLP (the options of gradcheck mlp).

    Example: gradcheck sweep mlp --layers 4,8,3 --param W1
    """
    parameter, _ = _selected(kw["params"], allow_shapes=False)
    model = MLP(build_spec("mlp", kw))  # type: ignore[arg-type]
    return _show_sweep(
        lambda: sweep_model(model, points=kw["points"], samples=kw["samples"], parameter=parameter, seed=kw["seed"]), kw
    )


@sweep.command("linreg")
@_options(LINREG_OPTIONS + _SEED)
@_sweep_options
@_input_errors
def sweep_linreg(**kw: Any) -> int:
    """Error against step for linear regression (the options of gradcheck linreg).

    Example: gradcheck sweep linreg --m 100 --l2 0.5
    """
    parameter, _ = _selected(kw["params"], allow_shapes=False)
    model = LinearRegression(build_spec("linreg", kw))  # type: ignore[arg-type]
    return _show_sweep(
        lambda: sweep_model(model, points=kw["points"], samples=kw["samples"], parameter=parameter, seed=kw["seed"]), kw
    )


@sweep.command("func")
@click.argument("loss", metavar=_FUNC["loss"].metavar, type=OptionType(_FUNC["loss"]))
@_options([_FUNC["grad"], _FUNC["init"], _FUNC["data"], *_SEED])
@_CONST
@_sweep_options
@_input_errors
def sweep_func(**kw: Any) -> int:
    """Error against step for your own loss against its --grad.

    Example: gradcheck sweep func examples/two_layer.py:loss --grad examples/two_layer.py:grad
    --param W1=4x8 --param b1=8 --param W2=8x2 --param b2=2 --param W1
    """
    parameter, shapes = _selected(kw["params"], allow_shapes=True)
    if kw["grad"] is None:
        raise click.BadParameter("sweep func holds the loss against its gradient; give --grad", param_hint="'--grad'")
    values = {**kw, "params": _FUNC["params"].convert(shapes), "const": _FUNC["const"].convert(kw["const"])}
    spec = build_spec("func", values)
    assert isinstance(spec, FuncSpec)

    def run() -> SweepResult:  # in the supervised child: importing the module runs its code
        loaded = load_check(spec)
        f, g, call = loaded.loss, loaded.derivative, loaded.call
        return sweep_steps(
            lambda p: call(f, **p),
            lambda p: call(g, **p),
            loaded.params,
            points=kw["points"],
            samples=kw["samples"],
            parameter=parameter,
            seed=kw["seed"],
            title=spec.title(),
        )

    return _show_sweep(run, kw)


def _overrides(options: Sequence[Option]) -> Callable[[F], F]:
    """The settings (and execution) options again, with no defaults: given, they
    override every check's."""

    def decorate(command: F) -> F:
        for option in reversed(options):
            if option.flag:
                decorator = click.option(
                    f"{option.flag_name}/--no-{option.flag_name[2:]}", default=None, help=option.help
                )
            else:
                decorator = click.option(
                    option.flag_name, type=OptionType(option), metavar=option.metavar, help=option.help
                )
            command = decorator(command)
        return command

    return decorate


# Where a suite's checks run may be set for all of them; a checkpoint belongs to one check.
_SUITE_EXECUTION = tuple(o for o in EXECUTION_OPTIONS if o.name != "checkpoint")


def _suite_keys() -> str:
    """The keys a suite check takes, from the option tables (shown by run --help)."""
    lines = ["Suite keys, per [[check]]: name, model (mlp, linreg, func), and"]
    lines.append("every check: " + ", ".join(o.name for o in CHECK_OPTIONS["func"]) + ";")
    lines.append("mlp: " + ", ".join(o.name for o in MLP_OPTIONS + ENGINE_OPTIONS) + ";")
    lines.append("linreg: " + ", ".join(o.name for o in LINREG_OPTIONS) + ";")
    lines.append("func: " + ", ".join(o.name for o in FUNC_OPTIONS) + ".")
    return "\b\n" + "\n".join(lines)


@cli.command(epilog=_suite_keys())
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path), metavar="CONFIG.toml")
@click.option(
    "-k",
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only the checks whose name contains NAME (repeat for several).",
)
@_overrides(SETTINGS_OPTIONS + _SUITE_EXECUTION)
@_output_options
@_input_errors
def run(
    config: Path,
    only: tuple[str, ...],
    as_json: bool,
    quiet: bool,
    junit: Path | None,
    overwrite: bool,
    **overrides: Any,
) -> int:
    """Run the [[check]]s of a TOML suite; exit 1 if any check fails.

    The whole suite is validated first (keys, files, functions). Each check's
    result prints as it finishes; a check that cannot run is an ERROR (exit 2)
    while the others keep their verdicts; the exit code is the worst outcome.
    Options given here (--seed, --method, --workers, ...) override every check's.

    Example: gradcheck run configs/ci.toml -k relu --seed 3 --junit gradcheck.xml
    """
    output = _Output(as_json, quiet, junit, overwrite)
    checks = load_suite(config)
    if only:
        checks = [c for c in checks if any(part in c.name for part in only)]
        if not checks:
            raise click.BadParameter(
                f"no check name contains {', '.join(map(repr, only))}; the checks are "
                f"{', '.join(c.name for c in load_suite(config))}",
                param_hint="'-k' / '--only'",
            )
    given = {k: v for k, v in overrides.items() if v is not None}
    broken = _prepared(checks, given)
    outcomes: list[Outcome] = []
    unrun: list[str] = []
    for position, check in enumerate(checks):
        limits = _limits({**check.execution.__dict__, **given})
        try:
            if position in broken:
                raise broken[position]
            outcome: Outcome = _supervise(
                functools.partial(_run_suite_check, check, given), output.progress(check.name), limits
            )
        except TimeLimitExceeded as exc:
            outcome = exc.report if exc.report is not None else CheckError(check.name, check.spec.title(), str(exc))
            if exc.report is not None:
                exc.report.stopped = str(exc)
                _error_line(f"check {check.name!r}: {command_line(exc)}")
        except CheckInterrupted as exc:
            outcomes.append(exc.report)
            output.show(exc.report, suite=True)
            unrun = [c.name for c in checks[position + 1 :]]
            break
        except KeyboardInterrupt:
            unrun = [c.name for c in checks[position:]]
            break
        except (InputError, UserCodeError) as exc:
            if isinstance(exc, UserCodeError):
                _user_traceback(exc)
            outcome = CheckError(check.name, check.spec.title(), str(exc))
        outcomes.append(outcome)
        output.show(outcome, suite=True)
    return output.finish(outcomes, unrun, suite=True)


def _prepared(checks: list[CheckConfig], given: dict[str, Any]) -> dict[int, GradcheckError]:
    """Import every func check's code before any check runs, each in a supervised child
    of its own: a mistake in the suite (a misspelled function, a missing file) stops it
    at once (exit 2); code that raises, ends its process or hangs while being imported
    makes that check an ERROR when its turn comes, and the others still run."""
    broken: dict[int, GradcheckError] = {}
    for position, check in enumerate(checks):
        if not isinstance(check.spec, FuncSpec):
            continue
        try:  # the check's own limits: its wall covers its import
            _supervise(functools.partial(_prepare_one, check), None, _limits({**check.execution.__dict__, **given}))
        except ConfigError:
            raise
        except (InputError, UserCodeError, TimeLimitExceeded) as exc:
            broken[position] = exc
    return broken


def _prepare_one(check: CheckConfig, progress: ProgressSink | None) -> int:
    return len(prepare_suite([check]))


def _run_suite_check(check: CheckConfig, given: dict[str, Any], progress: ProgressSink | None) -> Report:
    return run_check(check, progress, given)


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM: end quietly; the supervisor's cleanup stops the check and its workers."""
    raise SystemExit(128 + signum)


def main(args: list[str] | None = None, prog_name: str = "gradcheck") -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminated)
    tune_allocator()  # the whole process is ours: keep the engine's scratch memory warm
    cli.main(args=args, prog_name=prog_name)


__all__ = ["EXIT_FAIL", "EXIT_INTERRUPTED", "EXIT_PASS", "EXIT_USAGE", "cli", "main"]
