"""The zoo: shape-correct mistakes the dimension-matching trick lets through.

Each mistake is a small function beside a one-line description and the formula it
wrongly uses.  It replaces one backward helper of the MLP (``_output_delta``,
``_hidden_delta``, ``_weight_gradient``, ``_bias_gradient``) or wraps
``gradients``: the seams the MLP offers for exactly this.  ``inject`` builds the
model with one mistake in; nothing in the production backward pass knows of any of
them.  ``gradcheck zoo`` runs them against the checker, the tests use them too, and
the diagnosis of a failing built-in model names the one its gradient matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..models import MLP, LinearRegression, LinRegSpec, MLPSpec
from ..models.mlp import Forward

Array = npt.NDArray[Any]
Params = dict[str, Array]


@dataclass(frozen=True)
class Mistake:
    """One shape-correct mistake: ``wrong(model, correct, *args)`` returns what the
    helper named by ``seam`` returns with the mistake in (``correct`` is the
    helper's own result for the same arguments, bound).  ``needs(spec)`` says why the
    mistake cannot show on a model (no hidden layer, no square weight, ...), decided
    from the model alone, never from the mistake's effect: a mistake that applies and
    changes nothing is a mistake the checker missed."""

    name: str
    description: str
    formula: str
    seam: str
    wrong: Callable[..., Any]
    needs: Callable[[MLPSpec], str | None] = lambda spec: None  # why it cannot show on a model, or None


# ---- where a mistake can show --------------------------------------------------------------


def _hidden(spec: MLPSpec) -> tuple[str, ...]:
    return spec.activations[:-1]


def _needs_hidden(spec: MLPSpec) -> str | None:
    return None if _hidden(spec) else "needs a hidden layer"


def _needs_curved_hidden(spec: MLPSpec) -> str | None:
    if not _hidden(spec):
        return "needs a hidden layer"
    return None if any(a != "identity" for a in _hidden(spec)) else "needs a hidden activation other than identity"


def _needs_derivative_that_differs(spec: MLPSpec) -> str | None:
    # identity, relu and leaky_relu have sigma'(Z) = sigma'(A) at every point.
    same = ("identity", "relu", "leaky_relu")
    if not _hidden(spec):
        return "needs a hidden layer"
    return None if any(a not in same for a in _hidden(spec)) else "needs a hidden activation whose sigma' differs on Z"


def _needs_equal_widths(spec: MLPSpec) -> str | None:
    widths = spec.layers
    ok = any(widths[l] == widths[l + 1] and spec.activations[l - 1] != "identity" for l in range(1, len(widths) - 1))
    return None if ok else "needs two consecutive layers of equal width"


def _needs_tanh(spec: MLPSpec) -> str | None:
    return None if "tanh" in _hidden(spec) else "needs a tanh hidden layer"


def _needs_softmax(spec: MLPSpec) -> str | None:
    return None if spec.loss == "softmax-ce" else "needs --loss softmax-ce"


def _needs_square_weight(spec: MLPSpec) -> str | None:
    widths = spec.layers
    square = any(widths[l - 1] == widths[l] > 1 for l in range(1, len(widths)))
    return None if square else "needs a square weight (two equal consecutive sizes)"


def _needs_bias(spec: MLPSpec) -> str | None:
    return None if spec.bias and spec.m > 1 else "needs biases and m > 1"


def _needs_twin_weights(spec: MLPSpec) -> str | None:
    shapes = list(zip(spec.layers[:-1], spec.layers[1:], strict=True))
    return None if len(set(shapes)) < len(shapes) else "needs two weights of the same shape"


# ---- the mistakes ------------------------------------------------------------------------


def _missing_mean(model: MLP, correct: Callable[..., Array], cache: Forward) -> Array:
    return correct(cache) * model.spec.m


def _sign_flip(model: MLP, correct: Callable[..., Array], l: int, G: Array, cache: Forward) -> Array:
    delta = correct(l, G, cache)
    return delta if l == model.depth else -delta


def _derivative_on_output(model: MLP, correct: Callable[..., Array], l: int, G: Array, cache: Forward) -> Array:
    if l == model.depth:
        return correct(l, G, cache)
    return G * model.activations[l - 1].derivative(cache.Z[l])


def _derivative_from_wrong_layer(model: MLP, correct: Callable[..., Array], l: int, G: Array, cache: Forward) -> Array:
    if l < model.depth and cache.A[l + 1].shape == G.shape:
        return G * model.activations[l].derivative(cache.A[l + 1])
    return correct(l, G, cache)


def _derivative_dropped(model: MLP, correct: Callable[..., Array], l: int, G: Array, cache: Forward) -> Array:
    return correct(l, G, cache) if l == model.depth else G


def _tanh_derivative_on_pre_activation(
    model: MLP, correct: Callable[..., Array], l: int, G: Array, cache: Forward
) -> Array:
    if l < model.depth and model.activations[l - 1].name == "tanh":
        wrong: Array = G * (1 - cache.A[l] ** 2)
        return wrong
    return correct(l, G, cache)


def _softmax_without_one_hot(model: MLP, correct: Callable[..., Array], cache: Forward) -> Array:
    if model.spec.loss != "softmax-ce":
        return correct(cache)
    a = cache.A[-1]
    e = np.exp(a - np.real(a).max(axis=-1, keepdims=True))
    wrong: Array = e / e.sum(axis=-1, keepdims=True) / model.spec.m
    return wrong


def _transposed_square_weight(model: MLP, correct: Callable[..., Array], l: int, delta: Array, cache: Forward) -> Array:
    g = correct(l, delta, cache)
    square = [k for k in range(1, model.depth + 1) if model.spec.layers[k - 1] == model.spec.layers[k]]
    return g.T if square and l == square[0] else g


def _averaged_bias(model: MLP, correct: Callable[..., Array], l: int, delta: Array) -> Array:
    return correct(l, delta) / model.spec.m


def _swapped_layers(model: MLP, correct: Callable[..., Params], params: Params) -> Params:
    g = dict(correct(params))
    names = [model.weight_name(l) for l in range(1, model.depth + 1)]
    for i, first in enumerate(names):
        twin = next((n for n in names[i + 1 :] if g[n].shape == g[first].shape), None)
        if twin is not None:
            g[first], g[twin] = g[twin], g[first]
            break
    return g


def one_entry_off(relative: float = 1e-3) -> Mistake:
    """dW^1's largest entry off by ``relative``."""

    def wrong(model: MLP, correct: Callable[..., Params], params: Params) -> Params:
        g = dict(correct(params))
        w = g[model.weight_name(1)].copy()
        i = np.unravel_index(np.argmax(np.abs(w)), w.shape)
        w[i] *= 1 + relative
        g[model.weight_name(1)] = w
        return g

    return Mistake(
        "one entry off",
        f"one entry of dW^1, its largest, off by {relative:g} relative",
        f"dW^1[i, j] * (1 + {relative:g})",
        "gradients",
        wrong,
    )


MISTAKES: tuple[Mistake, ...] = (
    Mistake(
        "missing 1/m",
        "the loss's 1/m forgotten in the backward pass",
        "D^L = dJ/dA^L * m",
        "_output_delta",
        _missing_mean,
    ),
    Mistake(
        "sign flip",
        "a hidden layer's delta with the wrong sign",
        "D^l = -G^l * sigma'(A^l)",
        "_hidden_delta",
        _sign_flip,
        _needs_hidden,
    ),
    Mistake(
        "sigma' of the output",
        "sigma' taken of the post-activation Z^l where the pre-activation A^l was due",
        "D^l = G^l * sigma'(Z^l)",
        "_hidden_delta",
        _derivative_on_output,
        _needs_derivative_that_differs,
    ),
    Mistake(
        "sigma' from the wrong layer",
        "the next layer's sigma' used (the widths match, so the shapes do)",
        "D^l = G^l * sigma'_{l+1}(A^{l+1})",
        "_hidden_delta",
        _derivative_from_wrong_layer,
        _needs_equal_widths,
    ),
    Mistake(
        "sigma' dropped",
        "the activation's derivative left out of the hidden deltas",
        "D^l = G^l",
        "_hidden_delta",
        _derivative_dropped,
        _needs_curved_hidden,
    ),
    Mistake(
        "tanh' on the pre-activation",
        "tanh' written 1 - A^2 with the pre-activation (it is 1 - Z^2, Z = tanh A)",
        "D^l = G^l * (1 - (A^l)^2)",
        "_hidden_delta",
        _tanh_derivative_on_pre_activation,
        _needs_tanh,
    ),
    Mistake(
        "softmax without the one-hot",
        "the softmax gradient without subtracting the one-hot labels",
        "D^L = softmax(A^L) / m",
        "_output_delta",
        _softmax_without_one_hot,
        _needs_softmax,
    ),
    Mistake(
        "square weight transposed",
        "a square weight gradient returned transposed",
        "dW^l = ((Z^{l-1})^T D^l)^T",
        "_weight_gradient",
        _transposed_square_weight,
        _needs_square_weight,
    ),
    Mistake(
        "bias averaged",
        "the bias gradient averaged over the batch instead of summed",
        "db^l = mean_i D^l_i",
        "_bias_gradient",
        _averaged_bias,
        _needs_bias,
    ),
    Mistake(
        "equal-shaped layers swapped",
        "the gradients of two equal-shaped weights returned swapped",
        "dW^a <-> dW^b",
        "gradients",
        _swapped_layers,
        _needs_twin_weights,
    ),
    one_entry_off(),
)


def inject(mistake: Mistake, spec: MLPSpec) -> MLP:
    """The MLP of ``spec`` with ``mistake`` in its backward pass."""
    seam = mistake.seam

    def helper(self: MLP, *args: Any) -> Any:
        correct = getattr(super(mistaken, self), seam)
        return mistake.wrong(self, correct, *args)

    mistaken = type(f"MLPWith{''.join(w.title() for w in mistake.name.split() if w.isalpha())}", (MLP,), {seam: helper})
    model: MLP = mistaken(spec)
    return model


def affected(mistake: Mistake, spec: MLPSpec) -> list[str]:
    """The parameters whose gradient the mistake changes on this model (exactly
    compared: a mistake that changes nothing here, say sigma' of the output with
    relu, whose derivative is the same on both, affects none)."""
    right = MLP(spec)
    params = right.initial_parameters()
    good = right.gradients(params)
    bad = inject(mistake, spec).gradients(params)
    scale = max(float(np.max(np.abs(g), initial=0.0)) for g in good.values())
    return [n for n in good if np.max(np.abs(bad[n] - good[n]), initial=0.0) > 1e-9 * max(scale, 1e-300)]


class DoubledLinReg(LinearRegression):
    """Linear regression with 2/m instead of 1/m (the square's factor 2 kept twice)."""

    def gradients(self, params: Params) -> Params:
        theta = params["theta"]
        return {"theta": 2 * self.X.T @ (self.X @ theta - self.y) / self.spec.m}


def doubled_linreg(spec: LinRegSpec) -> LinearRegression:
    return DoubledLinReg(spec)
