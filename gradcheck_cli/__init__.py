"""gradcheck: check hand-derived gradients against finite differences."""

from ._version import __version__
from .check import check_gradients, check_model
from .errors import BadValueError, ConfigError, GradcheckError, InputError, SpecError, UserCodeError
from .options import Settings
from .result import ParameterResult, Report
from .testing import assert_gradients

__all__ = [
    "BadValueError",
    "ConfigError",
    "GradcheckError",
    "InputError",
    "ParameterResult",
    "Report",
    "Settings",
    "SpecError",
    "UserCodeError",
    "__version__",
    "assert_gradients",
    "check_gradients",
    "check_model",
]
