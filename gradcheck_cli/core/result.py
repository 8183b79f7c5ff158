"""What a check found: ``ParameterResult`` per parameter, the ``Report`` of a check.

Plain data with its verdict and its JSON form; the renderers (``report.py``) read
it, and nothing here knows how it is drawn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .._version import __version__
from .estimates import FLAG_COMPLEX_INVALID, FLAG_DOMAIN, FLAG_JUMP, FLAG_KINKS, FLAG_NONE, Derivatives, TaylorResult
from .indexing import entry_index, format_index
from .options import Settings
from .rule import Judgement, status

Array = npt.NDArray[Any]

STATUS_ORDER = {"PASS": 0, "UNRESOLVED": 1, "FAIL": 2, "ERROR": 3, "INCOMPLETE": 4}
# The exit codes, one meaning each: 1 is a gradient that failed and nothing else.
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_UNRESOLVED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {
    EXIT_PASS: "every parameter passes: a check finished and passed (exit 0 never means anything else)",
    EXIT_FAIL: "at least one parameter fails, and nothing else: never an error of input, of your code, or of ours",
    EXIT_USAGE: (
        "bad usage or input, or a check that could not run or finish (your code ended its process, hung past the "
        "timeout, or the check ran past max_seconds, its finished rows kept): one line on stderr naming the option "
        "(or the config file, line and key, or the user function) and what would be right; an exception in your "
        "own code shows your frames first"
    ),
    EXIT_UNRESOLVED: (
        "no parameter fails, but some entry is UNRESOLVED: the check could not tell, and says why and what would "
        "resolve it (allow_unresolved turns it into 0)"
    ),
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): what finished is shown, the rest marked INCOMPLETE or NOT RUN",
}

# The JSON report, field by field: (type, meaning).  A test holds ``Report.to_dict``
# and ``ParameterResult.to_dict`` to these keys; the docs' reference is made from them.
REPORT_FIELDS: dict[str, tuple[str, str]] = {
    "gradcheck_version": ("string", "the tool's version"),
    "name": ("string", "the check's name (suites), else empty"),
    "title": ("string", "what was checked, in one line"),
    "model": ("object", "the spec: model, and its options (layers, activations, loss, ...; or the function's)"),
    "settings": (
        "object",
        "method, mode, dtype, eps (the relative step used), rtol, atol, samples, directions, "
        "taylor, seed, allow_unresolved",
    ),
    "engine": ("string", "which evaluator computed the numerical side"),
    "status": (
        "string",
        "PASS, FAIL, UNRESOLVED, or INCOMPLETE when Ctrl-C or --max-seconds left parameters unchecked",
    ),
    "passed": ("bool", "no parameter failed"),
    "exit_code": ("int", "0, 1, 3 or 130, as the process exits"),
    "elapsed_seconds": ("number", "wall time of the check"),
    "loss_evaluations": ("int", "evaluations of the function (or their equivalent)"),
    "evaluated": ("string", "what loss_evaluations counts: loss, function, loss and gradient"),
    "notes": ("array", "findings about the check as a whole (a Hessian's symmetry, say)"),
    "parameters": ("array", "one object per row of the table (below)"),
    "unchecked_parameters": ("array", "names an interrupt left unchecked (empty otherwise)"),
    "stopped": ("string", "why --max-seconds stopped the check (empty otherwise; exit code 2)"),
}
PARAMETER_FIELDS: dict[str, tuple[str, str]] = {
    "name": ("string", "the parameter (or the block: H[p,q], J·v[x])"),
    "shape": ("array", "its shape"),
    "size": ("int", "its number of entries"),
    "coverage": ("string", "entries or directions"),
    "checked": ("int", "entries (or directions) compared"),
    "max_rel_error": ("number", "|a - n| / max(|a|, |n|), the largest"),
    "median_rel_error": ("number", "the median of the same"),
    "max_abs_error": ("number", "the largest |a - n|"),
    "failures": ("int", "entries outside their limit"),
    "unresolved": ("int", "entries the check could not tell"),
    "reasons": ("array", "why, and what would resolve it; a discontinuity's jump"),
    "resolution": ("number", "the largest relative error a resolved entry could carry and still pass"),
    "error_to_limit": ("number", "the worst entry's error over its limit (above 1 fails)"),
    "kink_entries": ("int", "entries judged by the subgradient rule"),
    "loss_evaluations": ("int", "evaluations spent on this row"),
    "worst": ("object", "index (list) or direction (number), analytic, numerical, abs_error, limit"),
    "taylor_order": ("number", "the Taylor test's observed order (null when not run or exact)"),
    "diagnosis": ("string", "what the failure looks like (transposed, sign, ...), or null"),
    "status": ("string", "PASS, FAIL or UNRESOLVED"),
}
# Why an entry is unresolved, and what would resolve it.
REASONS = {
    "roundoff": "round-off (or truncation) exceeds the derivative; try method complex, a larger eps, or rescaling",
    "domain": "the loss is not finite at nearby points (its domain ends there); start farther from the edge",
    "complex": "the complex step is not valid here (the loss is not complex-safe for these entries); "
    "use method central or richardson",
    "taylor": "its direction crosses kinks and the slope lies outside the one-sided slopes, which a chain "
    "rule choosing any subgradient at each of several kinks may still do",
    "kinks": "their steps cross several kinks at once (each may take any value of its own subgradient "
    "interval), and the value lies outside the one-sided slopes; check at a point off the kinks",
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
    failed: Array | None = None  # bool per checked entry
    unresolved: Array | None = None  # bool per checked entry
    flags: Array | None = None  # numeric.FLAG_* per checked entry
    jumps: Array | None = None  # jump of the loss where an entry is discontinuous
    truncation: Array | None = None  # measured truncation error of each numerical value
    resolution: float = float("nan")  # largest relative error a resolved entry could carry and pass
    evaluations: int = 0  # loss evaluations spent on this parameter
    notes: list[str] = field(default_factory=list)  # what else the check found here, in words
    diagnosis: str | None = None  # what a failure looks like ("transposed", "sign"), when it is clear

    def __post_init__(self) -> None:
        n = len(self.positions)
        if self.failed is None:
            self.failed = self.abs_error > self.limit
        if self.unresolved is None:
            self.unresolved = np.zeros(n, dtype=bool)
        if self.flags is None:
            self.flags = np.zeros(n, dtype=np.int8)
        if self.jumps is None:
            self.jumps = np.zeros(n)
        if self.truncation is None:
            self.truncation = np.zeros(n)

    @classmethod
    def judged(
        cls,
        name: str,
        shape: tuple[int, ...],
        coverage: str,
        positions: Array,
        analytic: Array,
        d: Derivatives,
        j: Judgement,
        taylor: TaylorResult | None,
        evaluations: int,
        notes: list[str] | None = None,
    ) -> ParameterResult:
        """The row for numerical derivatives ``d`` judged by the pass rule (``j``)."""
        return cls(
            name,
            shape,
            coverage,
            positions,
            analytic,
            d.values,
            j.abs_error,
            j.limit,
            d.kinks,
            d.steps,
            d.noise,
            taylor,
            failed=j.failed,
            unresolved=j.unresolved,
            flags=d.flags,
            jumps=d.jumps,
            truncation=d.truncation,
            resolution=j.resolution,
            evaluations=evaluations,
            notes=notes or [],
        )

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
        assert self.failed is not None
        return int(np.count_nonzero(self.failed))

    @property
    def unresolved_count(self) -> int:
        assert self.unresolved is not None
        return int(np.count_nonzero(self.unresolved))

    @property
    def worst(self) -> int:
        """Position (in the checked arrays) the verdict rests on: the entry furthest past
        its limit, else an unresolved one, else the one closest to its limit."""
        assert self.failed is not None and self.unresolved is not None
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.nan_to_num(self.abs_error / self.limit, nan=0.0)
        if self.failed.any():
            return int(np.flatnonzero(self.failed)[np.argmax(ratio[self.failed])])
        if self.unresolved.any():
            return int(np.flatnonzero(self.unresolved)[0])
        return int(np.argmax(ratio))

    @property
    def error_ratio(self) -> float:
        """The worst entry's error over its limit: above 1 fails."""
        w = self.worst
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(self.abs_error[w] / self.limit[w])

    @property
    def reasons(self) -> list[str]:
        """Why entries fail without a derivative, or are unresolved, in words."""
        assert self.flags is not None and self.unresolved is not None and self.jumps is not None
        out = list(self.notes)
        jumped = np.flatnonzero(self.flags == FLAG_JUMP)
        if jumped.size:
            k = int(jumped[0])
            more = f" ({jumped.size} entries)" if jumped.size > 1 else ""
            out.append(
                f"the loss is discontinuous at {self.name}{self._label(k)}: it jumps by {float(self.jumps[k]):.3g}, "
                f"so no derivative exists there{more}"
            )
        for flag, key in ((FLAG_DOMAIN, "domain"), (FLAG_COMPLEX_INVALID, "complex"), (FLAG_KINKS, "kinks")):
            count = int(np.count_nonzero(self.unresolved & (self.flags == flag)))
            if count:
                out.append(f"{count} unresolved: {REASONS[key]}")
        plain = int(np.count_nonzero(self.unresolved & (self.flags == FLAG_NONE)))
        if plain:
            out.append(f"{plain} unresolved: {REASONS['roundoff']}")
        if self.taylor is not None and self.taylor.undecided:
            out.append(f"Taylor test unresolved: {REASONS['taylor']}")
        return out

    def _label(self, k: int) -> str:
        if self.coverage == "directions":
            return f" (direction {int(self.positions[k])})"
        return format_index(self.shape, int(self.positions[k]))

    @property
    def worst_label(self) -> str:
        if self.coverage == "directions":
            return f"direction {int(self.positions[self.worst])}"
        return format_index(self.shape, int(self.positions[self.worst]))

    @property
    def status(self) -> str:
        assert self.failed is not None and self.unresolved is not None
        taylor = self.taylor
        taylor_failed = taylor is not None and not taylor.passed and not taylor.undecided
        undecided = np.asarray([taylor is not None and taylor.undecided])
        return status(self.failed, self.unresolved | undecided.any(), taylor_failed)

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
            "unresolved": self.unresolved_count,
            "reasons": self.reasons,
            "resolution": _float(self.resolution),
            "error_to_limit": _float(self.error_ratio),
            "kink_entries": int(np.count_nonzero(self.kinks)),
            "loss_evaluations": self.evaluations,
            "worst": worst,
            "taylor_order": None if taylor is None or taylor.order is None else round(taylor.order, 4),
            "diagnosis": self.diagnosis,
            "status": self.status,
        }


