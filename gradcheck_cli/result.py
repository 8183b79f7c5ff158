"""What a check found: ``ParameterResult`` per parameter, the ``Report`` of a check.

Plain data with its verdict and its JSON form; the renderers (``report.py``) read
it, and nothing here knows how it is drawn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ._version import __version__
from .indexing import entry_index, format_index
from .numeric import TaylorResult
from .options import Settings
from .rule import status

Array = npt.NDArray[Any]

STATUS_ORDER = {"PASS": 0, "WARN": 1, "FAIL": 2, "ERROR": 3, "INCOMPLETE": 4}
# The exit codes, one meaning each: 1 is a gradient that failed and nothing else.
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = {
    EXIT_PASS: "every parameter passes (PASS or WARN)",
    EXIT_FAIL: "at least one parameter fails",
    EXIT_USAGE: "bad usage or input, or a check that could not run (one line on stderr)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): what finished is shown, marked incomplete",
}


@dataclass
class ParameterResult:
    """The comparison for one parameter tensor."""

    name: str
    shape: tuple[int, ...]
    coverage: str  # "entries" or "directions"
    positions: Array  # flat indices checked, or direction numbers
    analytic: Array
    numerical: Array
    abs_error: Array  # |a - n|, or the distance of a to the one-sided interval at kinks
    limit: Array
    kinks: Array
    steps: Array
    noise: Array  # round-off bound of each numerical value
    taylor: TaylorResult | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def checked(self) -> int:
        return len(self.positions)

    @property
    def rel_error(self) -> Array:
        scale = np.maximum(np.abs(self.analytic), np.abs(self.numerical))
        return np.divide(self.abs_error, scale, out=np.zeros_like(self.abs_error), where=scale > 0)

    @property
    def failures(self) -> int:
        return int(np.count_nonzero(self.abs_error > self.limit))

    @property
    def worst(self) -> int:
        """Position (in the checked arrays) closest to, or furthest past, its limit."""
        return int(np.argmax(self.abs_error / self.limit))

    @property
    def worst_label(self) -> str:
        if self.coverage == "directions":
            return f"direction {int(self.positions[self.worst])}"
        return format_index(self.shape, int(self.positions[self.worst]))

    @property
    def status(self) -> str:
        return status(self.abs_error, self.limit, self.taylor is not None and not self.taylor.passed)

    def to_dict(self) -> dict[str, Any]:
        rel = self.rel_error
        w = self.worst
        worst: dict[str, Any] = {
            "analytic": _float(self.analytic[w]),
            "numerical": _float(self.numerical[w]),
            "abs_error": _float(self.abs_error[w]),
            "limit": _float(self.limit[w]),
        }
        if self.coverage == "directions":
            worst["direction"] = int(self.positions[w])
        else:
            worst["index"] = entry_index(self.shape, int(self.positions[w]))
        taylor = self.taylor
        return {
            "name": self.name,
            "shape": list(self.shape),
            "size": self.size,
            "coverage": self.coverage,
            "checked": self.checked,
            "max_rel_error": _float(rel.max()),
            "median_rel_error": _float(np.median(rel)),
            "max_abs_error": _float(self.abs_error.max()),
            "failures": self.failures,
            "kink_entries": int(np.count_nonzero(self.kinks)),
            "worst": worst,
            "taylor_order": None if taylor is None or taylor.order is None else round(taylor.order, 4),
            "status": self.status,
        }


def _float(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


@dataclass
class Report:
    """Everything a check found, and the exit code it means."""

    title: str
    model: dict[str, Any]
    settings: Settings
    parameters: list[ParameterResult]
    elapsed: float
    evaluations: int
    engine: str = "loop"
    name: str = ""
    unchecked: list[str] = field(default_factory=list)  # parameters an interrupt left unchecked

    @property
    def interrupted(self) -> bool:
        return bool(self.unchecked)

    @property
    def status(self) -> str:
        if self.interrupted:
            return "INCOMPLETE"
        return max((p.status for p in self.parameters), key=STATUS_ORDER.__getitem__, default="PASS")

    @property
    def passed(self) -> bool:
        return self.status in ("PASS", "WARN")

    @property
    def failed_parameters(self) -> int:
        return sum(p.status == "FAIL" for p in self.parameters)

    @property
    def exit_code(self) -> int:
        """0 when every parameter passes (WARN included), 1 when any fails, 130 when
        an interrupt left parameters unchecked."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_PASS if self.passed else EXIT_FAIL

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "gradcheck_version": __version__,
            "name": self.name,
            "title": self.title,
            "model": self.model,
            "settings": {
                "method": s.method,
                "mode": s.mode,
                "dtype": s.dtype,
                "eps": s.eps,
                "rtol": s.rtol,
                "atol": s.atol,
                "samples": s.samples,
                "directions": s.directions,
                "taylor": s.taylor,
                "seed": s.seed,
            },
            "engine": self.engine,
            "status": self.status,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "elapsed_seconds": round(self.elapsed, 6),
            "loss_evaluations": self.evaluations,
            "parameters": [p.to_dict() for p in self.parameters],
            "unchecked_parameters": self.unchecked,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass
class CheckError:
    """A check of a suite that could not run (its code raised, say); the others keep
    their verdicts."""

    name: str
    title: str
    message: str
    elapsed: float = 0.0
    status = "ERROR"
    exit_code = EXIT_USAGE
    passed = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "error": self.message,
            "exit_code": self.exit_code,
            "passed": False,
        }


Outcome = Report | CheckError


def suite_exit_code(outcomes: Sequence[Outcome], unrun: Sequence[str] = ()) -> int:
    """The worst outcome: interrupted (130) over an error (2) over a failure (1)."""
    if unrun or any(o.exit_code == EXIT_INTERRUPTED for o in outcomes):
        return EXIT_INTERRUPTED
    return max((o.exit_code for o in outcomes), default=EXIT_PASS)


def suite_to_dict(outcomes: Sequence[Outcome], unrun: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "gradcheck_version": __version__,
        "checks": [o.to_dict() for o in outcomes],
        "passed": all(o.passed for o in outcomes) and not unrun,
        "failed_checks": [o.name for o in outcomes if o.status == "FAIL"],
        "error_checks": [o.name for o in outcomes if o.status == "ERROR"],
        "unrun_checks": list(unrun),
        "exit_code": suite_exit_code(outcomes, unrun),
    }
