"""The derivation a built-in model's backward pass follows, as the seed does it.

First "as scalars" (the chain rule as if every matrix were a number), then the
matrix expression the dimensions force, every operand with its shape for this
model and its ``m``; then what the forward pass must keep for the backward pass,
with its size in bytes.  Data only: ``report.render_explanation`` draws it.

Notation (the code's own): ``A^l = Z^{l-1} W^l + b^l`` is layer ``l``'s
pre-activation, ``Z^l = sigma_l(A^l)`` its output, ``Z^0 = X``; ``G^l = dJ/dZ^l``
and ``D^l = dJ/dA^l``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models import LinRegSpec, MLPSpec

# Each activation's derivative written from its output Z (what the seed's shortcut
# σ'(Z^{l+1}) needs).  Every activation offered has one; the models use the
# pre-activation anyway.  models.activations holds the same as code
# (``derivative_from_output``), and a test holds the two together.
FROM_OUTPUT = {
    "identity": "1",
    "sigmoid": "Z (1 - Z)",
    "tanh": "1 - Z^2",
    "relu": "1 where Z > 0, else 0",
    "leaky_relu": "1 where Z > 0, else 0.01",
    "softplus": "1 - exp(-Z)  (not sigmoid(Z): that naive form takes sigmoid of the output)",
    "elu": "1 where Z > 0, else Z + 1",
}


@dataclass(frozen=True)
class Step:
    """One line of the derivation: what it computes, the chain rule as scalars, the
    matrix expression with every operand's shape, and the result's shape."""

    what: str
    scalar: str
    matrix: str
    result: str


@dataclass(frozen=True)
class Cached:
    """A value the forward pass keeps for the backward pass."""

    name: str
    why: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class Explanation:
    title: str
    forward: list[Step]
    backward: list[Step]
    cache: list[Cached]
    shortcuts: list[str]

    @property
    def cache_bytes(self) -> int:
        return sum(c.nbytes for c in self.cache)


def _s(*shape: int) -> str:
    return "(" + "×".join(map(str, shape)) + ")"


def explain_mlp(spec: MLPSpec, itemsize: int = 8) -> Explanation:
    """The MLP's forward and backward pass, layer by layer, with this model's shapes."""
    n, m, depth = spec.layers, spec.m, len(spec.layers) - 1
    forward = []
    for l in range(1, depth + 1):
        rhs = f"Z{l - 1} {_s(m, n[l - 1])} · W{l} {_s(n[l - 1], n[l])}"
        if spec.bias:
            rhs += f" + b{l} {_s(n[l])}"
        scalar = "A = Z W + b" if spec.bias else "A = Z W"
        forward.append(Step(f"A{l}", scalar, rhs, f"{_s(m, n[l])}, Z{l} = {spec.activations[l - 1]}(A{l})"))
    L = depth
    backward: list[Step] = []
    if spec.loss == "mse":
        backward.append(
            Step(f"G{L}", "dJ/dZ = (Z - Y) / m", f"(Z{L} {_s(m, n[L])} - Y {_s(m, n[L])}) / m", _s(m, n[L]))
        )
        backward.append(
            Step(f"D{L}", "dJ/dA = dJ/dZ * σ'(A)", f"G{L} {_s(m, n[L])} ⊙ σ'(A{L}) {_s(m, n[L])}", _s(m, n[L]))
        )
    else:
        link = "sigmoid" if spec.loss == "bce" else "softmax"
        backward.append(
            Step(
                f"D{L}",
                f"dJ/dA = ({link}(A) - Y) / m  (the loss takes the logits)",
                f"({link}(A{L}) {_s(m, n[L])} - Y {_s(m, n[L])}) / m",
                _s(m, n[L]),
            )
        )
    for l in range(L, 0, -1):
        backward.append(
            Step(
                f"dJ/dW{l}",
                "dJ/dW = dJ/dA * dA/dW = D * Z",
                f"Z{l - 1}ᵀ {_s(n[l - 1], m)} · D{l} {_s(m, n[l])}",
                _s(n[l - 1], n[l]),
            )
        )
        if spec.bias:
            backward.append(
                Step(
                    f"dJ/db{l}",
                    "dJ/db = D * 1 (summed over the batch)",
                    f"1ᵀ {_s(1, m)} · D{l} {_s(m, n[l])}",
                    _s(n[l]),
                )
            )
        if l > 1:
            backward.append(
                Step(
                    f"G{l - 1}",
                    "dJ/dZ = dJ/dA * dA/dZ = D * W",
                    f"D{l} {_s(m, n[l])} · W{l}ᵀ {_s(n[l], n[l - 1])}",
                    _s(m, n[l - 1]),
                )
            )
            backward.append(
                Step(
                    f"D{l - 1}",
                    "dJ/dA = dJ/dZ * σ'(A)",
                    f"G{l - 1} {_s(m, n[l - 1])} ⊙ σ'(A{l - 1}) {_s(m, n[l - 1])}",
                    _s(m, n[l - 1]),
                )
            )
    cache = []
    for l in range(1, L + 1):
        cache.append(
            Cached(f"Z{l - 1}" + (" = X" if l == 1 else ""), f"for dJ/dW{l}", (m, n[l - 1]), m * n[l - 1] * itemsize)
        )
        fused_output = l == L and spec.loss != "mse"
        why = "for the loss's gradient (the logits)" if fused_output else f"for σ'(A{l})"
        cache.append(Cached(f"A{l}", why, (m, n[l]), m * n[l] * itemsize))
    if spec.loss == "mse":
        cache.append(Cached(f"Z{L}", f"for G{L} = (Z{L} - Y) / m", (m, n[L]), m * n[L] * itemsize))
    shortcuts = [
        f"{name}: σ'(A) = {FROM_OUTPUT[name]}: the seed's shortcut σ'(Z) holds"
        for name in dict.fromkeys(spec.activations[:-1] if spec.loss != "mse" else spec.activations)
        if name in FROM_OUTPUT
    ]
    title = f"{spec.title()}\nthe backward pass: as scalars, then by matching dimensions"
    return Explanation(title, forward, backward, cache, shortcuts)


def explain_linreg(spec: LinRegSpec, itemsize: int = 8) -> Explanation:
    """Linear regression's gradient (1/m) Xᵀ (X θ - y), with its shapes."""
    m, k = spec.m, spec.n + 1
    forward = [Step("r", "r = X θ - y", f"X {_s(m, k)} · θ {_s(k, 1)} - y {_s(m, 1)}", _s(m, 1))]
    backward = [
        Step(
            "dJ/dθ",
            "J = (1/2m) r²  ⇒  dJ/dθ = (1/2m) · 2 r · X = r X / m",
            f"Xᵀ {_s(k, m)} · r {_s(m, 1)} / m",
            _s(k, 1),
        )
    ]
    if spec.l2:
        backward.append(
            Step("+ ridge", "d/dθ (λ/2m) θ² = λ θ / m (the bias unpenalised)", f"λ/m [0; θ[1:]] {_s(k, 1)}", _s(k, 1))
        )
    cache = [
        Cached("X", "for Xᵀ r (the data)", (m, k), m * k * itemsize),
        Cached("r", "the residual", (m, 1), m * itemsize),
    ]
    title = f"{spec.title()}\nthe gradient: as scalars, then by matching dimensions"
    return Explanation(title, forward, backward, cache, [])


def itemsize_of(dtype: str) -> int:
    return int(np.dtype(dtype).itemsize)
