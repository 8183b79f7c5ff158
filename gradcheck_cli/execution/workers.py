"""Where the function under test runs: this process, local worker processes, or Dask.

A ``Runner`` takes a batch of moves (``evaluation.Moves``), cuts it into chunks,
runs the chunks (``InProcess`` one after another; ``LocalWorkers`` in N spawned
processes; ``DaskWorkers`` as tasks on a cluster) and puts the results back in
the batch's order, so the numbers are those of the serial run bit for bit.  It
numbers every move of the check in order, which lets a ``Checkpoint`` record
finished chunks and answer them again after an interruption.  The choice of
runner is made once, by ``open_runner``.

Notes
-----
Why our own small pool.  ``concurrent.futures`` cannot end a worker stuck in an
evaluation that never returns; here each worker writes the move it is on and
when it began into shared memory, so the parent can end exactly the stuck
process after ``timeout`` seconds and name the entry, tell a worker that died
(``os._exit`` in user code) from one that raised, and stop everything at Ctrl-C
within a fraction of a second.

Why chunks of that size.  A chunk costs one message each way (about 0.1 ms
locally, a few ms through a Dask scheduler).  Chunks are sized from the measured
time of one evaluation so that each takes about ``CHUNK_SECONDS``: overhead stays
below a few per cent, and a batch still splits into several chunks per worker
so that none waits idle at the end.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import hashlib
import importlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.errors import BadValueError, GradcheckError, InputError, option_ref
from .checkpoint import Checkpoint
from .evaluation import Job, JobState, Moves, evaluate_moves
from .supervisor import LOAD_SECONDS, decode_error, encode_error

Array = npt.NDArray[Any]
Result = dict[str, Array]
Chunk = tuple[int, int]  # moves start .. stop of a batch

# Seconds of work per chunk: locally, and through a Dask scheduler (a few ms per task).
CHUNK_SECONDS = {"local": 0.05, "dask": 0.5, "serial": 0.25}
CHUNKS_PER_WORKER = {"local": 4, "dask": 2, "serial": 1}  # per batch, when the batch is large enough
IN_FLIGHT = 2  # chunks sent to a local worker ahead: the next one waits in its pipe
POLL_SECONDS = 0.05  # how often the parent looks at timeouts (and notices Ctrl-C)
# A worker's phases before it evaluates: starting (its interpreter and our library
# import) and loading a job (unpickling it imports the user's module).  Neither is
# an evaluation, so --timeout starts after them; each has an allowance of its own.
BOOTING, LOADING = -3.0, -1.0
BOOT_SECONDS = 60.0
DASK_RETRIES = 3
DASK_SETTLE_SECONDS = 5.0  # restarting workers of our own cluster, before it closes
DASK_TASKS_PER_SECOND = 400  # a scheduler's pace, measured (benchmarks/bench_workers.py) and rounded down

INSTALL_DASK = "pip install 'gradcheck-cli[dask]'"


class Runner(abc.ABC):
    """Runs batches of moves in chunks and records them; subclasses say where."""

    kind = "serial"
    workers = 1

    def __init__(self, checkpoint: Checkpoint | None = None, timeout: float | None = None) -> None:
        self.checkpoint = checkpoint
        self.timeout = timeout
        self.seconds: float | None = None  # measured time of one evaluation
        self._next = 0  # number of the next move in the check's sequence

    # -- timing ---------------------------------------------------------------------------------

    def observe(self, seconds: float, count: int = 1) -> None:
        """Learn the time of one evaluation from ``count`` evaluations taking ``seconds``."""
        if count <= 0:
            return
        each = max(seconds / count, 1e-7)
        self.seconds = each if self.seconds is None else 0.5 * (self.seconds + each)

    def estimate(self, evaluations: int) -> float:
        """Seconds ``evaluations`` evaluations should take here."""
        each = self.seconds or 0.0
        return evaluations * each / self.workers

    def resumed(self) -> str | None:
        """What a check says of its checkpoint once it has run: how many evaluations
        were replayed from it (None when none were: a fresh run)."""
        if self.checkpoint is None or not self.checkpoint.replayed:
            return None
        total = self._next
        return (
            f"resumed: {self.checkpoint.replayed:,} of {total:,} evaluations replayed from {self.checkpoint.path} "
            f"(a checkpoint binds to the check and its source files; it is trusted, not authenticated)"
        )

    def forecast(self, evaluations: int) -> Forecast:
        """The time guard's view of ``evaluations`` evaluations here."""
        each = (self.seconds or 0.0) * 1000
        basis = f"{evaluations:,} evaluations of {each:.3g} ms each"
        return Forecast(self.estimate(evaluations), self.describe(), basis)

    # -- running --------------------------------------------------------------------------------

    def run(self, job: Job, moves: Moves, progress: Callable[[int], None] | None = None) -> Result:
        """The results of ``moves``, in their order."""
        start, count = self._next, len(moves)
        self._next += count
        pieces, todo = self._replay(job, start, moves, progress)
        chunks = [c for a, b in todo for c in self._cut(a, b, count)]
        for (a, b), result, seconds in self._execute(job, moves, chunks):
            self.observe(seconds, b - a)
            if self.checkpoint is not None:
                self.checkpoint.record(start + a, b - a, moves.part(a, b).digest(), result)
            pieces.append((a, result))
            if progress is not None:
                progress(b - a)
        pieces.sort(key=lambda p: p[0])
        if len(pieces) == 1:
            return pieces[0][1]
        if not pieces:
            return job.reader.allocate(0, moves.imaginary) | {"crossed": np.zeros(0, dtype=np.int64)}
        return {k: np.concatenate([p[1][k] for p in pieces]) for k in pieces[0][1]}

    def _replay(
        self, job: Job, start: int, moves: Moves, progress: Callable[[int], None] | None
    ) -> tuple[list[tuple[int, Result]], list[Chunk]]:
        """What the checkpoint holds of these moves (``start`` is the first one's number
        in the check), and the ranges still to evaluate."""
        pieces: list[tuple[int, Result]] = []
        todo: list[Chunk] = []
        cursor = 0
        if self.checkpoint is not None:
            for a, b, digest, result in self.checkpoint.covering(start, len(moves)):
                if a < cursor:
                    continue  # overlaps a record already taken
                if digest != moves.part(a, b).digest():
                    raise self.checkpoint.mismatch(start + a)
                expected = job.reader.allocate(b - a, moves.imaginary)
                self.checkpoint.validate(start + a, result, expected | {"crossed": np.zeros(b - a, dtype=np.int64)})
                if a > cursor:
                    todo.append((cursor, a))
                pieces.append((a, result))
                cursor = b
                self.checkpoint.replayed += b - a
                if progress is not None:
                    progress(b - a)
        if cursor < len(moves):
            todo.append((cursor, len(moves)))
        return pieces, todo

    def _cut(self, a: int, b: int, batch: int) -> list[Chunk]:
        target = CHUNK_SECONDS[self.kind]
        if self.kind == "dask":
            # Keep the scheduler under a quarter busy however many workers it feeds.
            target = max(target, 4 * self.workers / DASK_TASKS_PER_SECOND)
        size = max(1, round(target / self.seconds)) if self.seconds else 1
        if self.workers > 1:
            size = min(size, max(1, math.ceil(batch / (CHUNKS_PER_WORKER[self.kind] * self.workers))))
            # Whole rounds: as many chunks for every worker, so none runs a last one alone.
            rounds = math.ceil((b - a) / (size * self.workers))
            size = max(1, math.ceil((b - a) / (rounds * self.workers)))
        return [(s, min(s + size, b)) for s in range(a, b, size)]

    @abc.abstractmethod
    def _execute(self, job: Job, moves: Moves, chunks: list[Chunk]) -> Iterator[tuple[Chunk, Result, float]]:
        """Run ``chunks`` of ``moves``; yield each one's ``(chunk, result, seconds)`` as it finishes."""

    def describe(self) -> str:
        return "1 process"

    def close(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcess(Runner):
    """Every evaluation in this process, one after another."""

    def __init__(self, checkpoint: Checkpoint | None = None) -> None:
        super().__init__(checkpoint)
        self._states: dict[Job, JobState] = {}

    def state(self, job: Job) -> JobState:
        if job not in self._states:
            self._states[job] = JobState(job)
        return self._states[job]

    def _execute(self, job: Job, moves: Moves, chunks: list[Chunk]) -> Iterator[tuple[Chunk, Result, float]]:
        state = self.state(job)
        for a, b in chunks:
            began = time.perf_counter()
            result = evaluate_moves(state, moves.part(a, b))
            yield (a, b), result, time.perf_counter() - began


# ---- errors across processes -----------------------------------------------------------------


def _pickled(job: Job) -> bytes:
    try:
        return pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise InputError(
            f"{job.where} cannot be sent to worker processes ({type(exc).__name__}: {exc}); define it at a "
            f"module's top level (not a lambda or a nested function), or use one worker",
            option="workers",
        ) from None


def _blob(cache: dict[Job, tuple[str, bytes]], job: Job) -> tuple[str, bytes]:
    """The job pickled once, and a token naming it: workers keep its state under the
    token.  (Keyed by the job itself, which the cache keeps alive: an ``id`` could be
    reused by the next job once this one is gone.)"""
    if job not in cache:
        blob = _pickled(job)
        cache[job] = (hashlib.blake2b(blob, digest_size=16).hexdigest(), blob)
    return cache[job]


# ---- local worker processes ------------------------------------------------------------------


def _serve(conn: multiprocessing.connection.Connection, status: Any) -> None:
    """A worker process: evaluate the chunks it is sent, in order, until told to stop.
    ``status`` holds the move of the current chunk it is on (``LOADING`` before the
    first, ``BOOTING`` until this process is ready) and when that move (or phase) began."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    sys.stdout = sys.stderr  # the user's prints must not reach our stdout (JSON, tables)
    states: dict[str, JobState] = {}
    me = os.getpid()

    def reply(message: tuple[Any, ...]) -> None:
        _alone(me)
        conn.send(message)

    status[0], status[1] = LOADING, time.monotonic()  # ready: no job loaded yet

    def tick(k: int) -> None:
        status[0], status[1] = k, time.monotonic()

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        _, token, blob, moves = message
        began = time.perf_counter()
        status[0], status[1] = LOADING, time.monotonic()  # this chunk begun, no move yet
        try:
            if token not in states:
                states[token] = JobState(pickle.loads(blob))
            result = evaluate_moves(states[token], moves, tick)
            reply(("done", result, time.perf_counter() - began))
        except BaseException as exc:  # anything the user's code does is reported, not fatal
            reply(("error", max(0, int(status[0])), encode_error(exc)))


def _alone(pid: int) -> None:
    """End a copy of a worker that the user's code forked off it (it would answer, and
    take chunks, in the worker's place); the worker itself goes on."""
    if os.getpid() != pid:
        os._exit(0)


class _Worker:
    """One worker process, and the chunks sent to it that have not come back (the
    first is the one it is on; the next waits in its pipe, so it never idles
    between chunks)."""

    def __init__(self, context: Any) -> None:
        self.conn, child = context.Pipe()
        self.status = context.Array("d", [BOOTING, time.monotonic()], lock=False)
        self.process = context.Process(target=_serve, args=(child, self.status), daemon=True)
        self.process.start()
        child.close()
        self.jobs: set[str] = set()
        self.chunks: collections.deque[tuple[int, Chunk]] = collections.deque()  # (number, moves)
        self.since = 0.0  # when the first chunk became the one it is on


class LocalWorkers(Runner):
    """N worker processes on this machine (spawned: nothing of this process leaks in)."""

    kind = "local"

    def __init__(self, workers: int, checkpoint: Checkpoint | None = None, timeout: float | None = None) -> None:
        super().__init__(checkpoint, timeout)
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._pool: list[_Worker] = []
        self._blobs: dict[Job, tuple[str, bytes]] = {}

    def describe(self) -> str:
        return f"{self.workers} worker process{'es' if self.workers > 1 else ''}"

    def start(self) -> None:
        """Start the processes (they boot while this process does its own work)."""
        while len(self._pool) < self.workers:
            self._pool.append(_Worker(self._context))

    def _blob(self, job: Job) -> tuple[str, bytes]:
        return _blob(self._blobs, job)

    def _execute(self, job: Job, moves: Moves, chunks: list[Chunk]) -> Iterator[tuple[Chunk, Result, float]]:
        token, blob = self._blob(job)
        self.start()
        waiting = list(enumerate(chunks))[::-1]  # next chunk last
        # The first error in the moves' order wins, as in a serial run: once one is
        # known, only the chunks before it still matter.
        failed: tuple[int, int, GradcheckError] | None = None  # (chunk number, move, error)
        try:
            while True:
                cutoff = len(chunks) if failed is None else failed[0]
                for worker in self._pool:
                    while len(worker.chunks) < IN_FLIGHT and waiting and waiting[-1][0] < cutoff:
                        i, (a, b) = waiting.pop()
                        worker.conn.send(("run", token, None if token in worker.jobs else blob, moves.part(a, b)))
                        worker.jobs.add(token)
                        if not worker.chunks:
                            worker.since = time.monotonic()
                        worker.chunks.append((i, (a, b)))
                busy = [w for w in self._pool if w.chunks and w.chunks[0][0] < cutoff]
                if not busy:
                    if failed is not None:
                        raise failed[2]
                    return
                ready = multiprocessing.connection.wait(
                    [w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=POLL_SECONDS
                )
                for worker in busy:
                    i, (a, b) = worker.chunks[0]
                    if worker.conn in ready:
                        try:
                            message = worker.conn.recv()
                        except (EOFError, OSError):
                            message = None
                        if message is not None:
                            worker.chunks.popleft()
                            worker.since = time.monotonic()
                            if message[0] == "done":
                                yield (a, b), message[1], message[2]
                            elif failed is None or (i, message[1]) < failed[:2]:
                                failed = (i, message[1], decode_error(message[2], job.where, "a worker"))
                            continue
                    stuck = self._died(worker, job, moves, a)
                    if stuck is None and self.timeout is not None:
                        stuck = self._timed_out(worker, job, moves, a)
                    if stuck is not None:
                        # Treated as an error at that move: an earlier move may still fail first.
                        k = max(0, int(worker.status[0]))
                        waiting += list(worker.chunks)[1:]  # sent but not begun: another worker runs them
                        waiting.sort(reverse=True)
                        self._replace(worker)
                        if failed is None or (i, k) < failed[:2]:
                            failed = (i, k, stuck)
        except BaseException:
            self.close_pool()
            raise

    def _died(self, worker: _Worker, job: Job, moves: Moves, a: int) -> BadValueError | None:
        if worker.process.is_alive():
            return None
        worker.process.join(1)
        k = int(worker.status[0])
        where = moves.context(a + k, job.params[moves.name].shape) if k >= 0 else "while being loaded"
        return BadValueError(
            f"{job.where} ended its worker process (exit code {worker.process.exitcode}) {where}; "
            f"the code under test must return a value, not exit or crash"
        )

    def _timed_out(self, worker: _Worker, job: Job, moves: Moves, a: int) -> BadValueError | None:
        assert self.timeout is not None
        phase, began = float(worker.status[0]), float(worker.status[1])
        now = time.monotonic()
        if phase == BOOTING:  # the process itself is starting: not the user's code yet
            if now - began <= BOOT_SECONDS:
                return None
            return BadValueError(f"a worker process did not start within {BOOT_SECONDS:g} s; the machine is overloaded")
        if phase == LOADING:  # importing the code under test has its own allowance
            allowance = max(LOAD_SECONDS, self.timeout)
            if now - max(began, worker.since) <= allowance:
                return None
            return BadValueError(
                f"{job.where} was still being imported after {allowance:g} s (the allowance for loading the "
                f"code under test), and was stopped; make importing it quicker"
            )
        if now - max(began, worker.since) <= self.timeout:
            return None
        where = moves.context(a + int(phase), job.params[moves.name].shape)
        return BadValueError(
            f"{job.where} did not return within the timeout of {self.timeout:g} s {where}, and was stopped; "
            f"make it return, or give a larger timeout"
        )

    def _replace(self, worker: _Worker) -> None:
        """End ``worker`` (stuck, or dead) and start a fresh one in its place."""
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(1)
        worker.conn.close()
        self._pool[self._pool.index(worker)] = _Worker(self._context)

    def close_pool(self) -> None:
        for worker in self._pool:
            if worker.process.is_alive():
                worker.process.kill()
        for worker in self._pool:
            worker.process.join(1)
            worker.conn.close()
        self._pool = []

    def close(self) -> None:
        for worker in self._pool:
            if not worker.chunks and worker.process.is_alive():
                with contextlib.suppress(OSError):
                    worker.conn.send(("stop",))
        deadline = time.monotonic() + 1.0
        for worker in self._pool:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        self.close_pool()
        super().close()


# ---- Dask ------------------------------------------------------------------------------------


def _import_distributed() -> Any:
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise InputError(
            f"running on Dask needs dask.distributed, which is not installed; install it with {INSTALL_DASK}",
            option="dask",
        ) from None


_dask_states: dict[str, JobState] = {}

# A cluster of our own keeps its log to itself: a worker that the user's code ended
# is the check's error, said in one line, not the cluster's warnings and tracebacks.
# Workers (restarted ones too) read the level when they start, from the environment.
_QUIET_WORKERS = {"distributed.nanny.pre-spawn-environ": {"DASK_LOGGING__DISTRIBUTED": "critical"}}


def _local_cluster(distributed: Any, workers: int) -> Any:
    """``local:N``: N single-threaded worker processes on this machine, quiet."""
    dask = importlib.import_module("dask")
    with dask.config.set(_QUIET_WORKERS):
        return distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        )


def _ready() -> None:
    """Nothing: sent to each Dask worker first, so that unpickling it imports gradcheck."""


def run_dask_chunk(token: str, blob: bytes, moves: Moves) -> tuple[Any, ...]:
    """A chunk as a Dask task: the job's state is kept per worker thread, and the
    user's errors come back as data (a task that raises would be retried)."""
    key = token
    began = time.perf_counter()
    me = os.getpid()
    try:
        if key not in _dask_states:
            _dask_states[key] = JobState(pickle.loads(blob))
        result = evaluate_moves(_dask_states[key], moves)
        _alone(me)
        return ("done", result, time.perf_counter() - began)
    except Exception as exc:
        _alone(me)
        return ("error", 0, encode_error(exc), traceback.format_exc(limit=1))


class DaskWorkers(Runner):
    """Chunks as tasks on a Dask cluster: ``ADDRESS`` of a running scheduler,
    ``local:N`` (a ``LocalCluster`` of N single-threaded worker processes), or a
    ``distributed.Client``.  A task on a worker that dies is run again elsewhere
    (``retries``); finished chunks are kept as they arrive."""

    kind = "dask"

    def __init__(self, target: Any, checkpoint: Checkpoint | None = None, uploads: tuple[str, ...] = ()) -> None:
        super().__init__(checkpoint)
        distributed = _import_distributed()
        self._distributed = distributed
        self._cluster = None
        self._own_client = False
        if isinstance(target, distributed.Client):
            self.client = target
        else:
            text = str(target)
            try:
                if text.startswith("local:"):
                    self._cluster = _local_cluster(distributed, int(text.removeprefix("local:")))
                    self.client = distributed.Client(self._cluster)
                else:
                    self.client = distributed.Client(text, timeout=10)
            except (OSError, ValueError) as exc:
                raise InputError(
                    f"cannot reach the Dask scheduler at {text} ({exc}); start it (dask scheduler) or give local:N",
                    option="dask",
                ) from None
            self._own_client = True
        self.workers = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))
        # The workers import gradcheck (a few tenths of a second) while this process
        # evaluates the starting point, rather than when the first chunks arrive.
        for address in self.client.scheduler_info()["workers"]:
            distributed.fire_and_forget(self.client.submit(_ready, workers=[address], pure=False))
        if self._cluster is None:  # a cluster of our own shares this machine's files
            for path in uploads:
                self.client.upload_file(path)
        self._blobs: dict[Job, tuple[str, bytes]] = {}

    def describe(self) -> str:
        return f"{self.workers} Dask worker{'s' if self.workers > 1 else ''}"

    def _execute(self, job: Job, moves: Moves, chunks: list[Chunk]) -> Iterator[tuple[Chunk, Result, float]]:
        # The job travels with every task: data scattered once would be lost for good
        # if every worker holding it died, and the tasks with it.
        token, blob = _blob(self._blobs, job)
        futures = {}
        for i, (a, b) in enumerate(chunks):
            part = moves.part(a, b)
            future = self.client.submit(run_dask_chunk, token, blob, part, pure=False, retries=DASK_RETRIES)
            futures[future] = i
        failed: tuple[int, int, GradcheckError] | None = None
        try:
            # Results are fetched in the background as tasks finish, not one round trip each.
            for future, message in self._distributed.as_completed(list(futures), with_results=True):
                i = futures[future]
                a, b = chunks[i]
                if message[0] == "done":
                    yield (a, b), message[1], message[2]
                else:
                    error = decode_error(message[2], job.where, "a worker")
                    if failed is None or i < failed[0]:
                        failed = (i, message[1], error)
        except (GradcheckError, KeyboardInterrupt, GeneratorExit):
            self._cancel(futures)
            raise
        except self._distributed.KilledWorker:
            self._cancel(futures)
            raise BadValueError(
                f"{job.where} ended each Dask worker process that ran it (the cluster gave up on the task); the code "
                f"under test must return a value, not exit or crash"
            ) from None
        except Exception as exc:  # the cluster's, not the user's: workers lost, scheduler gone
            self._cancel(futures)
            what = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            raise InputError(
                f"the Dask cluster failed during the check ({what}); what finished is kept with "
                f"{option_ref('checkpoint', 'FILE')}, "
                f"and the same command continues from it"
            ) from None
        if failed is not None:
            raise failed[2]

    @staticmethod
    def _cancel(futures: dict[Any, int]) -> None:
        for future in futures:
            with contextlib.suppress(Exception):
                future.cancel()

    def close(self) -> None:
        if self._cluster is not None:
            # A worker still restarting when its cluster closes fails its start-up loudly.
            with contextlib.suppress(Exception):
                self.client.wait_for_workers(len(self._cluster.workers), timeout=DASK_SETTLE_SECONDS)
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        super().close()


