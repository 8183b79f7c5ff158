"""The seed's L-layer perceptron in matrix form, forward next to backward.

Notation (the seed's, with an optional bias)::

    Z^0 = X                                   X: (m, n_0)
    A^l = Z^{l-1} W^l + b^l                   W^l: (n_{l-1}, n_l), b^l: (n_l,)
    Z^l = sigma_l(A^l)                        A^l, Z^l: (m, n_l),  l = 1..L
    J   = loss(Z^L, Y)   (or loss(A^L, Y) for the fused bce / softmax-ce)

Backward, found by treating every matrix as a scalar and then arranging the
factors until the shapes match::

    D^L = dJ/dA^L                             (m, n_L), from the loss
    dW^l = (Z^{l-1})^T D^l                    (n_{l-1}, n_l)
    db^l = sum over rows of D^l               (n_l,)
    G^{l-1} = D^l (W^l)^T                     (m, n_{l-1}) = dJ/dZ^{l-1}
    D^{l-1} = G^{l-1} * sigma'_{l-1}(A^{l-1}) (m, n_{l-1})   elementwise

which is the seed's ``G^l = (G^{l+1} * sigma'(Z^l W^{l+1})) (W^{l+1})^T`` and
``dJ/dW^l = (Z^{l-1})^T (G^l * sigma'_l(Z^{l-1} W^l))``.  The backward pass is
split into small methods (``_output_delta``, ``_hidden_delta``,
``_weight_gradient``, ``_bias_gradient``): each is one line of the derivation,
and each is a seam where a subclass can put a mistake for the checker to find.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ..core.errors import SpecError
from ..core.limits import MAX_LAYERS, require_bytes
from .activations import ACTIVATIONS, Activation, get_activation
from .base import Array, Params
from .losses import LOSSES, Loss, get_loss


def _sizes(layers: Sequence[int]) -> str:
    shown = ",".join(map(str, layers[:6]))
    return shown + (",..." if len(layers) > 6 else "")


@dataclass(frozen=True)
class MLPSpec:
    """What to build: layer sizes, one activation per layer, loss, bias, data size, seed."""

    layers: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str = "mse"
    bias: bool = True
    m: int = 32
    seed: int = 0

    @classmethod
    def build(
        cls,
        layers: Sequence[int],
        activation: str | None = None,
        activations: Sequence[str] | None = None,
        loss: str = "mse",
        bias: bool = True,
        m: int = 32,
        seed: int = 0,
    ) -> MLPSpec:
        """Validate and complete a spec; the output activation follows from the loss
        unless ``activations`` gives one per layer.  ``activation`` (every hidden
        layer, tanh when neither is given) and ``activations`` exclude each other."""
        if activation is not None and activations is not None:
            raise SpecError(
                "activations", "give activation (every hidden layer) or activations (one per layer), not both"
            )
        layers = tuple(int(n) for n in layers)
        if len(layers) < 2:
            raise SpecError("layers", f"need at least two sizes (input,...,output), e.g. 4,8,3; got {len(layers)}")
        if any(n < 1 for n in layers):
            raise SpecError("layers", f"every size must be a whole number >= 1; got {','.join(map(str, layers))}")
        if len(layers) > MAX_LAYERS + 1:
            raise SpecError("layers", f"{len(layers) - 1} layers; the limit is {MAX_LAYERS}")
        if m < 1:
            raise SpecError("m", f"the number of samples must be >= 1; got {m}")
        # Data, parameters and one forward pass's cache, complex for the complex step.
        parameters = sum(a * b + b for a, b in itertools.pairwise(layers))
        cache = 2 * m * sum(layers[1:])
        require_bytes(
            16 * (m * layers[0] + m * layers[-1] + parameters + cache),
            f"an mlp of layers {_sizes(layers)} with m={m}",
            "m" if m > max(layers) else "layers",
        )
        if loss not in LOSSES:
            raise SpecError("loss", f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
        out_act = LOSSES[loss].output_activation
        depth = len(layers) - 1
        if activations is None:
            activation = "tanh" if activation is None else activation
            if activation not in ACTIVATIONS:
                raise SpecError("activation", f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
            acts = (activation,) * (depth - 1) + (out_act,)
        else:
            acts = tuple(activations)
            if len(acts) != depth:
                raise SpecError(
                    "activations",
                    f"need one per layer, {depth} for layers {','.join(map(str, layers))}; got {len(acts)}",
                )
            for a in acts[:-1]:
                if a not in ACTIVATIONS:
                    raise SpecError("activations", f"unknown activation {a!r}; valid: {', '.join(ACTIVATIONS)}")
            last = acts[-1]
            if LOSSES[loss].fused:
                if last != out_act:
                    raise SpecError(
                        "activations",
                        f"loss {loss} computes its {out_act} output from the logits, "
                        f"so the last activation must be {out_act!r}; got {last!r}",
                    )
            elif last not in ACTIVATIONS:
                raise SpecError("activations", f"unknown activation {last!r}; valid: {', '.join(ACTIVATIONS)}")
        min_out = LOSSES[loss].min_outputs
        if layers[-1] < min_out:
            raise SpecError("layers", f"loss {loss} needs an output width of at least {min_out}; got {layers[-1]}")
        return cls(layers, acts, loss, bias, m, seed)

    def describe(self) -> dict[str, object]:
        return {
            "model": "mlp",
            "layers": list(self.layers),
            "activations": list(self.activations),
            "loss": self.loss,
            "bias": self.bias,
            "m": self.m,
            "seed": self.seed,
        }

    def title(self) -> str:
        hidden = sorted(set(self.activations[:-1]))
        acts = "/".join(hidden) if hidden else "-"
        return (
            f"mlp {'-'.join(map(str, self.layers))}, hidden {acts}, output {self.activations[-1]}, "
            f"loss {self.loss}, {'bias' if self.bias else 'no bias'}, m={self.m}, seed={self.seed}"
        )


@dataclass
class Forward:
    """What the backward pass needs, cached by the forward pass."""

    Z: list[Array]  # Z[0] = X, Z[l] = sigma_l(A[l]); Z[L] is the link output for fused losses
    A: list[Array]  # A[0] is an empty placeholder: layer 0 has no pre-activation
    targets: Array  # in the forward dtype (labels stay integers)
    value: Any  # a float64, float32 or complex scalar


@dataclass
class MLP:
    """An MLP with data drawn reproducibly from ``spec.seed``.

    ``X``: (m, n_0) standard normal; targets: (m, n_L) for mse/bce, (m,) labels for
    softmax-ce; weights Glorot-uniform so no layer starts saturated; biases small
    and non-zero so their gradients are not trivially zero.
    """

    spec: MLPSpec
    X: Array = field(init=False)
    targets: Array = field(init=False)
    activations: list[Activation] = field(init=False)
    loss_fn: Loss = field(init=False)
    roles: dict[str, tuple[str, int]] = field(init=False)
    _params: Params = field(init=False, repr=False)

    evaluators = ("incremental",)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.spec.seed)
        sizes = self.spec.layers
        self.loss_fn = get_loss(self.spec.loss)
        self.activations = [
            get_activation(a) if not (self.loss_fn.fused and l == len(sizes) - 1) else get_activation("identity")
            for l, a in enumerate(self.spec.activations, start=1)
        ]
        self.X = rng.standard_normal((self.spec.m, sizes[0]))
        self.targets = self.loss_fn.make_targets(rng, self.spec.m, sizes[-1])
        params: Params = {}
        self.roles = {}
        for l in range(1, len(sizes)):
            n_in, n_out = sizes[l - 1], sizes[l]
            limit = np.sqrt(6.0 / (n_in + n_out))
            params[self.weight_name(l)] = rng.uniform(-limit, limit, size=(n_in, n_out))
            self.roles[self.weight_name(l)] = ("W", l)
            if self.spec.bias:
                params[self.bias_name(l)] = 0.1 * rng.standard_normal(n_out)
                self.roles[self.bias_name(l)] = ("b", l)
        self._params = params

    def __reduce__(self) -> tuple[Any, tuple[MLPSpec]]:
        """Pickled as its spec (the activations hold lambdas): a worker process rebuilds
        the same data and weights from the seed.  A variant with a mistake in its
        backward pass comes back as the plain MLP, whose forward pass it shares: only
        the forward pass is ever evaluated there."""
        return (MLP, (self.spec,))

    @staticmethod
    def weight_name(l: int) -> str:
        """The parameter name of ``W^l``."""
        return f"W{l}"

    @staticmethod
    def bias_name(l: int) -> str:
        """The parameter name of ``b^l``."""
        return f"b{l}"

    @property
    def depth(self) -> int:
        return len(self.spec.layers) - 1

    @property
    def has_kinks(self) -> bool:
        return any(act.kink for act in self.activations)

    def initial_parameters(self) -> Params:
        """Fresh copies of the seeded starting point, float64."""
        return {k: v.copy() for k, v in self._params.items()}

    # ---- forward ---------------------------------------------------------------------------

    def forward(self, params: Params) -> Forward:
        """Run the network, in the dtype of ``params`` (float32, float64 or complex)."""
        dtype = np.result_type(*params.values())
        Z: list[Array] = [self.X.astype(dtype, copy=False)]
        A: list[Array] = [np.empty((0, 0), dtype=dtype)]
        for l in range(1, self.depth + 1):
            a = Z[-1] @ params[self.weight_name(l)]
            if self.spec.bias:
                a = a + params[self.bias_name(l)]
            A.append(a)
            Z.append(self.activations[l - 1].forward(a))
        targets = self.targets
        if targets.dtype.kind == "f" and dtype == np.float32:
            targets = targets.astype(np.float32)
        out = A[-1] if self.loss_fn.fused else Z[-1]
        value = self.loss_fn.value(out, targets)
        return Forward(Z, A, targets, value)

    def loss(self, params: Params) -> Any:
        """J(params), a scalar (complex when ``params`` are complex)."""
        value = self.forward(params).value
        return value.item() if hasattr(value, "item") else value

    def kink_pattern(self, params: Params) -> Array | None:
        """Signs of every pre-activation that feeds a kinked activation; None if none does.

        Two evaluations whose patterns differ straddle (or start on) a kink.
        """
        if not self.has_kinks:
            return None
        cache = self.forward(params)
        return np.concatenate(
            [np.sign(np.real(cache.A[l])).ravel() for l in range(1, self.depth + 1) if self.activations[l - 1].kink]
        )

    # ---- backward --------------------------------------------------------------------------

    def gradients(self, params: Params) -> Params:
        """dJ/dW^l: (n_{l-1}, n_l) and dJ/db^l: (n_l,) for every layer, in matrix form."""
        cache = self.forward(params)
        grads: Params = {}
        delta = self._output_delta(cache)
        for l in range(self.depth, 0, -1):
            grads[self.weight_name(l)] = self._weight_gradient(l, delta, cache)
            if self.spec.bias:
                grads[self.bias_name(l)] = self._bias_gradient(l, delta)
            if l > 1:
                G = delta @ params[self.weight_name(l)].T  # G^{l-1} = dJ/dZ^{l-1}: (m, n_{l-1})
                delta = self._hidden_delta(l - 1, G, cache)
        return {name: grads[name] for name in params}

    def _output_delta(self, cache: Forward) -> Array:
        """D^L = dJ/dA^L: (m, n_L)."""
        if self.loss_fn.fused:
            return self.loss_fn.gradient(cache.A[-1], cache.targets)
        G = self.loss_fn.gradient(cache.Z[-1], cache.targets)
        return self._hidden_delta(self.depth, G, cache)

    def _hidden_delta(self, l: int, G: Array, cache: Forward) -> Array:
        """D^l = G^l * sigma'_l(A^l): (m, n_l); sigma' of the *pre*-activation."""
        return G * self.activations[l - 1].derivative(cache.A[l])

    def _weight_gradient(self, l: int, delta: Array, cache: Forward) -> Array:
        """dJ/dW^l = (Z^{l-1})^T D^l: (n_{l-1}, n_l)."""
        return cache.Z[l - 1].T @ delta

    def _bias_gradient(self, l: int, delta: Array) -> Array:
        """dJ/db^l = column sums of D^l: (n_l,); each sample adds its own share."""
        return cast(Array, delta.sum(axis=0))