JSON_ARRAY_ENTRIES = 64  # an array in a report's model (a fixed input) is listed up to this size


def json_safe(value: Any) -> Any:
    """``value`` as JSON can hold it: what the user's code put in a fixed input (an
    array written into a ``--const`` dict) must not break the report."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, np.ndarray):
        if value.size <= JSON_ARRAY_ENTRIES:
            return json_safe(value.tolist())
        return f"array of shape {tuple(value.shape)}, dtype {value.dtype}"
    return repr(value)


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
    notes: list[str] = field(default_factory=list)  # findings about the check as a whole
    evaluated: str = "loss"  # what the evaluations count: the loss, or a vector function
    stopped: str = ""  # why it ended early, when its wall (--max-seconds) stopped it: an error, not an interrupt

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
        return self.status == "PASS" or (self.status == "UNRESOLVED" and self.settings.allow_unresolved)

    @property
    def failed_parameters(self) -> int:
        return sum(p.status == "FAIL" for p in self.parameters)

    @property
    def exit_code(self) -> int:
        """0 when every parameter passes, 1 when any fails, 3 when none fails but some
        entry is unresolved (0 with ``allow_unresolved``), 130 when an interrupt left
        parameters unchecked (2 when the check's wall stopped it)."""
        if self.interrupted:
            return EXIT_USAGE if self.stopped else EXIT_INTERRUPTED
        if self.passed:
            return EXIT_PASS
        return EXIT_UNRESOLVED if self.status == "UNRESOLVED" else EXIT_FAIL

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "gradcheck_version": __version__,
            "name": self.name,
            "title": self.title,
            "model": json_safe(self.model),
            "settings": asdict(s),
            "engine": self.engine,
            "status": self.status,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "elapsed_seconds": round(self.elapsed, 6),
            "loss_evaluations": self.evaluations,
            "evaluated": self.evaluated,
            "notes": self.notes,
            "parameters": [p.to_dict() for p in self.parameters],
            "unchecked_parameters": self.unchecked,
            "stopped": self.stopped,
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


_SEVERITY = {EXIT_PASS: 0, EXIT_UNRESOLVED: 1, EXIT_FAIL: 2, EXIT_USAGE: 3, EXIT_INTERRUPTED: 4}


def suite_exit_code(outcomes: Sequence[Outcome], unrun: Sequence[str] = ()) -> int:
    """The worst outcome: interrupted (130) over an error (2) over a failure (1) over
    an unresolved check (3)."""
    if unrun:
        return EXIT_INTERRUPTED
    return max((o.exit_code for o in outcomes), key=_SEVERITY.__getitem__, default=EXIT_PASS)


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


# ---- the zoo ---------------------------------------------------------------------------------

# (label, method, mode): the checks each mistake of the zoo faces; the last is
# informative only (sample mode may miss a mistake confined to entries it did not draw).
ZOO_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("central", "central", "full"),
    ("forward", "forward", "full"),
    ("richardson", "richardson", "full"),
    ("complex", "complex", "full"),
    ("directional", "central", "directional"),
    ("sample", "central", "sample"),
)
ZOO_REQUIRED = ("central", "forward", "richardson", "complex", "directional")