# ---- the time guard ---------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """``40 s``, ``12 min``, ``3.1 h``: a duration as a person reads it."""
    if seconds < 90:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 1000 else f"{hours:.2g} h"


SPREAD_IT = f"spread it (more {option_ref('workers')}, or {option_ref('dask')})"


@dataclass(frozen=True)
class Forecast:
    """What the time guard weighs: the check's estimated ``seconds``, ``where`` it runs,
    ``basis`` (how the estimate was made) and ``remedies`` besides checking a part,
    raising ``--max-seconds`` or forcing it."""

    seconds: float
    where: str
    basis: str
    remedies: str = SPREAD_IT


def guard(forecast: Forecast, max_seconds: float, force: bool, progress: Any = None) -> str:
    """Refuse a check whose ``forecast`` exceeds ``max_seconds`` (unless ``force``).
    Returns the estimate as text (the progress bar shows it)."""
    text = f"about {duration(forecast.seconds)} on {forecast.where}"
    if progress is not None:
        progress.plan(text)
    if forecast.seconds > max_seconds and not force:
        remedies = f"{forecast.remedies}, " if forecast.remedies else ""
        raise InputError(
            f"the check would take {text} ({forecast.basis}), more than {max_seconds:g} s; check a part "
            f"({option_ref('mode', 'sample')} or {option_ref('mode', 'directional')}), {remedies}"
            f"raise {option_ref('max_seconds')}, or give {option_ref('force', True)}"
        )
    return text


