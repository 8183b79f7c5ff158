"""The mistake catalogue as the tests use it: every mistake of ``gradcheck_cli.insight.zoo``
on a model where it applies, and the parameters whose rows must FAIL.

The models with the mistakes in come from ``zoo.inject`` (the MLP's own backward
seams); the parameters that must fail are those whose gradient the mistake changes
(``zoo.affected``, an exact comparison with the right gradient), never a list
written by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gradcheck_cli.insight import zoo
from gradcheck_cli.models import LinRegSpec, MLPSpec

# A model on which each mistake shows: a square weight, equal widths, sigmoid (whose
# sigma' differs between A and Z), a softmax output.
SPECS = {
    "missing 1/m": ([3, 5, 2], {}),
    "sign flip": ([3, 5, 2], {}),
    "sigma' of the output": ([3, 5, 2], {"activation": "sigmoid"}),
    "sigma' from the wrong layer": ([3, 5, 5, 2], {}),
    "sigma' dropped": ([3, 5, 2], {}),
    "tanh' on the pre-activation": ([3, 5, 2], {}),
    "softmax without the one-hot": ([3, 5, 3], {"loss": "softmax-ce"}),
    "square weight transposed": ([3, 5, 5, 2], {}),
    "bias averaged": ([3, 5, 2], {}),
    "equal-shaped layers swapped": ([3, 5, 5, 5, 2], {}),
    "one entry off": ([3, 5, 2], {}),
}


@dataclass(frozen=True)
class Mistake:
    name: str
    build: Callable[[], object]
    failing: tuple[str, ...]


def _entry(mistake: zoo.Mistake) -> Mistake:
    layers, options = SPECS[mistake.name]
    spec = MLPSpec.build(layers, **options)
    return Mistake(mistake.name, lambda: zoo.inject(mistake, spec), tuple(zoo.affected(mistake, spec)))


MISTAKES = [_entry(m) for m in zoo.MISTAKES] + [
    Mistake("linreg 2/m", lambda: zoo.doubled_linreg(LinRegSpec.build(m=100)), ("theta",))
]


def one_entry_off(layers: list[int], relative: float) -> object:
    """The MLP with dW^1's largest entry off by ``relative``."""
    return zoo.inject(zoo.one_entry_off(relative), MLPSpec.build(layers))
