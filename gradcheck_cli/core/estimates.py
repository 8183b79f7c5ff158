"""What the numerical side measures: loss changes (``Evaluation``), derivative
estimates with their error bounds (``Derivatives``) and the Taylor test's result.

Plain data, shared by every floor above: the numerics fill them in, the pass rule
reads them, the results carry them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]


EPS64 = float(np.finfo(np.float64).eps)


@dataclass
class Evaluation:
    """Loss changes ``J(x + step) - J(x)`` for a batch of perturbations."""

    change: Array  # real, or complex for imaginary steps; nan where the loss was not finite
    roundoff: Array  # absolute round-off bound of each change
    crossed: Array | None  # kinks each step straddles (or starts on); None: unknown
    real_output: Array | None = None  # complex steps: True where the loss returned a real value


# evaluate(steps, subset): loss changes for the perturbations ``subset`` (all when
# None) of a fixed batch, with the given (signed or imaginary) steps.
Evaluate = Callable[[Array, "Array | None"], Evaluation]


@dataclass
class Derivatives:
    """Numerical derivatives of a batch of perturbations (entries or directions)."""

    values: Array  # best estimate
    steps: Array  # |h| actually used
    noise: Array  # round-off bound of each estimate
    kinks: Array  # True: judge by the subgradient rule between lower and upper
    lower: Array  # smaller one-sided derivative (nan where not measured)
    upper: Array  # larger one-sided derivative
    truncation: Array | None = None  # estimated truncation error of each value (None: not measured)
    flags: Array | None = None  # a FLAG_* per entry: why it cannot be resolved, or a jump
    jumps: Array | None = None  # size of the jump where FLAG_JUMP
    evaluations: int = 0  # loss evaluations spent on this batch

    def __post_init__(self) -> None:
        n = len(self.values)
        if self.truncation is None:
            self.truncation = np.zeros(n)
        if self.flags is None:
            self.flags = np.zeros(n, dtype=np.int8)
        if self.jumps is None:
            self.jumps = np.zeros(n)


# Why an entry has no verdict of its own (or, for a jump, why it fails).
FLAG_NONE, FLAG_DOMAIN, FLAG_COMPLEX_INVALID, FLAG_JUMP, FLAG_KINKS = 0, 1, 2, 3, 4


@dataclass
class TaylorResult:
    """Observed convergence order of ``r(h) = |J(x + h v) - J(x) - h g.v|``."""

    order: float | None  # None: the remainder stayed below round-off (exact along v)
    passed: bool
    steps: Array
    remainders: Array
    kink: bool  # judged by one-sided slopes because the order stayed at 1 on both sides
    # At a kink, a slope outside the one-sided slopes: the direction may cross many
    # kinks at once, each free within its own subgradient interval, so it cannot tell.
    undecided: bool = False
