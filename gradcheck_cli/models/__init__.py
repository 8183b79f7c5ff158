"""Built-in models: each module keeps its forward pass next to its backward pass."""

from ..core.errors import SpecError
from .activations import ACTIVATIONS, Activation, get_activation
from .base import Model, ModelSpec
from .linreg import LinearRegression, LinRegSpec
from .losses import LOSSES, Loss, get_loss
from .mlp import MLP, MLPSpec

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "Activation",
    "LinRegSpec",
    "LinearRegression",
    "Loss",
    "MLPSpec",
    "Model",
    "ModelSpec",
    "SpecError",
    "get_activation",
    "get_loss",
]
