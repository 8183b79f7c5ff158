"""The words and numbers a report shows, defined once.

The rich table (``render.report``), the plain text of a failed pytest assertion
and the logs all take their cells and their verdict line from here, so they say the
same thing; this module formats, it computes nothing, and it needs no renderer
(``import gradcheck_cli`` stays light).
"""

from __future__ import annotations

import re

import numpy as np

from .result import EXIT_CODES, ParameterResult, Report

# Every column a report's table can show, in order, with its alignment.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("param", "left"),
    ("shape", "left"),
    ("checked", "right"),
    ("worst", "left"),
    ("analytic", "right"),
    ("numerical", "right"),
    ("err/limit", "right"),
    ("resolution", "right"),
    ("max rel err", "right"),
    ("evals/entry", "right"),
    ("kinks", "right"),
    ("order", "right"),
    ("status", "center"),
)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """A name as it may be shown: control characters (a terminal's escape sequences
    among them) written as escapes, so a check's name cannot restyle a terminal or a log."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def value_text(x: float) -> str:
    """A value: three significant digits, so analytic and numerical can be compared."""
    return f"{x:.3g}" if x == 0 or 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def error_text(x: float) -> str:
    """An error: its order of magnitude is what matters."""
    if np.isnan(x):
        return "-"
    return "0" if x == 0 else f"{x:.1e}"


def ratio_text(x: float) -> str:
    """Error over limit: the verdict rests on whether it exceeds 1."""
    if np.isnan(x):
        return "-"
    return "inf" if x == float("inf") else f"{x:.2g}"


def coverage_text(p: ParameterResult) -> str:
    if p.coverage == "directions":
        return f"{p.checked} dir"
    return f"{p.checked}/{p.size}" if p.checked < p.size else f"all {p.size}"


def taylor_text(p: ParameterResult) -> str:
    if p.taylor is None:
        return "-"
    if p.taylor.order is None:
        return "exact"
    return f"{p.taylor.order:.2f}" + (" (kink)" if p.taylor.kink else "")


def count_text(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def parameter_cells(p: ParameterResult) -> dict[str, str]:
    """One row of the table: every column of ``COLUMNS`` as text."""
    w = p.worst
    return {
        "param": p.name,
        "shape": "x".join(map(str, p.shape)) or "scalar",
        "checked": coverage_text(p),
        "worst": p.worst_label,
        "analytic": value_text(float(p.analytic[w])),
        "numerical": value_text(float(p.numerical[w])),
        "err/limit": ratio_text(p.error_ratio),
        "resolution": error_text(p.resolution),
        "max rel err": error_text(float(p.rel_error.max())),
        "evals/entry": f"{p.evaluations / max(1, p.checked):.3g}",
        "kinks": str(int(np.count_nonzero(p.kinks))),
        "order": taylor_text(p),
        "status": p.status,
    }


def verdict_line(report: Report) -> str:
    """The verdict line, status first; it names the check in a suite."""
    s = report.settings
    checked = len(report.parameters)
    scope = count_text(checked, "parameter")
    if report.unchecked:
        scope = f"{checked} of {count_text(checked + len(report.unchecked), 'parameter')} (interrupted)"
    unresolved = sum(p.status == "UNRESOLVED" for p in report.parameters)
    name = printable(report.name) + ": " if report.name else ""
    return (
        f"{report.status}  {name}{scope}, {report.failed_parameters} failed"
        f"{f', {unresolved} unresolved' if unresolved else ''} | "
        f"{s.difference.label}, step {s.step:.3g}*max(1,|x|), rtol {s.rtol:g}, atol {s.atol:g}, {s.dtype}, "
        f"{s.mode} mode{', taylor test' if s.taylor else ''} | {report.engine} engine, "
        f"{count_text(report.evaluations, report.evaluated + ' evaluation')}, {report.elapsed:.3f} s"
    )


def report_as_text(report: Report) -> str:
    """The whole report as plain text (no colour, no renderer): the title, the table,
    the reasons and notes, and the verdict line; e.g. for an assertion message."""
    shown = [(h, j) for h, j in COLUMNS if h != "order" or report.settings.taylor]
    rows = [[h for h, _ in shown]] + [[parameter_cells(p)[h] for h, _ in shown] for p in report.parameters]
    widths = [max(len(row[k]) for row in rows) for k in range(len(shown))]

    def line(row: list[str]) -> str:
        cells = []
        for text, width, (_, justify) in zip(row, widths, shown, strict=True):
            cells.append(
                text.ljust(width)
                if justify == "left"
                else text.center(width)
                if justify == "center"
                else text.rjust(width)
            )
        return " ".join(cells).rstrip()

    out = [printable(report.title), line(rows[0]), "-" * len(line(rows[0])), *(line(r) for r in rows[1:])]
    out += [f"{p.name}: {reason}" for p in report.parameters for reason in p.reasons]
    out += list(report.notes)
    if report.unchecked:
        out.append(f"not checked (interrupted): {', '.join(report.unchecked)}")
    out.append(verdict_line(report))
    return "\n".join(out) + "\n"


def exit_codes_line() -> str:
    """The exit codes in one line, as ``gradcheck --help`` ends with them."""
    return "Exit codes: " + "; ".join(f"{code} {meaning.split(':')[0]}" for code, meaning in EXIT_CODES.items()) + "."
