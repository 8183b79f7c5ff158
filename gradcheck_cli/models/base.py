"""What the checker needs from a built-in model: the ``Model`` protocol.

``check_model`` knows no concrete model; it asks the model for its loss, its
gradients, its starting point, its kinks and the fast evaluators it offers.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy.typing as npt

Array = npt.NDArray[Any]
Params = dict[str, Array]


class ModelSpec(Protocol):
    """A model's description: a one-line title and a JSON-ready dict."""

    def title(self) -> str: ...

    def describe(self) -> dict[str, object]: ...


class Model(Protocol):
    """A built-in model: loss (forward) beside gradients (backward).

    ``evaluators`` names the fast finite-difference evaluators the model offers,
    best first (``("incremental",)`` for the MLP); the plain loop works for every
    model and is not listed.
    """

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def evaluators(self) -> tuple[str, ...]: ...

    @property
    def has_kinks(self) -> bool: ...

    def initial_parameters(self) -> Params: ...

    def loss(self, params: Params) -> Any: ...

    def gradients(self, params: Params) -> Params: ...

    def kink_pattern(self, params: Params) -> Array | None: ...
