"""Render a Report: a rich table, JSON, plain text, JUnit XML.  No maths here:
every number shown is a property of the Report."""

from __future__ import annotations

import io
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import numpy as np
import plotext
from rich import box
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..core.methods import METHOD
from ..core.result import ZOO_CHECKS, ZOO_REQUIRED, CheckError, Outcome, Report, SweepResult, ZooReport
from ..core.text import error_text, parameter_cells, printable, verdict_line
from ..insight.explain import Explanation

STATUS_STYLE = {
    "PASS": "bold green",
    "UNRESOLVED": "bold yellow",
    "FAIL": "bold red",
    "ERROR": "bold red",
    "INCOMPLETE": "bold magenta",
}


WIDE = 118  # narrower consoles get the compact table


def _titled_table(title: str) -> Table:
    """The house table: a bold title on the left, a rule under the header, no frame."""
    return Table(
        title=Text(printable(title), style="bold"),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def render_report(report: Report, width: int = WIDE) -> Group:
    """The table (one row per parameter) with a title, the reasons behind any
    UNRESOLVED or discontinuous entry, and the verdict line.

    Each row says what its verdict rests on: the worst entry (analytic, numerical),
    its error over its limit (above 1 fails), and the resolution: the largest
    relative error a resolved entry could carry and still pass.  Below ``WIDE``
    columns the maximum relative error and the evaluations per entry are left out
    (they stay in the JSON), and the kinks column appears only when non-zero, so
    the table fits an 80-column terminal.
    """
    taylor = report.settings.taylor
    compact = width < WIDE
    any_kinks = any(p.kinks.any() for p in report.parameters)
    table = _titled_table(report.title)
    columns: list[tuple[str, JustifyMethod]] = [("param", "left"), ("shape", "left"), ("checked", "right")]
    columns += [("worst", "left"), ("analytic", "right"), ("numerical", "right"), ("err/limit", "right")]
    columns.append(("resolution", "right"))
    if not compact:
        columns += [("max rel err", "right"), ("evals/entry", "right")]
    if any_kinks or not compact:
        columns.append(("kinks", "right"))
    if taylor:
        columns.append(("order", "right"))
    columns.append(("status", "center"))
    short = {"numerical": "numeric", "resolution": "resol."} if compact else {}
    rows = [parameter_cells(p) for p in report.parameters]
    columns = _fitting(columns, rows, short, width)
    for header, justify in columns:
        name = short.get(header, header)
        table.add_column(
            name,
            justify=justify,
            no_wrap=True,
            min_width=len(name) if header in ("status", "param", "checked") else None,
        )
    notes: list[Text] = []
    for p in report.parameters:
        cells: dict[str, str | Text] = dict(parameter_cells(p))
        cells["param"] = Text(p.name)
        cells["worst"] = Text(p.worst_label)
        cells["status"] = Text(p.status, style=STATUS_STYLE[p.status])
        table.add_row(*(cells[header] for header, _ in columns))
        notes += [Text(f"{p.name}: {reason}", style="yellow") for reason in p.reasons]
    notes += [Text(note, style="yellow") for note in report.notes]
    parts: list[Table | Text] = [table, *notes]
    if report.unchecked:
        parts.append(Text(f"not checked (interrupted): {', '.join(report.unchecked)}", style="magenta"))
    parts.append(render_summary(report))
    return Group(*parts)


# Left out first when a terminal is too narrow for the rest: the verdict (status), the
# row's name and the error over its limit are the last to go.
_NARROW_DROPS = ("kinks", "order", "shape", "worst", "resolution", "checked", "numerical", "analytic")


def _fitting(
    columns: list[tuple[str, JustifyMethod]], rows: list[dict[str, str]], short: dict[str, str], width: int
) -> list[tuple[str, JustifyMethod]]:
    """The columns that fit ``width`` whole, dropping the least needed first."""

    def needed(header: str) -> int:
        return max([len(short.get(header, header)), *(len(r[header]) for r in rows)])

    kept = list(columns)
    for header in _NARROW_DROPS:
        if sum(needed(h) + 2 for h, _ in kept) <= width:
            break
        kept = [c for c in kept if c[0] != header]
    return kept


def render_summary(report: Report) -> Text:
    """The verdict line; it names the check in a suite."""
    text = Text()
    text.append(report.status, style=STATUS_STYLE[report.status])
    text.append(verdict_line(report).removeprefix(report.status))
    return text


def render_error(error: CheckError) -> Text:
    """The line for a suite check that could not run."""
    text = Text()
    text.append("ERROR", style=STATUS_STYLE["ERROR"])
    text.append(f"  {printable(error.name)}: {error.message}")
    return text


def render_plain(renderable: RenderableType) -> str:
    """Plain lines for a pipe or a CI log: no colour, no wrapping, no trailing spaces,
    so every line can be grepped whole."""
    buffer = io.StringIO()
    Console(file=buffer, width=100_000, color_system=None, force_terminal=False, soft_wrap=True).print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def render_suite_summary(outcomes: Sequence[Outcome], unrun: Sequence[str] = ()) -> Table:
    table = Table(
        title=Text("suite summary", style="bold"),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    for header in ("check", "model", "parameters", "failed", "seconds", "status"):
        table.add_column(header)
    for o in outcomes:
        if isinstance(o, CheckError):
            shown, title = Text(printable(o.name)), Text(printable(o.title))
            table.add_row(shown, title, "-", "-", f"{o.elapsed:.3f}", Text(o.status, style=STATUS_STYLE[o.status]))
        else:
            table.add_row(
                Text(printable(o.name)),
                Text(printable(o.title)),
                str(len(o.parameters)),
                str(o.failed_parameters),
                f"{o.elapsed:.3f}",
                Text(o.status, style=STATUS_STYLE[o.status]),
            )
    for name in unrun:
        table.add_row(Text(printable(name)), "-", "-", "-", "-", Text("NOT RUN", style=STATUS_STYLE["INCOMPLETE"]))
    return table


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    """Text XML 1.0 can hold: control characters are written as \\xNN."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def reports_to_junit(outcomes: Sequence[Outcome], unrun: Sequence[str] = ()) -> str:
    """JUnit XML: one testsuite per check, one testcase per parameter; a check that
    could not run is one ``<error>`` testcase, an unchecked parameter ``<skipped>``."""
    root = ET.Element("testsuites", name="gradcheck")
    total = failures = errors = skipped = 0
    for o in outcomes:
        label = _xml(o.name or o.title)
        if isinstance(o, CheckError):
            suite = ET.SubElement(
                root, "testsuite", name=label, tests="1", failures="0", errors="1", skipped="0", time=f"{o.elapsed:.6f}"
            )
            case = ET.SubElement(suite, "testcase", classname=f"gradcheck.{label}", name=label, time="0")
            error = ET.SubElement(case, "error", message=_xml(o.message), type="CheckError")
            error.text = _xml(o.message)
            total, errors = total + 1, errors + 1
            continue
        r = o
        suite = ET.SubElement(
            root,
            "testsuite",
            name=label,
            tests=str(len(r.parameters) + len(r.unchecked)),
            failures=str(r.failed_parameters),
            errors="0",
            skipped=str(len(r.unchecked) + sum(p.status == "UNRESOLVED" for p in r.parameters)),
            time=f"{r.elapsed:.6f}",
        )
        for p in r.parameters:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"gradcheck.{_xml(r.name or 'check')}",
                name=_xml(p.name),
                time=f"{r.elapsed / max(1, len(r.parameters)):.6f}",
            )
            total += 1
            if p.status == "FAIL":
                failures += 1
                d = p.to_dict()
                w = d["worst"]
                where = w.get("index", w.get("direction"))
                message = (
                    f"{p.name}: {p.failures} of {p.checked} {p.coverage} outside tolerance; worst at "
                    f"{where}: analytic {w['analytic']!r}, numerical {w['numerical']!r}, "
                    f"abs error {w['abs_error']!r} > limit {w['limit']!r}"
                )
                if p.taylor is not None and not p.taylor.passed:
                    message += f"; taylor order {p.taylor.order}"
                if p.notes:
                    message += "; " + "; ".join(p.notes)
                failure = ET.SubElement(case, "failure", message=_xml(message), type="GradientMismatch")
                failure.text = _xml(message)
            elif p.status == "UNRESOLVED":
                # Not verified either way: CI shows it as skipped, and exit code 3 fails the step.
                skipped += 1
                reasons = "; ".join(p.reasons)
                ET.SubElement(case, "skipped", message=_xml(f"UNRESOLVED: {reasons}"))
            case_out = ET.SubElement(case, "system-out")
            case_out.text = json.dumps(p.to_dict())
        for name in r.unchecked:
            case = ET.SubElement(suite, "testcase", classname=f"gradcheck.{_xml(r.name or 'check')}", name=_xml(name))
            ET.SubElement(case, "skipped", message="interrupted before this parameter was checked")
            total, skipped = total + 1, skipped + 1
    for name in unrun:
        suite = ET.SubElement(root, "testsuite", name=_xml(name), tests="1", failures="0", errors="0", skipped="1")
        case = ET.SubElement(suite, "testcase", classname=f"gradcheck.{_xml(name)}", name=_xml(name))
        ET.SubElement(case, "skipped", message="interrupted before this check ran")
        total, skipped = total + 1, skipped + 1
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    root.set("skipped", str(skipped))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def is_junit_report(text: str) -> bool:
    """Whether a file's text is a JUnit report (one we may overwrite)."""
    head = text.lstrip()[:500]
    return head.startswith("<?xml") and ("<testsuites" in head or "<testsuite" in head)


class _RateColumn(ProgressColumn):
    """Loss evaluations per second."""

    def render(self, task: Task) -> Text:
        return Text("" if task.speed is None else f"{task.speed:,.0f} evals/s")


class RichProgress:
    """A progress bar per parameter, shown only once a check has run ``delay`` seconds.

    It names the check (``label``, in a suite), the parameter and which of how many
    it is, and estimates the time left.  Short checks never flash a bar; the bar is
    transient, so the table that follows stands alone.
    """

    def __init__(self, console: Console, delay: float = 1.0, label: str = "") -> None:
        self.console = console
        self.delay = delay
        self.label = label
        self._began = time.perf_counter()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._name = ""
        self._total = 0
        self._done = 0
        self._plan = ""
        self.shown = False

    def plan(self, text: str) -> None:
        """The check's estimated time and where it runs, shown beside each parameter."""
        self._plan = f" [{text}]"

    def start(self, name: str, total: int, position: tuple[int, int]) -> None:
        prefix = f"{self.label}: " if self.label else ""
        self._name = printable(f"{prefix}{name} ({position[0]} of {position[1]}){self._plan}")
        self._total, self._done = total, 0
        if self._progress is not None:
            self._task = self._progress.add_task(self._name, total=total)

    def advance(self, count: int) -> None:
        self._done += count
        if self._progress is None:
            if time.perf_counter() - self._began < self.delay:
                return
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self.shown = True
            self._task = self._progress.add_task(self._name, total=self._total, completed=self._done)
            return
        assert self._task is not None
        self._progress.update(self._task, completed=min(self._done, self._total))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


# ---- the zoo ---------------------------------------------------------------------------------


ZOO_HEADERS = {
    **{name: m.short for name, m in METHOD.items()},
    "directional": "dir",
    "sample": "smpl",
}


def _mark(caught: bool | None, required: bool) -> Text:
    if caught is None:
        return Text("-")
    if caught:
        return Text("yes", style="green")
    return Text("no", style="red" if required else "yellow")


def render_zoo(zoo: ZooReport) -> Group:
    """One row per mistake: what it is, the formula it wrongly uses, the rows that
    failed, the largest relative error, who caught it, what the diagnosis called it."""
    table = _titled_table(zoo.title)
    table.add_column("mistake", no_wrap=True)
    table.add_column("wrong formula")
    table.add_column("rows failed")
    table.add_column("max rel err", justify="right", no_wrap=True)
    for label, _, _ in ZOO_CHECKS:
        table.add_column(ZOO_HEADERS[label], justify="center", no_wrap=True)
    table.add_column("diagnosis")
    table.add_column("status", justify="center", no_wrap=True)
    for row in zoo.rows:
        if row.reason is not None:
            cells: list[Text] = [Text(row.name), Text(row.formula), Text(row.reason, style="dim"), Text("-")]
            cells += [Text("-") for _ in ZOO_CHECKS] + [Text("-"), Text("n/a", style="dim")]
        else:
            cells = [
                Text(row.name),
                Text(row.formula),
                Text(", ".join(row.failed) or "none"),
                Text(error_text(row.max_rel_error)),
            ]
            cells += [_mark(row.caught.get(label), label in ZOO_REQUIRED) for label, _, _ in ZOO_CHECKS]
            status = Text(row.status, style=STATUS_STYLE["PASS" if row.status == "caught" else "FAIL"])
            cells += [Text(row.diagnosis or "-"), status]
        table.add_row(*cells)
    wrong = [label for label, ok in zoo.correct.items() if not ok]
    correct = (
        Text("the correct gradient passes every check", style="green")
        if not wrong
        else Text(f"the correct gradient FAILS with: {', '.join(wrong)}", style="red")
    )
    applicable = [r for r in zoo.rows if r.reason is None]
    missed = [r.name for r in applicable if r.status == "MISSED"]
    verdict = Text()
    verdict.append("PASS" if zoo.passed else "FAIL", style=STATUS_STYLE["PASS" if zoo.passed else "FAIL"])
    verdict.append(
        f"  {len(applicable)} of {len(zoo.rows)} mistakes can show on this model, "
        + (
            f"{len(missed)} missed ({', '.join(missed)})"
            if missed
            else "every one caught by every method and by directional mode"
        )
        + "; sample mode is shown, not required"
    )
    return Group(table, correct, verdict)


# ---- the derivation --------------------------------------------------------------------------


def _bytes(n: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def render_explanation(explanation: Explanation) -> Group:
    """The derivation as aligned lines: each step's matrix expression with its
    operands' shapes and its result, the chain rule as scalars under it; then the
    cache the forward pass keeps, and where the seed's shortcut holds."""
    lines: list[Text] = [Text(explanation.title, style="bold")]
    for heading, steps in (("forward", explanation.forward), ("backward", explanation.backward)):
        lines.append(Text(f"{heading}:", style="bold"))
        width = max(len(step.what) for step in steps)
        for step in steps:
            lines.append(Text(f"  {step.what:<{width}} = {step.matrix} → {step.result}"))
            lines.append(Text(f"  {'':<{width}}   as scalars: {step.scalar}", style="dim"))
    lines.append(
        Text(f"cached by the forward pass for the backward pass ({_bytes(explanation.cache_bytes)}):", style="bold")
    )
    width = max(len(c.name) for c in explanation.cache)
    for c in explanation.cache:
        shape = "×".join(map(str, c.shape))
        lines.append(Text(f"  {c.name:<{width}} ({shape}) {_bytes(c.nbytes):>10}  {c.why}"))
    for shortcut in explanation.shortcuts:
        lines.append(Text(f"  {shortcut}", style="dim"))
    return Group(*lines, Text(""))


# ---- error against step ----------------------------------------------------------------------

MARKERS = {"forward": "x", "central": "dot", "richardson": "+", "complex": "o"}


def _decades(low: float, high: float) -> list[float]:
    first, last = int(np.floor(np.log10(low))), int(np.ceil(np.log10(high)))
    every = max(1, (last - first) // 5)
    return [10.0**k for k in range(first, last + 1, every)]


def render_sweep_chart(sweep: SweepResult, width: int = 80, height: int = 22) -> str:
    """The log-log chart of error against step, one curve per method, each best step
    a star on its curve and the central method's auto step a vertical line; plain
    text (no colour), ``width`` columns."""
    plotext.clf()
    plotext.plotsize(width, height)
    plotext.theme("clear")
    plotext.xscale("log")
    plotext.yscale("log")
    shown = [c for c in sweep.curves if c.missing is None]
    floor = 1e-17
    for curve in shown:
        plotext.plot(sweep.steps, np.maximum(curve.errors, floor), label=curve.method, marker=MARKERS[curve.method])
    for curve in shown:  # each method's best step
        best_step, best_error = curve.best(sweep.steps)
        plotext.scatter([best_step], [max(best_error, floor)], marker="*")
    central = next((c for c in shown if c.method == "central"), None)
    if central is not None:
        plotext.vline(central.auto_step)
    errors = np.concatenate([np.maximum(c.errors, floor) for c in shown]) if shown else np.array([1.0])
    xticks = _decades(float(sweep.steps.min()), float(sweep.steps.max()))
    yticks = _decades(float(errors.min()), float(errors.max()))
    plotext.xticks(xticks, [f"1e{round(np.log10(t))}" for t in xticks])
    plotext.yticks(yticks, [f"1e{round(np.log10(t))}" for t in yticks])
    plotext.xlabel("relative step h   (* best step, | central auto step)")
    plotext.ylabel("error")
    chart: str = plotext.uncolorize(plotext.build())
    plotext.clf()
    return "\n".join(line.rstrip() for line in chart.splitlines())


def render_sweep(sweep: SweepResult, width: int = 80) -> Group:
    """The chart, then the numbers: each method's error at every step, its best step
    and error, and the auto step's."""
    scope = f"parameter {sweep.parameter}" if sweep.parameter else "every parameter"
    title = Text(f"{sweep.title}\nmax error / max |analytic| against the step, {scope}", style="bold")
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, collapse_padding=True)
    table.add_column("h", justify="right", no_wrap=True)
    for curve in sweep.curves:
        table.add_column(curve.method, justify="right", no_wrap=True)
    for k, h in enumerate(sweep.steps):
        cells = [f"{h:.1e}"] + ["-" if c.missing else f"{c.errors[k]:.1e}" for c in sweep.curves]
        table.add_row(*cells)
    best = [
        f"{c.best(sweep.steps)[0]:.1e}: {c.best(sweep.steps)[1]:.1e}" if not c.missing else "-" for c in sweep.curves
    ]
    table.add_row("best", *best, style="bold")
    auto = [f"{c.auto_step:.1e}: {c.auto_error:.1e}" if not c.missing else "-" for c in sweep.curves]
    table.add_row("auto", *auto, style="bold")
    notes = [Text(f"{c.method}: {c.missing}", style="yellow") for c in sweep.curves if c.missing]
    summary = Text(f"{sweep.evaluations} loss evaluations", style="dim")
    return Group(title, Text(render_sweep_chart(sweep, width)), table, *notes, summary)
