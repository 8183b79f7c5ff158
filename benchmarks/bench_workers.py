"""Expensive functions: worker processes and Dask against one process, side by side.

Four measurements, in this process, one after another:

1. **An expensive loss** (``expensive.simulation``, sized to about ``--ms`` ms per
   call) over ``--params`` parameters: the full check in one process, on
   ``--workers`` local worker processes, and on ``--dask local:N`` (cluster start
   included, as a user runs it; and on a cluster already running).  Speed-ups
   against one process (medians of ``--repeats`` runs each); every report must
   equal the serial one.  Also the time
   guard's estimate (from the timed evaluations at the start) against the
   measured serial time.
2. **Dask's overhead per task**: one-evaluation chunks of a microsecond loss on a
   running ``LocalCluster``, and the scheduler's rate with many workers.  From
   them, on paper, the chunk size and efficiency for 100 and 1,000 workers.
3. **A simulated large cluster**: ``--simulated`` workers (threads of a few
   worker processes) running a loss that sleeps for the measured evaluation time:
   the share of the workers' time spent evaluating.
4. **A cheap loss** of 10,000 parameters with one worker (the default) against a
   plain two-evaluation Python loop over the same function.

    python benchmarks/bench_workers.py                  # the README's figures
    python benchmarks/bench_workers.py --params 100 --no-simulated
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from timing import median_time

from gradcheck_cli.checks.userfunc import FuncSpec, UserFunction, check_function
from gradcheck_cli.core.options import Execution
from gradcheck_cli.execution import evaluation, workers

HERE = Path(__file__).resolve().parent
LOSSES = HERE / "expensive.py"


def _same(report: Any) -> Any:
    if isinstance(report, dict):
        return {k: _same(v) for k, v in report.items() if k != "elapsed_seconds"}
    if isinstance(report, list):
        return [_same(v) for v in report]
    return report


class _Plan:
    """A progress sink that keeps the time guard's estimate."""

    text = ""

    def plan(self, text: str) -> None:
        self.text = text

    def start(self, name: str, total: int, position: tuple[int, int]) -> None: ...

    def advance(self, count: int) -> None: ...

    def stop(self) -> None: ...


def _spec(loss: str, size: int) -> FuncSpec:
    return FuncSpec(loss=f"{LOSSES}:{loss}", grad=f"{LOSSES}:{loss}_grad", params=(("w", (size,)),), seed=0)


def _calibrate(ms: float, size: int) -> float:
    """Set the simulation's steps so one call takes about ``ms``; returns the time."""
    sys.path.insert(0, str(HERE))
    expensive = importlib.import_module("expensive")
    w = np.random.default_rng(0).standard_normal(size)
    os.environ["GRADCHECK_BENCH_STEPS"] = "400"
    each, _ = median_time(lambda: expensive.simulation(w), 5)
    os.environ["GRADCHECK_BENCH_STEPS"] = str(max(1, round(400 * ms / 1000 / each)))
    each, _ = median_time(lambda: expensive.simulation(w), 5)
    return each


def expensive_loss(args: argparse.Namespace) -> None:
    each = _calibrate(args.ms, args.params)
    print(f"1. simulation loss, {args.params} parameters, {each * 1000:.1f} ms per call")
    spec = _spec("simulation", args.params)
    plan = _Plan()
    base, serial = median_time(lambda: check_function(spec, progress=plan), args.repeats)
    rows = [("1 process", base, serial)]
    for label, execution in [
        (f"--workers {args.workers}", Execution(workers=args.workers)),
        (f"--dask local:{args.workers}", Execution(dask=f"local:{args.workers}")),
    ]:
        seconds, report = median_time(lambda: check_function(spec, execution=execution), args.repeats)
        rows.append((label, seconds, report))
    distributed = importlib.import_module("distributed")
    cluster = distributed.LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    seconds, report = median_time(lambda: check_function(spec, execution=Execution(dask=client)), args.repeats)
    rows.append((f"Dask, {args.workers} workers running", seconds, report))
    client.close()
    cluster.close()
    print(f"   {'where':<28} {'seconds':>8} {'speed-up':>9}  same report")
    for label, seconds, report in rows:
        same = _same(report.to_dict()) == _same(serial.to_dict())
        print(f"   {label:<28} {seconds:8.2f} {base / seconds:8.2f}x  {same}")
    print(f"   verdict {serial.status}, {serial.evaluations} loss evaluations")
    estimate = plan.text
    print(f"   time guard's estimate: {estimate}; measured {base:.1f} s")


