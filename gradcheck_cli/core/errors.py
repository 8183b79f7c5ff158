"""The library's exceptions: every one derives from ``GradcheckError``.

A message is one line that says what is wrong and what would be right.  It speaks
of the library's parameters (``eps``, ``init``), never of a front end's spelling of
them (``--eps``, a config key): ``InputError.option`` names the parameter so that
the command line and config suites can say it their own way.
"""

from __future__ import annotations

from typing import Any


class GradcheckError(Exception):
    """Base of every error gradcheck raises."""


class InputError(GradcheckError, ValueError):
    """Options, parameters or gradients that cannot be checked.

    ``message`` is the text without the option's name; ``option`` names the
    setting at fault (``"eps"``, ``"init"``), or is None when none is.
    """

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(f"{option}: {message}" if option else message)
        self.message = message
        self.option = option


class SpecError(InputError):
    """A model specification that cannot be built (``option`` is the field at fault)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, option=field)
        self.field = field


class ConfigError(InputError):
    """A suite that cannot be run; the message starts with ``file:line:``."""


class BadValueError(InputError):
    """The function under test returned something unusable (not a scalar, NaN, inf)."""


class CheckInterrupted(KeyboardInterrupt):
    """Ctrl-C during a check: still an interrupt (it stops a test run as any Ctrl-C
    does), carrying the ``Report`` of the parameters finished before it."""

    def __init__(self, report: Any) -> None:
        super().__init__("interrupted")
        self.report = report


class UserCodeError(GradcheckError):
    """The function under test raised; carries the original exception.

    Raised in a worker process, it arrives as text: ``kind`` (the exception's type
    name) and ``frames`` (the user's own traceback lines) stand for what could not
    travel."""

    def __init__(
        self, where: str, original: BaseException, *, kind: str | None = None, frames: list[str] | None = None
    ) -> None:
        super().__init__(f"{where} raised {kind or type(original).__name__}: {original}")
        self.where = where
        self.original = original
        self.frames = frames