@dataclass
class ZooRow:
    """One mistake on one model: what it is, what it changes, who caught it."""

    name: str
    description: str
    formula: str
    reason: str | None  # why it cannot show on this model (None: it can)
    expected: list[str] = field(default_factory=list)  # parameters it changes
    failed: list[str] = field(default_factory=list)  # rows that failed (central, full)
    max_rel_error: float = math.nan
    caught: dict[str, bool] = field(default_factory=dict)
    diagnosis: str | None = None

    @property
    def status(self) -> str:
        if self.reason is not None:
            return "n/a"
        return "caught" if all(self.caught.get(k, False) for k in ZOO_REQUIRED) else "MISSED"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "formula": self.formula,
            "not_applicable": self.reason,
            "changes": self.expected,
            "failed": self.failed,
            "max_rel_error": None if math.isnan(self.max_rel_error) else self.max_rel_error,
            "caught": self.caught,
            "diagnosis": self.diagnosis,
            "status": self.status,
        }


@dataclass
class ZooReport:
    """The zoo on one model."""

    title: str
    correct: dict[str, bool]  # the right gradient passed, per check
    rows: list[ZooRow]

    @property
    def passed(self) -> bool:
        return all(self.correct.values()) and all(r.status != "MISSED" for r in self.rows)

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "correct_passes": self.correct,
            "mistakes": [r.to_dict() for r in self.rows],
            "passed": self.passed,
            "exit_code": self.exit_code,
        }


