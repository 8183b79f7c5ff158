"""gradcheck: check hand-derived gradients against finite differences."""

from ._version import __version__
from .check import check_gradients, check_model
from .derivatives import check_hessian, check_jacobian, check_jvp, check_vjp
from .errors import BadValueError, ConfigError, GradcheckError, InputError, SpecError, UserCodeError
from .options import Settings
from .result import ParameterResult, Report
from .testing import assert_gradients, assert_hessian, assert_jacobian, assert_jvp, assert_vjp

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
    "assert_hessian",
    "assert_jacobian",
    "assert_jvp",
    "assert_vjp",
    "check_gradients",
    "check_hessian",
    "check_jacobian",
    "check_jvp",
    "check_model",
    "check_vjp",
]