# ---- choosing once ---------------------------------------------------------------------------


def cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_digest(identity: Any, params: dict[str, Array]) -> str:
    """What makes two runs the same check: ``identity`` (the function, its files, the
    settings, as JSON-able data) and the parameters' exact values."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(identity).encode())
    for name, x in params.items():
        h.update(f"{name}{x.shape}{x.dtype}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def open_runner(
    workers: int | str = 1,
    dask: Any = None,
    checkpoint: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    digest: str = "",
    uploads: tuple[str, ...] = (),
    shown: str | None = None,
) -> Runner:
    """The runner for these options, chosen once: Dask, local workers (also for a
    timeout: only a separate process can be ended), or this process.  ``shown``: the
    checkpoint's path as the user gave it."""
    if dask is not None and timeout is not None:
        raise InputError(
            "a timeout ends a stuck evaluation by ending its local worker process, which a Dask cluster does not "
            "allow; use the timeout with workers, or drop it",
            option="timeout",
        )
    count = cores() if workers == "auto" else int(workers)
    record = Checkpoint(checkpoint, digest, shown) if checkpoint is not None else None
    try:
        if dask is not None:
            return DaskWorkers(dask, record, uploads)
        if count > 1 or timeout is not None:
            local = LocalWorkers(count, record, timeout)
            local.start()  # the processes boot while this one evaluates the starting point
            return local
    except BaseException:
        if record is not None:
            record.close()
        raise
    return InProcess(record)
