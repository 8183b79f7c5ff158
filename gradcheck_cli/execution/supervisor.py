"""The supervisor: the process that owns the verdict runs no user code.

``supervised(work, ...)`` runs ``work`` (a check, a suite's check, a sweep: anything
that calls user code) in a child process and returns what it returns.  The child
sends its messages (progress, the result, an error) through a pipe; this process
keeps the terminal, the exit code and the files.  Whatever the user's code does in
the child, this process can tell:

- it ends the child (``os._exit``, a segfault, the OOM killer, a signal): the
  child's ``Activity`` names the function that was running and what was moved;
- it hangs: a call that runs past ``timeout`` (importing has an allowance of its
  own) is stopped and named;
- the whole work runs past ``max_seconds``: the child is interrupted (it answers
  with the rows it finished) and then stopped;
- it forks: the fork's copy of the check sends nothing (only the child itself may);
- it prints, or leaves a thread running: the child's standard output is this
  process's standard error, and the child ends with ``os._exit`` once it has answered.

The child runs in a process group of its own, so that stopping it stops its worker
processes too; Ctrl-C reaches it through this process.

Notes
-----
Why fork.  The child must start from this process's state (the parsed command, the
loaded option tables) at the cost of a page-table copy, not of a fresh interpreter
importing numpy again.  Where ``fork`` is not available the work runs in this
process, as before the supervisor existed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..core.errors import (
    BadValueError,
    CheckInterrupted,
    ConfigError,
    GradcheckError,
    InputError,
    SpecError,
    TimeLimitExceeded,
    UserCodeError,
    option_ref,
)
from .usercode import Activity, Snapshot, record_activity, user_frames

T = TypeVar("T")

POLL_SECONDS = 0.05
GRACE_SECONDS = 3.0  # how long an interrupted child has to send the rows it finished
LOAD_SECONDS = 30.0  # importing the code under test: its own allowance (at least the timeout)

Message = tuple[Any, ...]


@dataclass(frozen=True)
class Limits:
    """How long user code may run: one call (``timeout``, None: no limit) and the whole
    work (``max_seconds``, None: no wall)."""

    timeout: float | None = None
    max_seconds: float | None = None


class Channel:
    """The child's end: messages to the supervisor (only from the child itself, never
    from a process the user's code forked off it)."""

    def __init__(self, send: Callable[[Message], None], pid: int | None) -> None:
        self._send, self._pid = send, pid

    def send(self, *message: Any) -> None:
        if self._pid is not None and os.getpid() != self._pid:
            os._exit(0)  # a fork of the check made by user code: it has nothing to say
        self._send(message)


class RemoteProgress:
    """A progress sink in the child: every call goes to the supervisor's real one."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def start(self, name: str, total: int, position: tuple[int, int]) -> None:
        self._channel.send("progress", "start", name, total, position)

    def advance(self, count: int) -> None:
        self._channel.send("progress", "advance", count)

    def plan(self, text: str) -> None:
        self._channel.send("progress", "plan", text)

    def stop(self) -> None:
        self._channel.send("progress", "stop")


def forward_progress(sink: Any) -> Callable[[Message], None]:
    """``on_message`` for ``supervised``: progress messages to ``sink`` (None: dropped)."""

    def on_message(message: Message) -> None:
        if message[0] == "stderr":
            sys.stderr.write(message[1])
            sys.stderr.flush()
        elif sink is not None and message[0] == "progress":
            getattr(sink, message[1])(*message[2:])

    return on_message


class _Forwarded:
    """The child's ``sys.stdout`` and ``sys.stderr``: text goes to the supervisor, which
    writes it to its standard error (never to the standard output the report owns)."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def write(self, text: str) -> int:
        if text:
            self._channel.send("stderr", str(text))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 2


def can_supervise() -> bool:
    """Fork is there, and safe: a process with other threads running (a test runner
    that started a Dask cluster, an application embedding the command) could fork
    while one of them holds a lock the child then waits on forever."""
    return (
        "fork" in multiprocessing.get_all_start_methods() and hasattr(os, "setpgid") and threading.active_count() == 1
    )


def supervised(work: Callable[[Channel], T], on_message: Callable[[Message], None], limits: Limits = Limits()) -> T:
    """``work(channel)`` in a child process; its messages go to ``on_message`` here."""
    if not can_supervise():
        return work(Channel(on_message, None))
    context = multiprocessing.get_context("fork")
    activity = Activity(context)
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(work, send, activity), daemon=False)
    child.start()
    send.close()
    try:
        result: T = _listen(child, receive, activity, on_message, limits)
        return result
    finally:
        _stop(child)
        receive.close()


def _child(work: Callable[[Channel], Any], send: multiprocessing.connection.Connection, activity: Activity) -> None:
    os.setpgid(0, 0)  # a group of its own: stopping it stops its workers too
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.suppress(OSError):
        os.dup2(2, 1)  # what C code writes to standard output goes to standard error
    record_activity(activity)
    channel = Channel(send.send, os.getpid())
    sys.stdout = sys.stderr = _Forwarded(channel)  # the user's prints, to the supervisor's stderr
    try:
        channel.send("result", work(channel))
    except CheckInterrupted as exc:
        channel.send("interrupted", exc.report)
    except KeyboardInterrupt:
        channel.send("keyboard")
    except GradcheckError as exc:
        channel.send("error", encode_error(exc))
    except BaseException as exc:  # a bug of ours: its traceback, for the report we ask for
        channel.send("bug", f"{type(exc).__name__}: {exc}", traceback.format_exc())
    finally:
        try:
            send.close()
        finally:
            os._exit(0)  # threads the user's code left running cannot hold the exit


