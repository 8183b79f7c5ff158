"""Calling the user's code: every call to a function under test goes through here.

An exception the user's code raises becomes ``UserCodeError`` (its traceback kept
for the report); a ``sys.exit`` inside it is an input error, never our exit: a
check that "exits 0" having checked nothing would be a green CI step that lies.
``KeyboardInterrupt`` passes through (the user pressed Ctrl-C).

Under a supervisor (``execution.supervisor``) every call is also recorded in an
``Activity``: memory the supervising process can read, so that when user code ends
the process, hangs or runs out of time, the supervisor can say which function was
running, with what moved, and for how long.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import BadValueError, GradcheckError, UserCodeError
from ..core.indexing import format_index

IMPORTING = "importing "  # how an import's ``where`` begins (``importing f.py``)


@dataclass(frozen=True)
class Snapshot:
    """What the user's code was doing when the supervisor looked."""

    where: str  # the function (``f.py:loss``), ``importing f.py``, or "" before any call
    context: str  # ``with W[0, 3] moved``, ``at the starting point``, ...
    running: bool  # inside a call of user code now
    seconds: float  # how long that call has run

    @property
    def importing(self) -> bool:
        return self.where.startswith(IMPORTING)


class Activity:
    """Which user function runs, on which move, since when: written by the checking
    process before each call (a few floats; the text only when it changes), read by
    the supervisor.  ``memory`` is a ``multiprocessing`` context to allocate from."""

    TEXT_BYTES = 2048

    def __init__(self, memory: Any) -> None:
        self._text = memory.Array("c", self.TEXT_BYTES, lock=False)
        self._numbers = memory.Array("d", 3, lock=False)  # running (0/1), began (monotonic), entry (-1: none)
        self._numbers[2] = -1.0
        self._where = ""
        self._batch: tuple[str, tuple[int, ...], str] | None = None

    def enter(self, where: str) -> None:
        if where != self._where:
            self._where = where
            self._write()
        self._numbers[1] = time.monotonic()
        self._numbers[0] = 1.0

    def leave(self) -> None:
        self._numbers[0] = 0.0

    def batch(self, batch: tuple[str, tuple[int, ...], str] | None) -> None:
        """The moves being evaluated: input name, shape, kind (None: none)."""
        self._batch = batch
        self._numbers[2] = -1.0
        self._write()

    def move(self, entry: int) -> None:
        self._numbers[2] = float(entry)

    def _write(self) -> None:
        payload = json.dumps([self._where, self._batch]).encode()
        self._text.value = payload if len(payload) < self.TEXT_BYTES else json.dumps([self._where[:500], None]).encode()

    def read(self) -> Snapshot:
        try:
            where, batch = json.loads(self._text.value.decode() or '["", null]')
        except ValueError:
            where, batch = "", None
        running, began, entry = float(self._numbers[0]), float(self._numbers[1]), int(self._numbers[2])
        return Snapshot(where, _context(where, batch, entry), running > 0, time.monotonic() - began if running else 0.0)


def _context(where: str, batch: list[Any] | None, entry: int) -> str:
    if where.startswith(IMPORTING):
        return "while being imported"
    if batch is None:
        return "outside the finite-difference moves (at the starting point, or the derivative under test)"
    shape = tuple(batch[1])
    # The text and the numbers are read one after the other while the checking process
    # runs on: a quick check can have moved to the next batch between the two reads.
    if entry >= math.prod(shape):
        entry = -1
    return move_context(batch[0], shape, batch[2], entry)


def move_context(name: str, shape: tuple[int, ...], kind: str, entry: int) -> str:
    """``with W[0, 3] moved``: where a move went, for messages.  ``kind`` is ``entry``
    (``entry`` the flat index moved, or -1 for several), ``direction`` or ``columns``."""
    if kind == "direction":
        return f"with {name} moved along a direction"
    if kind == "entry" and entry >= 0:
        return f"with {name}{format_index(shape, entry) if shape else ''} moved"
    return f"with {name} moved"


class _Recording:
    activity: Activity | None = None  # where this process records its calls (a supervised child)


def record_activity(activity: Activity | None) -> None:
    """Record every call of user code in this process in ``activity`` (None: stop)."""
    _Recording.activity = activity


def note_batch(batch: tuple[str, tuple[int, ...], str] | None) -> None:
    """The moves evaluated next (input, shape, kind), for the activity record."""
    if _Recording.activity is not None:
        _Recording.activity.batch(batch)


def note_move(entry: int) -> None:
    if _Recording.activity is not None:
        _Recording.activity.move(entry)


def call_user(where: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``; ``where`` names it in messages (``f.py:loss``)."""
    activity = _Recording.activity
    if activity is not None:
        activity.enter(where)
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
    finally:
        if activity is not None:
            activity.leave()


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
