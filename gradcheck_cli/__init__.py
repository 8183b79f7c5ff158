"""gradcheck: check hand-derived gradients against finite differences."""

__version__ = "0.1.0"

from .check import (  # noqa: E402
    InputError, ParameterResult, Report, Settings, assert_gradients, check_gradients, check_model,
)

__all__ = [
    "__version__", "check_gradients", "assert_gradients", "check_model", "Report", "ParameterResult", "Settings",
    "InputError",
]
