"""Calling the user's code: every call to a function under test goes through here.

An exception the user's code raises becomes ``UserCodeError`` (its traceback kept
for the report); a ``sys.exit`` inside it is an input error, never our exit: a
check that "exits 0" having checked nothing would be a green CI step that lies.
``KeyboardInterrupt`` passes through (the user pressed Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import BadValueError, GradcheckError, UserCodeError


def call_user(where: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``; ``where`` names it in messages (``f.py:loss``)."""
    try:
        return function(*args, **kwargs)
    except GradcheckError:  # already ours, from a nested call (a numerical gradient's loss)
        raise
    except SystemExit as exc:
        raise BadValueError(
            f"{where} called sys.exit({exc.code!r}); the code under test must return a value, not exit"
        ) from None
    except Exception as exc:  # the user's code: report it, do not crash
        raise UserCodeError(where, exc) from exc
