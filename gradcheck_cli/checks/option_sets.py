"""The options each kind of check takes: the option table's model and engine parts.

The generic parsers, the settings and the execution options live in
``core.options``; the MLP's choices come from its activations and losses, the
engine's from the probes, so their tables sit here, above both.
"""

from __future__ import annotations

from ..core.options import (
    EXECUTION_OPTIONS,
    EXPR_OPTIONS,
    FUNC_OPTIONS,
    SETTINGS_OPTIONS,
    Option,
    _boolean,
    _sizes,
    choice,
    integer,
    names,
    number,
    optional,
)
from ..models import ACTIVATIONS, LOSSES
from ..probes.engine import DEFAULT_MAX_MEMORY, EVALUATORS

ENGINES = ("auto", *EVALUATORS, "loop")


MODELS = ("mlp", "linreg", "func", "expr")


ENGINE_OPTIONS: tuple[Option, ...] = (
    Option(
        "engine",
        choice(ENGINES),
        "auto",
        "Numerical side for built-in models: incremental (fast, mlp), loop (one forward pass per "
        "perturbation) or auto (the fastest the model offers).",
        metavar="[" + "|".join(ENGINES) + "]",
    ),
    Option(
        "max_memory",
        number(0, above=True, example="512"),
        DEFAULT_MAX_MEMORY / 2**20,
        "MiB of scratch space the incremental engine may use.",
        metavar="MIB",
        shown_default=f"{DEFAULT_MAX_MEMORY // 2**20}",
    ),
)


MLP_OPTIONS: tuple[Option, ...] = (
    Option("layers", _sizes, None, "Layer sizes n0,n1,...,nL, e.g. 4,8,3.", metavar="n0,n1,...,nL", required=True),
    Option(
        "activation",
        optional(choice(list(ACTIVATIONS))),
        None,
        "Activation of every hidden layer (or give --activations, not both).",
        metavar="[" + "|".join(ACTIVATIONS) + "]",
        shown_default="tanh",
    ),
    Option(
        "activations",
        optional(names([*ACTIVATIONS, "softmax"])),
        None,
        "One activation per layer (hidden and output), e.g. relu,tanh,identity.",
        metavar="a1,...,aL",
        shown_default="from --activation and --loss",
    ),
    Option(
        "loss",
        choice(list(LOSSES)),
        "mse",
        "mse (identity output), bce (sigmoid output) or softmax-ce (softmax output, integer labels).",
        metavar="[" + "|".join(LOSSES) + "]",
    ),
    Option("bias", _boolean, True, "--no-bias is the seed's exact model.", negatable=True),
    Option("m", integer(1), 32, "Number of samples.", metavar="M"),
)


LINREG_OPTIONS: tuple[Option, ...] = (
    Option("m", integer(1), 100, "Number of samples.", metavar="M"),
    Option("n", integer(1), 3, "Number of features (the bias column is added).", metavar="N"),
    Option(
        "l2",
        number(0, example="0.1"),
        0.0,
        "Ridge strength: adds l2/(2m)*||theta[1:]||^2 (the bias is not penalised).",
        metavar="FLOAT>=0",
    ),
)


MODEL_OPTIONS: dict[str, tuple[Option, ...]] = {
    "mlp": MLP_OPTIONS,
    "linreg": LINREG_OPTIONS,
    "func": FUNC_OPTIONS,
    "expr": EXPR_OPTIONS,
}


# Options a check of each model takes besides its own: the engine only serves built-in models.
CHECK_OPTIONS: dict[str, tuple[Option, ...]] = {
    "mlp": SETTINGS_OPTIONS + ENGINE_OPTIONS + EXECUTION_OPTIONS,
    "linreg": SETTINGS_OPTIONS + EXECUTION_OPTIONS,  # linreg has the loop alone: no engine to choose or bound
    "func": SETTINGS_OPTIONS + EXECUTION_OPTIONS,
    "expr": SETTINGS_OPTIONS + EXECUTION_OPTIONS,
}


def options_for(model: str) -> dict[str, Option]:
    """Every option a check of ``model`` takes, by name."""
    return {o.name: o for o in CHECK_OPTIONS[model] + MODEL_OPTIONS[model]}