# ---- error against step ----------------------------------------------------------------------


@dataclass
class SweepCurve:
    """One method's error at each step of a sweep."""

    method: str
    errors: Array  # the largest error relative to the parameter's largest gradient, per step
    auto_step: float  # the relative step --eps auto chooses
    auto_error: float  # the error there (interpolated)
    missing: str | None = None  # why there is no curve (a loss that is not complex-safe)

    def best(self, steps: Array) -> tuple[float, float]:
        """The step with the smallest error, and that error."""
        k = int(np.argmin(self.errors))
        return float(steps[k]), float(self.errors[k])


@dataclass
class SweepResult:
    """Error against step for every method (``sweep.sweep_steps``)."""

    title: str
    steps: Array  # relative steps, from large to small
    parameter: str | None  # the one parameter swept, or None for all
    curves: list[SweepCurve]
    evaluations: int

    def to_dict(self) -> dict[str, Any]:
        curves = {}
        for c in self.curves:
            best_step, best_error = c.best(self.steps)
            curves[c.method] = {
                "errors": None if c.missing else [float(e) for e in c.errors],
                "best_step": None if c.missing else best_step,
                "best_error": None if c.missing else best_error,
                "auto_step": c.auto_step,
                "auto_error": None if c.missing else c.auto_error,
                "missing": c.missing,
            }
        return {
            "gradcheck_version": __version__,
            "title": self.title,
            "parameter": self.parameter,
            "steps": [float(h) for h in self.steps],
            "methods": curves,
            "loss_evaluations": self.evaluations,
        }
