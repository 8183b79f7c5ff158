"""gradcheck: check hand-derived gradients against finite differences."""

__version__ = "0.1.0"

from .check import InputError, ParameterResult, Report, Settings, check_gradients, check_model  # noqa: E402

__all__ = ["__version__", "check_gradients", "check_model", "Report", "ParameterResult", "Settings", "InputError"]
