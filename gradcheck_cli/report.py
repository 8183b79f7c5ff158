"""Render a Report: a rich table, JSON, plain text, JUnit XML.  No maths here:
every number shown is a property of the Report."""

from __future__ import annotations

import io
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import numpy as np
from rich import box
from rich.console import Console, Group, JustifyMethod
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from .result import ParameterResult, Report

STATUS_STYLE = {"PASS": "bold green", "WARN": "bold yellow", "FAIL": "bold red"}
METHOD_LABEL = {
    "central": "central differences",
    "forward": "forward differences",
    "richardson": "Richardson (central at h and h/2)",
    "complex": "complex step",
}


def _num(x: float) -> str:
    """A value: three significant digits, so analytic and numerical can be compared."""
    return f"{x:.3g}" if x == 0 or 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def _err(x: float) -> str:
    """An error: its order of magnitude is what matters."""
    return "0" if x == 0 else f"{x:.1e}"


def _coverage(p: ParameterResult) -> str:
    if p.coverage == "directions":
        return f"{p.checked} dir"
    return f"{p.checked}/{p.size}" if p.checked < p.size else f"all {p.size}"


WIDE = 118  # narrower consoles get the compact table


def render_report(report: Report, width: int = WIDE) -> Group:
    """The table (one row per parameter) with a title and a summary line under it.

    Below ``WIDE`` columns the median relative and maximum absolute errors are left
    out (they stay in the JSON), and the kinks column appears only when non-zero,
    so the table fits an 80-column terminal without cutting a number.
    """
    taylor = report.settings.taylor
    compact = width < WIDE
    any_kinks = any(p.kinks.any() for p in report.parameters)
    table = Table(
        title=Text(report.title, style="bold"),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    columns: list[tuple[str, JustifyMethod]] = [
        ("param", "left"),
        ("shape", "left"),
        ("checked", "right"),
        ("max rel err", "right"),
    ]
    if not compact:
        columns += [("median rel err", "right"), ("max abs err", "right")]
    columns += [("worst", "left"), ("analytic", "right"), ("numerical", "right")]
    if any_kinks or not compact:
        columns.append(("kinks", "right"))
    if taylor:
        columns.append(("order", "right"))
    columns.append(("status", "center"))
    short = {"max rel err": "max rel", "numerical": "numeric"} if compact else {}
    for header, justify in columns:
        name = short.get(header, header)
        table.add_column(
            name,
            justify=justify,
            no_wrap=True,
            min_width=len(name) if header in ("status", "param", "checked") else None,
        )
    for p in report.parameters:
        rel = p.rel_error
        w = p.worst
        cells: dict[str, str | Text] = {
            "param": p.name,
            "shape": "x".join(map(str, p.shape)) or "scalar",
            "checked": _coverage(p),
            "max rel err": _err(float(rel.max())),
            "median rel err": _err(float(np.median(rel))),
            "max abs err": _err(float(p.abs_error.max())),
            "worst": p.worst_label,
            "analytic": _num(float(p.analytic[w])),
            "numerical": _num(float(p.numerical[w])),
            "kinks": str(int(np.count_nonzero(p.kinks))),
            "order": _taylor_cell(p),
            "status": Text(p.status, style=STATUS_STYLE[p.status]),
        }
        table.add_row(*(cells[header] for header, _ in columns))
    return Group(table, render_summary(report))


def _taylor_cell(p: ParameterResult) -> str:
    if p.taylor is None:
        return "-"
    if p.taylor.order is None:
        return "exact"
    return f"{p.taylor.order:.2f}" + (" (kink)" if p.taylor.kink else "")


def render_summary(report: Report) -> Text:
    s = report.settings
    failed = report.failed_parameters
    text = Text()
    text.append(report.status, style=STATUS_STYLE[report.status])
    text.append(
        f"  {len(report.parameters)} parameters, {failed} failed | {METHOD_LABEL[s.method]}, "
        f"step {s.eps:.3g}*max(1,|x|), rtol {s.rtol:g}, atol {s.atol:g}, {s.dtype}, {s.mode} mode"
        f"{', taylor test' if s.taylor else ''} | {report.engine} engine, "
        f"{report.evaluations} loss evaluations, {report.elapsed:.3f} s"
    )
    return text


def report_to_text(report: Report, width: int = 120) -> str:
    """The rendered table as plain text (no colour), e.g. for an assertion message."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(render_report(report, width))
    return buffer.getvalue()


def render_suite_summary(reports: Sequence[Report]) -> Table:
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
    for r in reports:
        table.add_row(
            r.name,
            r.title,
            str(len(r.parameters)),
            str(r.failed_parameters),
            f"{r.elapsed:.3f}",
            Text(r.status, style=STATUS_STYLE[r.status]),
        )
    return table


def reports_to_junit(reports: Sequence[Report]) -> str:
    """JUnit XML: one testsuite per check, one testcase per parameter."""
    root = ET.Element("testsuites", name="gradcheck")
    total = failures = 0
    for r in reports:
        suite = ET.SubElement(
            root,
            "testsuite",
            name=r.name or r.title,
            tests=str(len(r.parameters)),
            failures=str(r.failed_parameters),
            errors="0",
            skipped="0",
            time=f"{r.elapsed:.6f}",
        )
        for p in r.parameters:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"gradcheck.{r.name or 'check'}",
                name=p.name,
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
                failure = ET.SubElement(case, "failure", message=message, type="GradientMismatch")
                failure.text = message
            case_out = ET.SubElement(case, "system-out")
            case_out.text = json.dumps(p.to_dict())
    root.set("tests", str(total))
    root.set("failures", str(failures))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


class _RateColumn(ProgressColumn):
    """Loss evaluations per second."""

    def render(self, task: Task) -> Text:
        return Text("" if task.speed is None else f"{task.speed:,.0f} evals/s")


class RichProgress:
    """A progress bar per parameter, shown only once a check has run ``delay`` seconds.

    Short checks never flash a bar; the bar is transient, so the table that follows
    stands alone.
    """

    def __init__(self, console: Console, delay: float = 1.0) -> None:
        self.console = console
        self.delay = delay
        self._began = time.perf_counter()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._name = ""
        self._total = 0
        self._done = 0
        self.shown = False

    def start(self, name: str, total: int) -> None:
        self._name, self._total, self._done = name, total, 0
        if self._progress is not None:
            self._task = self._progress.add_task(name, total=total)

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