def dask_overhead(args: argparse.Namespace) -> tuple[float, float]:
    """Seconds of overhead per task with 2 workers, and tasks per second the
    scheduler hands out with many workers."""
    distributed = importlib.import_module("distributed")
    cheap = UserFunction(f"{LOSSES}:cheap", "loss", {})
    job = evaluation.Job(cheap, {"w": np.zeros(8)}, evaluation.ScalarReader("cheap"))
    blob = workers._pickled(job)
    moves = evaluation.Moves.entries("w", np.zeros(1, dtype=np.int64), np.full(1, 1e-3))
    results = []
    for n_workers, threads, tasks in [(2, 1, 400), (4, 25, 2000)]:
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=threads, processes=True, dashboard_address=":0"
        )
        client = distributed.Client(cluster)
        client.gather([client.submit(workers.run_dask_chunk, "t", blob, moves, pure=False) for _ in range(20)])
        start = time.perf_counter()
        futures = [client.submit(workers.run_dask_chunk, "t", blob, moves, pure=False) for _ in range(tasks)]
        client.gather(futures)
        wall = time.perf_counter() - start
        results.append((n_workers * threads, tasks, wall))
        client.close()
        cluster.close()
    (w2, t2, wall2), (wmany, tmany, wallmany) = results
    per_task = wall2 * w2 / t2
    rate = tmany / wallmany
    print("2. Dask overhead (a one-evaluation chunk of a microsecond loss)")
    print(f"   {w2} workers: {t2} tasks in {wall2:.2f} s -> {per_task * 1000:.2f} ms per task per worker")
    print(f"   {wmany} worker threads: {tmany} tasks in {wallmany:.2f} s -> the scheduler hands out {rate:.0f} tasks/s")
    return per_task, rate


def on_paper(per_task: float, rate: float, each: float) -> None:
    """Chunk size and efficiency for many workers, from the measured overhead per task
    and the scheduler's pace.  A check is a few batches (two of one move per entry,
    then small ones); one batch of ``n`` moves on ``w`` workers takes at least its
    work spread evenly plus each worker's per-task overhead, and at least the time
    the scheduler needs to hand out its tasks."""
    print(f"   on paper, for a loss of {each * 1000:.0f} ms (chunks keep the scheduler under a quarter busy):")
    for workers_ in (100, 1000):
        chunk_seconds = max(0.5, 4 * workers_ / rate)
        for entries in (20_000, 200_000):
            tasks = min(entries, max(workers_, math.ceil(entries * each / chunk_seconds)))
            per_chunk = math.ceil(entries / tasks)
            rounds = math.ceil(tasks / workers_)
            wall = max(rounds * (per_chunk * each + per_task), tasks / rate)
            efficiency = entries * each / (workers_ * wall)
            print(
                f"   {workers_:>5} workers, {entries:>7,} entries: chunks of {per_chunk} evaluations "
                f"({per_chunk * each:.2g} s), {tasks} tasks per batch, efficiency {efficiency:.0%}"
            )


def simulated(args: argparse.Namespace, each: float) -> None:
    """Many workers as threads of a few processes, each evaluation a sleep."""
    distributed = importlib.import_module("distributed")
    processes = 4
    threads = args.simulated // processes
    cluster = distributed.LocalCluster(
        n_workers=processes, threads_per_worker=threads, processes=True, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    size = args.simulated * args.per_worker
    spec = replace(_spec("sleeper", size), const=(("seconds", each),))
    start = time.perf_counter()
    report = check_function(spec, execution=Execution(dask=client, max_seconds=1e9))
    wall = time.perf_counter() - start
    busy = report.evaluations * each
    print(f"3. simulated cluster: {processes * threads} workers, a loss sleeping {each * 1000:.0f} ms")
    print(
        f"   {size} parameters, {report.evaluations} evaluations ({busy:.0f} s of work) in {wall:.1f} s: "
        f"workers busy {busy / (wall * processes * threads):.0%} of the time ({report.status})"
    )
    client.close()
    cluster.close()


def cheap_loss(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    expensive = importlib.import_module("expensive")
    w = np.random.default_rng(0).standard_normal(10_000)

    def plain() -> None:
        x = w.copy()
        for i in range(x.size):
            old = x[i]
            h = 6e-6 * max(1.0, abs(old))
            x[i] = old + h
            up = expensive.cheap(x)
            x[i] = old - h
            down = expensive.cheap(x)
            x[i] = old
            _ = (up - down) / (2 * h)

    spec = _spec("cheap", 10_000)
    loop_time, _ = median_time(plain, args.repeats)
    check_time, report = median_time(lambda: check_function(spec), args.repeats)
    print("4. cheap loss, 10,000 parameters, one worker")
    print(
        f"   plain two-evaluation loop {loop_time:.2f} s; gradcheck {check_time:.2f} s "
        f"({report.evaluations} evaluations, {report.status}): {check_time / loop_time:.2f}x the loop"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=int, default=400)
    parser.add_argument("--ms", type=float, default=20.0, help="milliseconds per call of the expensive loss")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--simulated", type=int, default=100, help="workers of the simulated cluster")
    parser.add_argument("--per-worker", type=int, default=200, help="parameters per simulated worker")
    parser.add_argument("--no-simulated", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sections", default="1,2,3,4", help="which measurements to run, e.g. 1,4")
    args = parser.parse_args()
    if importlib.util.find_spec("distributed") is None:
        raise SystemExit("this benchmark needs Dask: pip install 'gradcheck-cli[dask]'")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} cores")
    sections = {int(k) for k in args.sections.split(",")}
    if 1 in sections:
        expensive_loss(args)
    if 2 in sections:
        per_task, rate = dask_overhead(args)
        on_paper(per_task, rate, args.ms / 1000)
    if 3 in sections and not args.no_simulated:
        simulated(args, args.ms / 1000)
    if 4 in sections:
        cheap_loss(args)


if __name__ == "__main__":
    main()
