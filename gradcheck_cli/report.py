"""Render a Report: a rich table, JSON, plain text, JUnit XML.  No maths here:
every number shown is a property of the Report."""

from __future__ import annotations

import io
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from . import __version__

if TYPE_CHECKING:
    from .check import ParameterResult, Report

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


def _coverage(p: "ParameterResult") -> str:
    if p.coverage == "directions":
        return f"{p.checked} dir"
    return f"{p.checked}/{p.size}" if p.checked < p.size else f"all {p.size}"


WIDE = 118  # narrower consoles get the compact table


def render_report(report: "Report", width: int = WIDE) -> Group:
    """The table (one row per parameter) with a title and a summary line under it.

    Below ``WIDE`` columns the median relative and maximum absolute errors are left
    out (they stay in the JSON), and the kinks column appears only when non-zero,
    so the table fits an 80-column terminal without cutting a number.
    """
    taylor = report.settings.taylor
    compact = width < WIDE
    any_kinks = any(p.kinks.any() for p in report.parameters)
    table = Table(title=Text(report.title, style="bold"), title_justify="left", header_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    columns: list[tuple[str, str]] = [("param", "left"), ("shape", "left"), ("checked", "right"),
                                      ("max rel err", "right")]
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
        table.add_column(name, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                         min_width=len(name) if header in ("status", "param", "checked") else None)
    for p in report.parameters:
        rel = p.rel_error
        w = p.worst
        cells = {
            "param": p.name, "shape": "x".join(map(str, p.shape)) or "scalar", "checked": _coverage(p),
            "max rel err": _err(float(rel.max())), "median rel err": _err(float(np.median(rel))),
            "max abs err": _err(float(p.abs_error.max())), "worst": p.worst_label,
            "analytic": _num(float(p.analytic[w])), "numerical": _num(float(p.numerical[w])),
            "kinks": str(int(np.count_nonzero(p.kinks))), "order": _taylor_cell(p),
            "status": Text(p.status, style=STATUS_STYLE[p.status]),
        }
        table.add_row(*(cells[header] for header, _ in columns))
    return Group(table, render_summary(report))


def _taylor_cell(p: "ParameterResult") -> str:
    if p.taylor is None:
        return "-"
    if p.taylor.order is None:
        return "exact"
    return f"{p.taylor.order:.2f}" + (" (kink)" if p.taylor.kink else "")


def render_summary(report: "Report") -> Text:
    s = report.settings
    failed = sum(p.status == "FAIL" for p in report.parameters)
    text = Text()
    text.append(report.status, style=STATUS_STYLE[report.status])
    text.append(
        f"  {len(report.parameters)} parameters, {failed} failed | {METHOD_LABEL[s.method]}, "
        f"step {s.eps:.3g}*max(1,|x|), rtol {s.rtol:g}, atol {s.atol:g}, {s.dtype}, {s.mode} mode"
        f"{', taylor test' if s.taylor else ''} | {report.engine} engine, "
        f"{report.evaluations} loss evaluations, {report.elapsed:.3f} s"
    )
    return text


def report_to_text(report: "Report", width: int = 120) -> str:
    """The rendered table as plain text (no colour), e.g. for an assertion message."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(report)
    return buffer.getvalue()


def _float(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def parameter_to_dict(p: "ParameterResult") -> dict[str, Any]:
    rel = p.rel_error
    w = p.worst
    worst: dict[str, Any] = {
        "analytic": _float(p.analytic[w]), "numerical": _float(p.numerical[w]),
        "abs_error": _float(p.abs_error[w]), "limit": _float(p.limit[w]),
    }
    if p.coverage == "directions":
        worst["direction"] = int(p.positions[w])
    else:
        worst["index"] = [int(i) for i in np.unravel_index(int(p.positions[w]), p.shape)] if p.shape else []
    return {
        "name": p.name,
        "shape": list(p.shape),
        "size": p.size,
        "coverage": p.coverage,
        "checked": p.checked,
        "max_rel_error": _float(rel.max()),
        "median_rel_error": _float(np.median(rel)),
        "max_abs_error": _float(p.abs_error.max()),
        "failures": p.failures,
        "kink_entries": int(np.count_nonzero(p.kinks)),
        "worst": worst,
        "taylor_order": None if p.taylor is None or p.taylor.order is None else round(p.taylor.order, 4),
        "status": p.status,
    }


def report_to_dict(report: "Report") -> dict[str, Any]:
    s = report.settings
    return {
        "gradcheck_version": __version__,
        "name": report.name,
        "title": report.title,
        "model": report.model,
        "settings": {
            "method": s.method, "mode": s.mode, "dtype": s.dtype, "eps": s.eps,
            "rtol": s.rtol, "atol": s.atol, "samples": s.samples, "directions": s.directions,
            "taylor": s.taylor, "seed": s.seed,
        },
        "engine": report.engine,
        "status": report.status,
        "passed": report.passed,
        "exit_code": report.exit_code,
        "elapsed_seconds": round(report.elapsed, 6),
        "loss_evaluations": report.evaluations,
        "parameters": [parameter_to_dict(p) for p in report.parameters],
    }


def report_to_json(report: "Report") -> str:
    return json.dumps(report_to_dict(report), indent=2)


def suite_to_dict(reports: Sequence["Report"]) -> dict[str, Any]:
    failed = [r.name for r in reports if not r.passed]
    return {
        "gradcheck_version": __version__,
        "checks": [report_to_dict(r) for r in reports],
        "passed": not failed,
        "failed_checks": failed,
        "exit_code": 1 if failed else 0,
    }


def render_suite_summary(reports: Sequence["Report"]) -> Table:
    table = Table(title=Text("suite summary", style="bold"), title_justify="left", header_style="bold",
                  box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for header in ("check", "model", "parameters", "failed", "seconds", "status"):
        table.add_column(header)
    for r in reports:
        failed = sum(p.status == "FAIL" for p in r.parameters)
        table.add_row(r.name, r.title, str(len(r.parameters)), str(failed), f"{r.elapsed:.3f}",
                      Text(r.status, style=STATUS_STYLE[r.status]))
    return table


def reports_to_junit(reports: Sequence["Report"]) -> str:
    """JUnit XML: one testsuite per check, one testcase per parameter."""
    root = ET.Element("testsuites", name="gradcheck")
    total = failures = 0
    for r in reports:
        suite = ET.SubElement(root, "testsuite", name=r.name or r.title, tests=str(len(r.parameters)),
                              failures=str(sum(p.status == "FAIL" for p in r.parameters)),
                              errors="0", skipped="0", time=f"{r.elapsed:.6f}")
        for p in r.parameters:
            case = ET.SubElement(suite, "testcase", classname=f"gradcheck.{r.name or 'check'}", name=p.name,
                                 time=f"{r.elapsed / max(1, len(r.parameters)):.6f}")
            total += 1
            if p.status == "FAIL":
                failures += 1
                d = parameter_to_dict(p)
                w = d["worst"]
                where = w.get("index", w.get("direction"))
                message = (f"{p.name}: {p.failures} of {p.checked} {p.coverage} outside tolerance; worst at "
                           f"{where}: analytic {w['analytic']!r}, numerical {w['numerical']!r}, "
                           f"abs error {w['abs_error']!r} > limit {w['limit']!r}")
                if p.taylor is not None and not p.taylor.passed:
                    message += f"; taylor order {p.taylor.order}"
                failure = ET.SubElement(case, "failure", message=message, type="GradientMismatch")
                failure.text = message
            case_out = ET.SubElement(case, "system-out")
            case_out.text = json.dumps(parameter_to_dict(p))
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
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                TimeElapsedColumn(), console=self.console, transient=True,
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
