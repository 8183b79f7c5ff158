"""The mistake catalogue: wrong backward passes, each put in through a real seam.

Every entry builds a model whose ``gradients`` is wrong in one classic way and
names the parameters whose rows must FAIL.  The seams are the MLP's backward
helpers (overridden in a subclass) or a wrapper around ``gradients``: nothing in
the production code knows about these mistakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gradcheck_cli.models import MLP, LinearRegression, LinRegSpec, MLPSpec


class MissingMean(MLP):
    """Forgot the 1/m of the loss in the backward pass."""

    def _output_delta(self, cache):
        return super()._output_delta(cache) * self.spec.m


class SignFlip(MLP):
    """A hidden layer's delta with the wrong sign."""

    def _hidden_delta(self, l, G, cache):
        delta = super()._hidden_delta(l, G, cache)
        return delta if l == self.depth else -delta


class DerivativeOnOutput(MLP):
    """sigma' evaluated on Z^l (post-activation) where the formula expects A^l."""

    def _hidden_delta(self, l, G, cache):
        if l == self.depth:
            return super()._hidden_delta(l, G, cache)
        return G * self.activations[l - 1].derivative(cache.Z[l])


class DerivativeFromWrongLayer(MLP):
    """sigma'_{l+1}(A^{l+1}) used for layer l: the widths match, so the shapes do."""

    def _hidden_delta(self, l, G, cache):
        if l < self.depth and cache.A[l + 1].shape == G.shape:
            return G * self.activations[l].derivative(cache.A[l + 1])
        return super()._hidden_delta(l, G, cache)


class DerivativeDropped(MLP):
    """The sigma' factor left out of the hidden deltas."""

    def _hidden_delta(self, l, G, cache):
        if l == self.depth:
            return super()._hidden_delta(l, G, cache)
        return G


class TransposedSquareWeight(MLP):
    """dW^2 transposed: W2 is square, so the shape still matches."""

    def _weight_gradient(self, l, delta, cache):
        g = super()._weight_gradient(l, delta, cache)
        return g.T if l == 2 else g


class AveragedBias(MLP):
    """Bias gradient averaged over the batch instead of summed."""

    def _bias_gradient(self, l, delta):
        return delta.mean(axis=0)


class SwappedLayers(MLP):
    """The gradients of two equal-shaped layers (W2, W3) returned swapped."""

    def gradients(self, params):
        g = super().gradients(params)
        g["W2"], g["W3"] = g["W3"], g["W2"]
        return g


class OneEntryOff(MLP):
    """One entry of dW1, the largest, off by 1e-3 relative."""

    relative = 1e-3

    def gradients(self, params):
        g = super().gradients(params)
        w = g["W1"].copy()
        i = np.unravel_index(np.argmax(np.abs(w)), w.shape)
        w[i] *= 1 + self.relative
        g["W1"] = w
        return g


class DoubledLinReg(LinearRegression):
    """linreg with 2/m instead of 1/m (the factor 2 of the square kept twice)."""

    def gradients(self, params):
        theta = params["theta"]
        return {"theta": 2 * self.X.T @ (self.X @ theta - self.y) / self.spec.m}


@dataclass(frozen=True)
class Mistake:
    name: str
    build: Callable[[], object]
    failing: tuple[str, ...]


def _mlp(cls, layers, **kw):
    return lambda: cls(MLPSpec.build(layers, **kw))


MISTAKES = [
    Mistake("missing 1/m", _mlp(MissingMean, [3, 5, 2]), ("W1", "b1", "W2", "b2")),
    Mistake("sign flip", _mlp(SignFlip, [3, 5, 2]), ("W1", "b1")),
    Mistake("sigma' on the post-activation", _mlp(DerivativeOnOutput, [3, 5, 2], activation="sigmoid"), ("W1", "b1")),
    Mistake("sigma' from the wrong layer", _mlp(DerivativeFromWrongLayer, [3, 5, 5, 2]), ("W1", "b1")),
    Mistake("sigma' dropped", _mlp(DerivativeDropped, [3, 5, 2]), ("W1", "b1")),
    Mistake("square weight gradient transposed", _mlp(TransposedSquareWeight, [3, 5, 5, 2]), ("W2",)),
    Mistake("bias gradient averaged", _mlp(AveragedBias, [3, 5, 2]), ("b1", "b2")),
    Mistake("equal-shaped layers swapped", _mlp(SwappedLayers, [3, 5, 5, 5, 2]), ("W2", "W3")),
    Mistake("one entry off by 1e-3", _mlp(OneEntryOff, [3, 5, 2]), ("W1",)),
    Mistake("linreg 2/m", lambda: DoubledLinReg(LinRegSpec.build(m=100)), ("theta",)),
]