def _listen(
    child: Any,
    receive: multiprocessing.connection.Connection,
    activity: Activity,
    on_message: Callable[[Message], None],
    limits: Limits,
) -> Any:
    began = time.monotonic()
    while True:
        try:
            ready = multiprocessing.connection.wait([receive, child.sentinel], timeout=POLL_SECONDS)
            if receive in ready:
                try:
                    message = receive.recv()
                except (EOFError, OSError):  # the child is gone without an answer
                    child.join(1)
                    raise _ended(child.exitcode, activity.read()) from None
                if message[0] in ("progress", "stderr"):
                    on_message(message)
                    continue
                break
            if child.sentinel in ready and not receive.poll():
                child.join(1)
                raise _ended(child.exitcode, activity.read())
            _watch(child, receive, activity, limits, began)
        except KeyboardInterrupt:
            _interrupt(child, receive)
    return _answer(message)  # outside the loop: a CheckInterrupted raised here is the child's


def _answer(message: Message) -> Any:
    kind = message[0]
    if kind == "result":
        return message[1]
    if kind == "interrupted":
        raise CheckInterrupted(message[1])
    if kind == "keyboard":
        raise KeyboardInterrupt
    if kind == "error":
        raise decode_error(message[1])
    raise InputError(f"internal error in gradcheck ({message[1]}); please report it with the command that gave it")


def _watch(child: Any, receive: Any, activity: Activity, limits: Limits, began: float) -> None:
    """Stop the child when a call of user code, or the whole work, runs too long."""
    now = activity.read()
    if limits.timeout is not None and now.running:
        allowance = max(LOAD_SECONDS, limits.timeout) if now.importing else limits.timeout
        if now.seconds > allowance:
            _stop(child)
            if now.importing:
                raise BadValueError(
                    f"{now.where.removeprefix('importing ')} was still being imported after {allowance:g} s (the "
                    f"allowance for loading the code under test), and was stopped; make importing it quicker"
                )
            raise BadValueError(
                f"{now.where} did not return within the timeout of {limits.timeout:g} s {now.context}, and was "
                f"stopped; make it return, or give a larger timeout"
            )
    if limits.max_seconds is not None and time.monotonic() - began > limits.max_seconds:
        running = f"; {now.where} was running {now.context}" if now.running else ""
        if now.importing:
            running = f"; {now.where.removeprefix('importing ')} was still being imported"
        report = _rows_so_far(child, receive)
        raise TimeLimitExceeded(
            f"the check ran past {option_ref('max_seconds')} ({limits.max_seconds:g} s) and was stopped{running}; "
            f"the rows that finished are kept; raise {option_ref('max_seconds')}, or check a part",
            report,
        )


def _rows_so_far(child: Any, receive: Any) -> Any:
    """Interrupt the child and take the report of what it finished (None if it cannot say).
    The child alone: it stops its workers itself (a Dask worker interrupted prints a traceback)."""
    with contextlib.suppress(OSError):
        os.kill(child.pid, signal.SIGINT)
    if receive.poll(GRACE_SECONDS):
        try:
            message = receive.recv()
        except (EOFError, OSError):
            return None
        if message[0] in ("interrupted", "result"):
            return message[1]
    return None


def _interrupt(child: Any, receive: Any) -> None:
    """Ctrl-C here: the child is interrupted and answers with what it finished."""
    report = _rows_so_far(child, receive)
    if report is not None:
        raise CheckInterrupted(report)
    raise KeyboardInterrupt


def _ended(exitcode: int | None, now: Snapshot) -> BadValueError:
    if exitcode is not None and exitcode < 0:
        try:
            cause = f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            cause = f"signal {-exitcode}"
    else:
        cause = f"exit code {exitcode}"
    if now.where and (now.running or now.importing):
        where = now.where.removeprefix("importing ") if now.importing else now.where
        return BadValueError(
            f"{where} ended the check's process ({cause}) {now.context}; the code under test must return a value, "
            f"not exit or crash"
        )
    return BadValueError(
        f"the check's process ended ({cause}) while no code under test was running (out of memory, or killed "
        f"from outside); nothing was checked"
    )


def _signal(child: Any, signum: int) -> None:
    with contextlib.suppress(OSError):  # gone already
        os.killpg(child.pid, signum)


def _stop(child: Any) -> None:
    """End the child and every process in its group (the workers it may have left)."""
    _signal(child, signal.SIGKILL)
    child.join(5)


# ---- errors across processes -----------------------------------------------------------------

_INPUT_KINDS: dict[str, type[InputError]] = {
    "InputError": InputError,
    "BadValueError": BadValueError,
    "ConfigError": ConfigError,
}


def encode_error(exc: BaseException) -> tuple[Any, ...]:
    """An error raised in another process, as plain data (exceptions and tracebacks do
    not always pickle)."""
    if isinstance(exc, UserCodeError):
        original = exc.original
        return ("user", exc.where, exc.kind, str(original), exc.frames or user_frames(original))
    if isinstance(exc, SpecError):
        return ("spec", exc.field, exc.raw)
    if isinstance(exc, InputError):
        return ("input", type(exc).__name__, exc.raw, exc.option)
    return ("other", type(exc).__name__, str(exc))


def decode_error(
    data: tuple[Any, ...], where: str = "the code under test", place: str = "another process"
) -> GradcheckError:
    if data[0] == "user":
        _, at, kind, text, frames = data
        return UserCodeError(at, Exception(text), kind=kind, frames=frames)
    if data[0] == "spec":
        return SpecError(data[1], data[2])
    if data[0] == "input":
        _, kind, message, option = data
        return _INPUT_KINDS.get(kind, InputError)(message, option=option)
    _, kind, text = data
    return BadValueError(f"{where} could not be evaluated in {place} ({kind}: {text})")
