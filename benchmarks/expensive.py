"""Losses for ``bench_workers.py``, imported by path in every worker.

``simulation``: a small simulation, CPU-bound in one process (a coupled nonlinear
relaxation, thousands of steps), with its hand-written adjoint; the number of
steps comes from ``GRADCHECK_BENCH_STEPS`` so the benchmark can size one call to
about 20 ms on the machine at hand.  ``sleeper``: a loss that only waits
``seconds`` (a constant of the check), standing in for a remote or very slow code when
many simulated workers are measured.  ``cheap``: microseconds per call.
"""

import os
import time

import numpy as np

RATE, COUPLING = 0.01, 0.1


def _steps() -> int:
    return int(os.environ.get("GRADCHECK_BENCH_STEPS", "2000"))


def simulation(w):
    """Relax ``y`` towards ``y**3 = sin(w) + c roll(y)`` from ``y = w``; the loss is
    ``sum(y**2)`` at the end."""
    y = w.copy()
    for _ in range(_steps()):
        y = y - RATE * (y**3 - np.sin(w) - COUPLING * np.roll(y, 1))
    return float(np.sum(y**2))


def simulation_grad(w):
    """The hand-written adjoint of ``simulation``: the trajectory forward, then the
    multipliers backward (``roll``'s transpose is the roll the other way)."""
    ys = [w.copy()]
    for _ in range(_steps()):
        y = ys[-1]
        ys.append(y - RATE * (y**3 - np.sin(w) - COUPLING * np.roll(y, 1)))
    lam = 2 * ys[-1]
    g = np.zeros_like(w)
    for y in reversed(ys[:-1]):
        g += RATE * np.cos(w) * lam
        lam = lam - RATE * (3 * y**2 * lam - COUPLING * np.roll(lam, -1))
    return {"w": g + lam}


def sleeper(w, seconds=0.02):
    time.sleep(seconds)
    return float(np.sum(np.sin(w)))


def sleeper_grad(w):
    return {"w": np.cos(w)}


def cheap(w):
    return float(np.sum(np.sin(w)))


def cheap_grad(w):
    return {"w": np.cos(w)}
