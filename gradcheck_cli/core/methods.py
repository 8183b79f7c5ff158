"""The difference methods, each defined once: a ``Method`` record per method.

Every per-method fact the package needs (the formula's truncation order, the
evaluations it costs per entry, its auto step, its default tolerances per dtype,
its label) is read from here; nothing else compares method names.

Notes
-----
Why the steps are what they are.  A difference quotient has two errors: the
truncation error of the formula (``~h`` forward, ``~h^2`` central, ``~h^4``
Richardson) and the round-off in the loss values divided by ``h`` (``~eps/h``).
Balancing them gives ``h ~ eps^(1/2)``, ``eps^(1/3)`` and ``eps^(1/5)`` relative to
the entry's magnitude, ``max(1, |x|)``: the ``step_power`` of each method.  The
complex step ``Im J(x + ih) / h`` subtracts nothing, so its step can be tiny.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .estimates import EPS64

COMPLEX_STEP = 1e-20  # nothing is subtracted: any step far below the scale of the function


@dataclass(frozen=True)
class Method:
    """One difference method and everything the package knows of it."""

    name: str
    label: str  # as reports name it: "central differences"
    short: str  # as narrow tables name it: "cen"
    order: int  # the truncation error falls as h**order
    evaluations: int  # loss evaluations per entry
    step_power: float | None  # the auto step is precision**step_power (None: a fixed step)
    tolerances: dict[str, tuple[float, float]] = field(default_factory=dict)  # (rtol, atol) per dtype
    one_sided: bool = False  # looks at one side only (cannot see a kink by itself)
    imaginary: bool = False  # moves by an imaginary step (the loss must be complex-safe)

    def step_for(self, precision: float) -> float:
        """The relative step for a function whose values carry a relative ``precision``."""
        if self.step_power is None:
            return COMPLEX_STEP
        return float(precision**self.step_power)

    @property
    def auto_step(self) -> float:
        """The relative step for float64 loss evaluations (see the module Notes)."""
        return self.step_for(EPS64)

    @property
    def extrapolated(self) -> bool:
        """More accurate than the real two-point differences it is built from
        (Richardson: two central differences, their leading error cancelled)."""
        return self.order > self.ladder.order

    @property
    def ladder(self) -> Method:
        """The real two-point method its adaptive ladder steps with: forward for
        forward differences, central for the others (Richardson extrapolates
        central rungs; the complex step is re-checked by real differences)."""
        return FORWARD if self.one_sided else CENTRAL


_FLOAT32 = (1e-3, 1e-6)  # float32: its own round-off dominates whichever method

CENTRAL = Method("central", "central differences", "cen", 2, 2, 1 / 3, {"float64": (1e-6, 1e-9), "float32": _FLOAT32})
FORWARD = Method(
    "forward",
    "forward differences",
    "fwd",
    1,
    1,
    1 / 2,
    {"float64": (1e-4, 1e-7), "float32": _FLOAT32},
    one_sided=True,
)
RICHARDSON = Method(
    "richardson", "Richardson extrapolation", "rich", 4, 4, 1 / 5, {"float64": (1e-6, 1e-9), "float32": _FLOAT32}
)
COMPLEX = Method(
    "complex", "complex step", "cplx", 2, 1, None, {"float64": (1e-6, 1e-9), "float32": _FLOAT32}, imaginary=True
)

METHOD: dict[str, Method] = {m.name: m for m in (CENTRAL, FORWARD, RICHARDSON, COMPLEX)}
METHODS = tuple(METHOD)  # their names, in the order the help lists them


def method(name: str) -> Method:
    """The ``Method`` called ``name``; a ``ValueError`` naming the valid ones otherwise."""
    try:
        return METHOD[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}") from None
