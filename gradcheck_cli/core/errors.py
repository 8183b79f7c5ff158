"""The library's exceptions: every one derives from ``GradcheckError``.

A message is one line that says what is wrong and what would be right.  It speaks
of the library's parameters (``eps``, ``init``), never of a front end's spelling of
them (``--eps``, a config key): ``InputError.option`` names the parameter at fault,
and a remedy that names an option writes it with ``option_ref`` so that each front
end spells it its own way: ``str(error)`` as Python keywords (``max_seconds``,
``mode="sample"``, ``force=True``: also a suite's keys), ``command_line(error)`` as
flags (``--max-seconds``, ``--mode sample``, ``--force``).
"""

from __future__ import annotations

import re
from typing import Any

_REFERENCE = re.compile(r"\{option:([a-z_]+)(?:=([^}]*))?\}")


def option_ref(name: str, value: Any = None) -> str:
    """An option named in a message (``name``, or ``name`` set to ``value``)."""
    return "{option:" + name + ("" if value is None else f"={value!r}") + "}"


def python_spelling(text: str) -> str:
    """Options named in ``text`` as Python keywords: ``max_seconds``, ``mode='sample'``."""
    return _REFERENCE.sub(lambda m: m.group(1) + (f"={m.group(2)}" if m.group(2) is not None else ""), text)


def flag_spelling(text: str) -> str:
    """Options named in ``text`` as command-line flags: ``--max-seconds``, ``--mode sample``."""

    def flag(m: re.Match[str]) -> str:
        name, value = "--" + m.group(1).replace("_", "-"), m.group(2)
        if value is None or value == "True":
            return name
        return f"{name} {value.strip(chr(39))}"

    return _REFERENCE.sub(flag, text)


def command_line(error: BaseException) -> str:
    """The error's text with the options it names spelled as flags."""
    raw = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
    return flag_spelling(raw)


class GradcheckError(Exception):
    """Base of every error gradcheck raises."""

    def __str__(self) -> str:
        return python_spelling(super().__str__())


class InputError(GradcheckError, ValueError):
    """Options, parameters or gradients that cannot be checked.

    ``message`` is the text without the option's name; ``option`` names the
    setting at fault (``"eps"``, ``"init"``), or is None when none is.
    """

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(f"{option}: {message}" if option else message)
        self.raw = message  # with its option references, for another process to spell
        self.message = python_spelling(message)
        self.flag_message = flag_spelling(message)
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


class TimeLimitExceeded(InputError):
    """The check ran past its wall-clock limit and was stopped; ``report`` holds the
    rows that finished (None when none could be kept)."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


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
        self.kind = kind or type(original).__name__
        super().__init__(f"{where} raised {self.kind}: {original}")
        self.where = where
        self.original = original
        self.frames = frames
