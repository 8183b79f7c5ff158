"""gradcheck: check hand-derived gradients against finite differences."""

from ._version import __version__
from .checks.derivatives import check_hessian, check_jacobian, check_jvp, check_vjp
from .checks.expression import check_expression
from .checks.gradient import check_gradients, check_model
from .checks.testing import assert_gradients, assert_hessian, assert_jacobian, assert_jvp, assert_vjp
from .core.errors import (
    BadValueError,
    ConfigError,
    GradcheckError,
    InputError,
    SpecError,
    TimeLimitExceeded,
    UserCodeError,
)
from .core.options import Settings
from .core.result import ParameterResult, Report

__all__ = [
    "BadValueError",
    "ConfigError",
    "GradcheckError",
    "InputError",
    "ParameterResult",
    "Report",
    "Settings",
    "SpecError",
    "TimeLimitExceeded",
    "UserCodeError",
    "__version__",
    "assert_gradients",
    "assert_hessian",
    "assert_jacobian",
    "assert_jvp",
    "assert_vjp",
    "check_expression",
    "check_gradients",
    "check_hessian",
    "check_jacobian",
    "check_jvp",
    "check_model",
    "check_vjp",
]
