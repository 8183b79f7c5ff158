"""User code for the worker tests: imported by path, in this process and in workers.

Behaviour is steered by environment variables (worker processes inherit them):
``WORKLOAD_SLEEP`` seconds per loss call, ``WORKLOAD_COUNT`` a file that gets one
line per call, ``WORKLOAD_INTERRUPT_AT`` the line count of that file at which the
loss raises KeyboardInterrupt, ``WORKLOAD_IN_WORKER`` what the loss does in a worker process
(``hang``, ``exit``, ``raise``).  A Dask worker does not see variables set after it
started, so what must happen there is a function of its own (``raising_loss``,
``killing_loss``).
"""

import multiprocessing
import os
import time

import numpy as np

_calls_per_marker: dict[str, int] = {}


def _in_worker() -> bool:
    # A worker process, not the supervised process that runs the check (which leads a
    # process group of its own; the workers it starts belong to its group).
    if multiprocessing.parent_process() is not None and os.getpgid(0) != os.getpid():
        return True
    try:
        from distributed import get_worker

        get_worker()
        return True
    except (ImportError, ValueError):
        return False


def loss(w):
    if os.environ.get("WORKLOAD_COUNT"):
        with open(os.environ["WORKLOAD_COUNT"], "a") as f:
            f.write("x\n")
        with open(os.environ["WORKLOAD_COUNT"]) as f:
            count = len(f.readlines())
        if os.environ.get("WORKLOAD_INTERRUPT_AT") and count == int(os.environ["WORKLOAD_INTERRUPT_AT"]):
            raise KeyboardInterrupt
    sleep = float(os.environ.get("WORKLOAD_SLEEP", "0"))
    if sleep:
        time.sleep(sleep)
    action = os.environ.get("WORKLOAD_IN_WORKER")
    if action and _in_worker():
        if action == "hang":
            while True:
                time.sleep(1)
        if action == "exit":
            os._exit(3)
        if action == "raise":
            raise ValueError("not in a worker, please")
    return float(np.sum(np.sin(w) * w) + 0.5 * np.sum(w**3))


def grad(w):
    return {"w": np.sin(w) + w * np.cos(w) + 1.5 * w**2}


def wrong_grad(w):
    g = grad(w)["w"].copy()
    g.reshape(-1)[3] += 1e-3
    return {"w": g}


def pair_loss(a, w):
    return loss(w) + float(np.sum(a**2))


def pair_grad(a, w):
    return {"a": 2 * a, "w": grad(w)["w"]}


def raising_loss(w):
    if _in_worker():
        raise ValueError("not in a worker, please")
    return loss(w)


def killing_loss(w, marker):
    """``loss``, except that the 40th call in a worker process ends that process,
    once per ``marker`` file (which it creates)."""
    calls = _calls_per_marker[marker] = _calls_per_marker.get(marker, 0) + 1
    if calls == 40 and _in_worker():
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))  # one worker only, even at the same instant
        except FileExistsError:
            return loss(w)
        os._exit(1)
    return loss(w)


def vector(w):
    """A vector function (its Jacobian is diagonal plus one coupling), counted like ``loss``."""
    loss(w)
    return np.sin(w) + 0.5 * np.roll(w, 1) ** 2


def vector_jac(w):
    n = w.size
    jac = np.diag(np.cos(w))
    jac[np.arange(n), np.roll(np.arange(n), 1)] += np.roll(w, 1)
    return jac
