"""What the supervisor costs: the same check run directly and under the supervisor
(a forked child that runs the user's code, its answer sent back through a pipe),
side by side in one process.

    python benchmarks/bench_supervisor.py
    python benchmarks/bench_supervisor.py --repeats 9 --entries 10000

Rows: ``gradcheck mlp --layers 4,8,3`` (the built-in engine), a cheap loss of
``--entries`` entries (a plain loop of evaluations: the activity record's cost per
evaluation shows here), and an empty piece of work (the fork and the pipe alone).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from timing import median_time

from gradcheck_cli import check_gradients, check_model
from gradcheck_cli.execution.supervisor import Limits, can_supervise, supervised
from gradcheck_cli.models import MLP, MLPSpec


def _cheap_loss(p: dict[str, np.ndarray]) -> float:
    return float(np.dot(p["w"], p["w"]))


def _cheap_grad(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"w": 2 * p["w"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()
    if not can_supervise():
        print("the supervisor is not used on this platform (no fork): nothing to compare")
        return
    w = np.random.default_rng(0).standard_normal(args.entries)
    model = MLP(MLPSpec.build([4, 8, 3]))
    rows: list[tuple[str, Callable[[], object]]] = [
        ("mlp 4-8-3", lambda: check_model(model).status),
        (f"cheap loss, {args.entries:,} entries", lambda: check_gradients(_cheap_loss, _cheap_grad, {"w": w}).status),
        ("nothing (fork and pipe)", lambda: None),
    ]
    print(f"{'work':<30} {'direct s':>10} {'supervised s':>13} {'overhead s':>11} {'ratio':>7}")
    for label, work in rows:
        direct, _ = median_time(work, args.repeats)
        under, _ = median_time(
            lambda work=work: supervised(lambda channel: work(), lambda m: None, Limits()), args.repeats
        )
        print(f"{label:<30} {direct:>10.4f} {under:>13.4f} {under - direct:>11.4f} {under / max(direct, 1e-9):>6.2f}x")


if __name__ == "__main__":
    main()
