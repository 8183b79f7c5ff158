"""Built-in models: each module keeps its forward pass next to its backward pass."""

from ..errors import SpecError
from .activations import ACTIVATIONS, Activation, get_activation
from .base import Model, ModelSpec
from .linreg import LinearRegression, LinRegSpec
from .losses import LOSSES, Loss, get_loss
from .mlp import MLP, MLPSpec

__all__ = [
    "ACTIVATIONS", "Activation", "get_activation", "LOSSES", "Loss", "get_loss",
    "MLP", "MLPSpec", "LinearRegression", "LinRegSpec", "SpecError", "Model", "ModelSpec",
]
