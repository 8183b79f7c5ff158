"""The seed's linear regression, with an optional ridge term; loss next to gradient.

Shapes: ``m`` samples, ``n`` features::

    X: (m, n+1)   a leading column of ones carries the bias
    theta: (n+1, 1),  y: (m, 1),  X theta - y: (m, 1)
    J(theta)      = 1/(2m) (X theta - y)^T (X theta - y) + l2/(2m) ||theta[1:]||^2
    dJ/dtheta     = 1/m X^T (X theta - y) + l2/m [0, theta[1:]]      (n+1, 1)

"As scalars" the derivative of the square is ``1/(2m) * 2 (X theta - y) * X``;
matching the shape (n+1, 1) puts ``X^T`` in front.  The bias is not penalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import SpecError
from ..core.limits import require_bytes
from .base import Array, Params


@dataclass(frozen=True)
class LinRegSpec:
    """What to build: samples, features, ridge strength, seed."""

    m: int = 100
    n: int = 3
    l2: float = 0.0
    seed: int = 0

    @classmethod
    def build(cls, m: int = 100, n: int = 3, l2: float = 0.0, seed: int = 0) -> LinRegSpec:
        if m < 1:
            raise SpecError("m", f"the number of samples must be >= 1; got {m}")
        if n < 1:
            raise SpecError("n", f"the number of features must be >= 1; got {n}")
        if not l2 >= 0:
            raise SpecError("l2", f"the ridge strength must be >= 0; got {l2}")
        # X (m, n+1), y and theta, complex for the complex step.
        require_bytes(16 * (m * (n + 2) + n + 1), f"linreg with m={m}, n={n}", "m" if m >= n else "n")
        return cls(m, n, float(l2), seed)

    def describe(self) -> dict[str, object]:
        return {"model": "linreg", "m": self.m, "n": self.n, "l2": self.l2, "seed": self.seed}

    def title(self) -> str:
        ridge = f", ridge l2={self.l2:g}" if self.l2 else ""
        return f"linreg m={self.m}, n={self.n}{ridge}, seed={self.seed}"


@dataclass
class LinearRegression:
    """Linear regression on data drawn reproducibly from ``spec.seed``."""

    spec: LinRegSpec
    X: Array = field(init=False)
    y: Array = field(init=False)
    _theta: Array = field(init=False, repr=False)

    has_kinks = False
    evaluators: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.spec.seed)
        m, n = self.spec.m, self.spec.n
        self.X = np.hstack([np.ones((m, 1)), rng.standard_normal((m, n))])
        true_theta = rng.standard_normal((n + 1, 1))
        self.y = self.X @ true_theta + 0.5 * rng.standard_normal((m, 1))
        self._theta = rng.standard_normal((n + 1, 1))

    def initial_parameters(self) -> Params:
        return {"theta": self._theta.copy()}

    def kink_pattern(self, params: Params) -> None:
        return None

    def loss(self, params: Params) -> Any:
        """J(theta), a scalar (complex when theta is complex)."""
        theta = params["theta"]
        X = self.X.astype(theta.dtype, copy=False)
        y = self.y.astype(theta.dtype, copy=False) if theta.dtype == np.float32 else self.y
        r = X @ theta - y  # (m, 1)
        m = self.spec.m
        value = (r * r).sum() / (2 * m) + self.spec.l2 * (theta[1:] * theta[1:]).sum() / (2 * m)
        return value.item()

    def gradients(self, params: Params) -> Params:
        """dJ/dtheta: (n+1, 1) = 1/m X^T (X theta - y) + l2/m [0; theta[1:]]."""
        theta = params["theta"]
        X = self.X.astype(theta.dtype, copy=False)
        y = self.y.astype(theta.dtype, copy=False)
        m = self.spec.m
        grad = X.T @ (X @ theta - y) / m
        ridge = self.spec.l2 * theta / m
        ridge[0] = 0
        return {"theta": grad + ridge}
