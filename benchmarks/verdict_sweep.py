"""How trustworthy are the verdicts?  A sweep over random smooth functions at random scales.

Each problem is ``J(w) = offset + A sum_k a_k phi(w_k / s + c_k)`` with ``phi`` one of
sin, tanh, a Gaussian bump, softplus and a cubic; parameters of size ``s`` from
1e-8 to 1e8, amplitudes ``A`` from 1e-3 to 1e3, loss offsets up to 1e12, and a real
difference method drawn at random.  For each problem:

* the correct gradient is checked: a FAIL is a false FAIL;
* when it PASSes, each entry in turn is made wrong by twice the reported
  resolution (plus twice atol): a PASS then is a false PASS.

Prints the counts, the share of UNRESOLVED verdicts (the check could not tell;
mostly offsets of 1e8 and more, whose round-off swamps the derivative), and the
loss evaluations per entry (the noise measurement included).  Every draw comes
from ``numpy.random.default_rng(seed)``.

    python benchmarks/verdict_sweep.py            # 1,000 problems
    python benchmarks/verdict_sweep.py --problems 200 --seed 7
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck_cli import check_gradients

SHAPES: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "sin": (np.sin, np.cos),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "bump": (lambda z: np.exp(-z * z), lambda z: -2 * z * np.exp(-z * z)),
    "softplus": (lambda z: np.logaddexp(0, z), lambda z: 1 / (1 + np.exp(-z))),
    "cubic": (lambda z: z**3 / 3 - z, lambda z: z * z - 1),
}
METHODS = ("central", "forward", "richardson")


def problem(rng: np.random.Generator) -> tuple[Any, Any, np.ndarray, str, dict[str, Any]]:
    n = int(rng.integers(1, 7))
    s = 10.0 ** int(rng.integers(-8, 9))
    amplitude = 10.0 ** int(rng.integers(-3, 4))
    offset = float(rng.choice([0.0, 1.0, 1e4, 1e8, 1e12])) * float(rng.choice([1, -1]))
    kind = str(rng.choice(sorted(SHAPES)))
    a = rng.uniform(0.5, 2.0, n) * rng.choice([-1, 1], n)
    c = rng.uniform(-1, 1, n)
    w = s * rng.uniform(-1.5, 1.5, n)
    phi, dphi = SHAPES[kind]

    def loss(p: dict[str, np.ndarray]) -> float:
        return offset + amplitude * float(np.sum(a * phi(p["w"] / s + c)))

    def grad(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"w": amplitude * a * dphi(p["w"] / s + c) / s}

    return loss, grad, w, str(rng.choice(METHODS)), {"offset": abs(offset), "scale": s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    false_fail = false_pass = wrong_checked = 0
    unresolved: collections.Counter[str] = collections.Counter()
    totals: collections.Counter[str] = collections.Counter()
    per_entry = []
    for _ in range(args.problems):
        loss, grad, w, method, info = problem(rng)
        group = "offset >= 1e8" if info["offset"] >= 1e8 else "offset < 1e8"
        totals[group] += 1
        right = check_gradients(loss, grad, {"w": w}, method=method)
        p = right.parameters[0]
        per_entry.append(p.evaluations / p.checked)
        if p.status == "FAIL":
            false_fail += 1
            continue
        if p.status == "UNRESOLVED":
            unresolved[group] += 1
            continue
        g = grad({"w": w})["w"]
        reference = float(np.max(np.abs(np.concatenate([p.numerical, p.analytic]))))
        atol = right.settings.tolerances[1]
        for k in range(w.size):
            off = g.copy()
            off[k] += 2 * p.resolution * max(abs(g[k]), 1e-3 * reference) + 2 * atol
            wrong_checked += 1
            if check_gradients(loss, lambda _p, off=off: {"w": off}, {"w": w}, method=method).passed:
                false_pass += 1
    print(f"{args.problems} random smooth problems (seed {args.seed}), methods {', '.join(METHODS)}")
    print(f"  correct gradients: false FAIL {false_fail}")
    for group in sorted(totals):
        print(f"  UNRESOLVED ({group}): {unresolved[group]} of {totals[group]}")
    print(f"  wrong entries (off by twice the resolution): {wrong_checked} checked, false PASS {false_pass}")
    print(f"  loss evaluations per entry: median {np.median(per_entry):.1f}, max {max(per_entry):.1f}")


if __name__ == "__main__":
    main()
