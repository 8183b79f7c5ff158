"""A banded Jacobian checked with its sparsity declared, against the dense check.

The function is a discretised 1-D PDE residual on n points (a convection-reaction
equation, tridiagonal; with a fourth-order diffusion term, pentadiagonal).  For
each band the script checks the user's Jacobian three ways, in this process, side
by side:

* grouped: ``check_jacobian`` with the pattern declared (Curtis-Powell-Reid
  groups: the band's width in column groups);
* dense: the same check without a pattern, one column at a time;
* scipy: ``scipy.optimize._numdiff.approx_derivative`` with the same sparsity,
  where scipy is installed (it only estimates, it does not compare or judge).

and prints the evaluations of F and the seconds (median of ``--repeats``), with
the ratio dense / grouped.  The goal: the grouped check costs at most
2 x (width + 1) evaluations for central differences (``width`` = the number of
non-zero diagonals: 3 tridiagonal, 5 pentadiagonal) and is at least 100x faster
than the dense one.

    python benchmarks/bench_jacobian.py              # n = 2000
    python benchmarks/bench_jacobian.py --n 500 --repeats 3
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
from timing import median_time

from gradcheck_cli import check_jacobian

VELOCITY, LAMBDA, STIFF = 3.0, 0.5, 1e-3


def problem(n: int, width: int) -> tuple[Callable[..., Any], Callable[..., Any], np.ndarray]:
    """Residual, Jacobian and pattern of the band ``width`` (3 or 5)."""
    dx = 1.0 / (n + 1)
    i = np.arange(n)

    def residual(p: dict[str, np.ndarray]) -> np.ndarray:
        u = p["u"]
        padded = np.concatenate([[0.0, 0.0], u, [0.0, 0.0]])
        left, right = padded[1:-3], padded[3:-1]
        r = (left - 2 * u + right) / dx**2 + VELOCITY * (right - left) / (2 * dx) + LAMBDA * np.exp(u)
        if width == 5:
            far_left, far_right = padded[:-4], padded[4:]
            r = r - STIFF * (far_left - 4 * left + 6 * u - 4 * right + far_right) / dx**4
        return r

    def jacobian(p: dict[str, np.ndarray]) -> np.ndarray:
        u = p["u"]
        jac = np.zeros((n, n))
        jac[i, i] = -2 / dx**2 + LAMBDA * np.exp(u)
        jac[i[:-1], i[:-1] + 1] = 1 / dx**2 + VELOCITY / (2 * dx)
        jac[i[1:], i[1:] - 1] = 1 / dx**2 - VELOCITY / (2 * dx)
        if width == 5:
            jac[i, i] -= 6 * STIFF / dx**4
            jac[i[:-1], i[:-1] + 1] += 4 * STIFF / dx**4
            jac[i[1:], i[1:] - 1] += 4 * STIFF / dx**4
            jac[i[:-2], i[:-2] + 2] = -STIFF / dx**4
            jac[i[2:], i[2:] - 2] = -STIFF / dx**4
        return jac

    pattern = np.abs(i[:, None] - i[None, :]) <= width // 2
    return residual, jacobian, pattern


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    u = 0.1 * np.random.default_rng(args.seed).standard_normal(args.n)
    try:
        from scipy.optimize._numdiff import approx_derivative  # type: ignore[import-untyped]
        from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
    except ImportError:
        approx_derivative = None
    header = (
        f"{'band':>5} {'n':>6} | {'grouped evals':>13} {'bound':>5} {'grouped s':>9} | {'dense evals':>11} "
        f"{'dense s':>8} | {'dense/grouped':>13} | {'scipy evals':>11} {'scipy s':>8} | verdicts"
    )
    print(header)
    print("-" * len(header))
    for width in (3, 5):
        residual, jacobian, pattern = problem(args.n, width)
        grouped_s, grouped = median_time(
            lambda: check_jacobian(residual, jacobian, {"u": u}, sparsity={"u": pattern}), args.repeats
        )
        dense_s, dense = median_time(lambda: check_jacobian(residual, jacobian, {"u": u}), 1)
        scipy_cells = f"{'-':>11} {'-':>8}"
        if approx_derivative is not None:
            calls = [0]

            def counted(x: np.ndarray) -> np.ndarray:
                calls[0] += 1
                return residual({"u": x})

            scipy_s, _ = median_time(
                lambda: approx_derivative(counted, u, method="3-point", sparsity=csr_matrix(pattern)), args.repeats
            )
            scipy_cells = f"{calls[0] // args.repeats:>11} {scipy_s:>8.4f}"
        # The same numbers: the grouped entries against the dense check's at the pattern.
        same = np.max(
            np.abs(grouped.parameters[0].numerical - dense.parameters[0].numerical[pattern.reshape(-1)])
            / np.maximum(1.0, np.abs(dense.parameters[0].numerical[pattern.reshape(-1)]))
        )
        print(
            f"{width:>5} {args.n:>6} | {grouped.evaluations:>13} {2 * (width + 1):>5} {grouped_s:>9.4f} | "
            f"{dense.evaluations:>11} {dense_s:>8.3f} | {dense_s / grouped_s:>12.0f}x | {scipy_cells} | "
            f"{grouped.status}/{dense.status}, max rel diff {same:.1e}"
        )


if __name__ == "__main__":
    main()
