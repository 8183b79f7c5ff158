"""Calling the user's code: every call to a function under test goes through here.

An exception the user's code raises becomes ``UserCodeError`` (its traceback kept
for the report); a ``sys.exit`` inside it is an input error, never our exit: a
check that "exits 0" having checked nothing would be a green CI step that lies.
``KeyboardInterrupt`` passes through (the user pressed Ctrl-C).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import BadValueError, GradcheckError, UserCodeError


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


def user_frames(exc: BaseException) -> list[str]:
    """The traceback lines of the user's own code in ``exc`` (and, for a SyntaxError,
    the line it points at): gradcheck's, numpy's and the import machinery's frames
    left out."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_ours(f.filename)]
    lines = traceback.format_list(frames)
    if isinstance(exc, SyntaxError):
        lines += traceback.format_exception_only(type(exc), exc)[:-1]
    return lines


_PACKAGE = Path(__file__).resolve().parents[1]  # the whole package, every floor


def _is_ours(filename: str) -> bool:
    if filename.startswith("<"):
        return True
    path = Path(filename).resolve()
    return path.is_relative_to(_PACKAGE) or "numpy" in path.parts or "importlib" in path.parts
