"""Full-check benchmark: the incremental engine against the per-entry loop and torch.

Every entry of every parameter is checked with central differences (tanh hidden
layers, MSE, bias, float64) on the same model, data and step, side by side in one
process; then the engine alone on every hidden activation x loss of ``--grid``.
Prints, per size: the median wall time of each contender, the ratios,
the largest difference between the engine's and the loop's numerical gradients,
the engine's peak memory, a floor (the arithmetic the incremental scheme
cannot avoid divided by this machine's measured throughput for that kind of
operation), and the time guard's forecast (the engine's own cost model) beside
the time measured.

    python benchmarks/bench_full_check.py                 # all sizes
    python benchmarks/bench_full_check.py --sizes 4-8-3 --repeats 5

torch.autograd.gradcheck runs when torch is installed (``pip install
torch==2.13.0``); otherwise its columns say so.  The loop is slow on the large
sizes; ``--loop-repeats`` (default 1) sets how often it runs there.
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table
from timing import median_time

from gradcheck_cli import Settings, check_model
from gradcheck_cli.checks.gradient import planned_moves
from gradcheck_cli.core.methods import CENTRAL
from gradcheck_cli.models import MLP, MLPSpec
from gradcheck_cli.probes.engine import DEFAULT_MAX_MEMORY, IncrementalProbe, tune_allocator

SIZES = {"4-8-3": 100, "64-128-10": 100, "784-128-10": 64, "784-256-128-10": 64}
LARGE = 50_000  # entries above which the loop and torch's slow mode run --loop-repeats times


def _peak_memory(run: Callable[[], object]) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _throughput(m: int) -> dict[str, float]:
    """Measured rates on this machine: elementwise ops per second, GEMM flops per second."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(2**20), rng.standard_normal(2**20)
    out = np.empty_like(a)
    elementwise, _ = median_time(lambda: np.multiply(a, b, out=out), 20)
    x, w = rng.standard_normal((256 * m, 128)), rng.standard_normal((128, 128))
    gemm, _ = median_time(lambda: x @ w, 10)
    return {"elementwise": a.size / elementwise, "gemm": 2 * x.shape[0] * 128 * 128 / gemm}


def _floor_seconds(layers: list[int], m: int, rates: dict[str, float]) -> float:
    """Work the incremental scheme cannot avoid, for central differences (two steps per
    entry), tanh hidden layers and MSE.

    Moving one entry of layer l's weights or bias: its column of A^l and Z^l (m
    elementwise ops each).  Then, by where the layer sits:

    * l = L (the output) and l = L-1: the loss change is a polynomial of the
      column's change with coefficients computed once (two length-m dot products
      for MSE: 4 m).
    * l = L-2: layer L-1 is carried by its Taylor series, the output's change a
      polynomial of order 3 (central steps) in the column's change, per sample and
      output (Horner: 2 x 3 m n_L), then the loss change (2 m n_L).
    * further down: the rank-1 change of the next pre-activation and its activation
      (2 m n_{l+1}), a matrix product (2 m n_k n_{k+1} flops) and an activation
      (m n_{k+1}) for every layer above, and the loss change (2 m n_L).
    """
    L = len(layers) - 1
    elementwise = gemm = 0.0
    for l in range(1, L + 1):
        count = layers[l - 1] * layers[l] + layers[l]  # weights and bias entries
        ops = 2 * m
        flops = 0.0
        if l >= L - 1:
            ops += 4 * m
        elif l == L - 2:
            ops += 2 * 3 * m * layers[-1] + 2 * m * layers[-1]
        else:
            ops += 2 * m * layers[l + 1]
            for k in range(l + 1, L):
                flops += 2 * m * layers[k] * layers[k + 1]
                ops += m * layers[k + 1]
            ops += 2 * m * layers[-1]
        elementwise += 2 * count * ops
        gemm += 2 * count * flops
    return elementwise / rates["elementwise"] + gemm / rates["gemm"]


def _forecast(model: MLP) -> float:
    """The time guard's forecast for a full central-difference check of ``model`` by
    the engine (its cost model, ``IncrementalProbe.forecast``)."""
    params = model.initial_parameters()
    plan = planned_moves(params, Settings().resolved(), black_box=False, user_step=False)
    return float(IncrementalProbe(model, params).forecast(plan).seconds)


def _blas() -> str:
    """The BLAS numpy was built with, as numpy reports it."""
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # an older numpy without mode="dicts"
        return "unknown (numpy does not say)"


ACTIVATION_GRID = ["tanh", "sigmoid", "relu", "leaky_relu", "elu", "softplus"]
LOSS_GRID = ["mse", "softmax-ce", "bce"]


def _every_activation_and_loss(size: str, repeats: int, console: Console) -> None:
    """The engine on every hidden activation x loss of ``size``, against tanh/mse, with
    each run's traced peak memory (the bound is ``DEFAULT_MAX_MEMORY``)."""
    layers = [int(n) for n in size.split("-")]
    table = Table(title=f"every hidden activation x loss, {size}, m={SIZES[size]} (median seconds)")
    for header in ("hidden", "loss", "engine s", "vs tanh/mse", "forecast s", "forecast/engine", "peak MiB", "verdict"):
        table.add_column(header, justify="right")
    base = None
    for loss in LOSS_GRID:
        for act in ACTIVATION_GRID:
            model = MLP(MLPSpec.build(layers, activation=act, loss=loss, bias=True, m=SIZES[size], seed=0))
            seconds, report = median_time(lambda: check_model(model, engine="incremental"), repeats)
            base = seconds if base is None else base
            peak = _peak_memory(lambda: check_model(model, engine="incremental"))
            forecast = _forecast(model)
            table.add_row(
                act,
                loss,
                f"{seconds:.4f}",
                f"{seconds / base:.2f}x",
                f"{forecast:.4f}",
                f"{forecast / seconds:.2f}",
                f"{peak / 2**20:.1f}",
                report.status,
            )
    console.print(table)


def _noise_floors(size: str = "64-128-10", m: int = 100, entries: int = 400) -> tuple[float, float]:
    """Measured round-off of a central-difference loss change, engine and loop.

    For a seeded sample of entries the loss changes ``J(x +- h e_i) - J(x)`` are
    recomputed in extended precision (numpy's longdouble) as the reference; the
    noise floor of each engine is the largest error of its central difference
    ``(dJ+ - dJ-) / 2h`` against that reference.
    """
    from gradcheck_cli.probes.engine import IncrementalProbe
    from gradcheck_cli.probes.loop import LoopProbe

    model = MLP(MLPSpec.build([int(n) for n in size.split("-")], activation="tanh", loss="mse", m=m, seed=0))
    params = model.initial_parameters()
    wide = {k: v.astype(np.longdouble) for k, v in params.items()}
    base = model.forward(wide).value
    engine, loop = IncrementalProbe(model, params), LoopProbe(model.loss, params)
    h = CENTRAL.auto_step
    rng = np.random.default_rng(1)
    worst = {"engine": 0.0, "loop": 0.0}
    for name, x in params.items():
        flat = np.sort(rng.choice(x.size, size=min(x.size, entries // len(params)), replace=False))
        reference = []
        for i in flat:
            sides = []
            for sign in (1, -1):
                moved = dict(wide)
                moved[name] = wide[name].copy()
                moved[name].reshape(-1)[i] += sign * h
                sides.append(model.forward(moved).value - base)
            reference.append((sides[0] - sides[1]) / (2 * h))
        reference = np.array(reference, dtype=np.longdouble)
        for label, probe in (("engine", engine), ("loop", loop)):
            plus = probe.entries(name, flat, np.full(len(flat), h)).change
            minus = probe.entries(name, flat, np.full(len(flat), -h)).change
            error = np.abs((plus - minus) / (2 * h) - reference)
            worst[label] = max(worst[label], float(error.max()))
    return worst["engine"], worst["loop"]


def _torch_check(model: MLP, step: float, fast: bool) -> Callable[[], bool] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    params = model.initial_parameters()
    X = torch.from_numpy(model.X)
    Y = torch.from_numpy(model.targets)
    names = list(params)
    tensors = tuple(torch.from_numpy(params[n]).clone().requires_grad_(True) for n in names)

    def loss(*values: torch.Tensor) -> torch.Tensor:
        p = dict(zip(names, values, strict=False))
        z = X
        for l in range(1, model.depth + 1):
            a = z @ p[f"W{l}"] + p[f"b{l}"]
            z = torch.tanh(a) if l < model.depth else a
        r = z - Y
        return (r * r).sum() / (2 * X.shape[0])

    return lambda: torch.autograd.gradcheck(
        loss, tensors, eps=step, atol=1e-5, rtol=1e-3, fast_mode=fast, raise_exception=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5, help="runs of the engine (and of small loops)")
    parser.add_argument(
        "--loop-repeats", type=int, default=1, help="runs of the loop and torch slow mode on large sizes"
    )
    parser.add_argument("--no-torch", action="store_true", help="skip torch even when installed")
    parser.add_argument("--grid", default="784-128-10", help="size for the every-activation-x-loss rows ('' to skip)")
    args = parser.parse_args()

    console = Console(width=200)
    tuned = tune_allocator()  # as the command line does; it affects every contender alike
    step = CENTRAL.auto_step  # every |x| <= 1 here, so h = step for every entry
    table = Table(title="full check, central differences, every entry (median seconds)", header_style="bold")
    for header in (
        "size",
        "m",
        "entries",
        "engine s",
        "loop s",
        "loop/engine",
        "torch slow s",
        "torch/engine",
        "torch fast s",
        "max |engine-loop|",
        "engine peak MiB",
        "floor s",
        "engine/floor",
        "forecast s",
        "forecast/engine",
    ):
        table.add_column(header, justify="right")
    notes = []
    for size in args.sizes:
        layers = [int(n) for n in size.split("-")]
        m = SIZES[size]
        model = MLP(MLPSpec.build(layers, activation="tanh", loss="mse", bias=True, m=m, seed=0))
        assert all(np.abs(v).max() <= 1 for v in model.initial_parameters().values())
        entries = sum(v.size for v in model.initial_parameters().values())
        slow_repeats = args.loop_repeats if entries > LARGE else args.repeats

        engine_s, fast = median_time(lambda: check_model(model, engine="incremental"), args.repeats)
        loop_s, slow = median_time(lambda: check_model(model, engine="loop"), slow_repeats)
        pairs = zip(fast.parameters, slow.parameters, strict=True)
        diff = max(float(np.max(np.abs(f.numerical - s.numerical))) for f, s in pairs)
        assert fast.passed and slow.passed
        peak = _peak_memory(lambda: check_model(model, engine="incremental"))
        floor = _floor_seconds(layers, m, _throughput(m))
        forecast = _forecast(model)

        torch_slow = torch_fast = "-"
        torch_ratio = "-"
        slow_check = None if args.no_torch else _torch_check(model, step, fast=False)
        if slow_check is None:
            notes.append("torch not installed (pip install torch==2.13.0): its columns are skipped")
        else:
            t_slow, ok_slow = median_time(slow_check, slow_repeats)
            t_fast, ok_fast = median_time(_torch_check(model, step, fast=True), args.repeats)
            torch_slow, torch_fast = f"{t_slow:.3f}", f"{t_fast:.3f}"
            torch_ratio = f"{t_slow / engine_s:.0f}x"
            if not (ok_slow and ok_fast):
                notes.append(f"{size}: torch.autograd.gradcheck reported a mismatch")
        table.add_row(
            size,
            str(m),
            f"{entries:,}",
            f"{engine_s:.4f}",
            f"{loop_s:.3f}",
            f"{loop_s / engine_s:.0f}x",
            torch_slow,
            torch_ratio,
            torch_fast,
            f"{diff:.1e}",
            f"{peak / 2**20:.1f}",
            f"{floor:.4f}",
            f"{engine_s / floor:.1f}x",
            f"{forecast:.4f}",
            f"{forecast / engine_s:.2f}",
        )
        console.print(f"done {size}")
    console.print(table)
    if args.grid:
        _every_activation_and_loss(args.grid, args.repeats, console)
    console.print(f"numpy {np.__version__}, BLAS: {_blas()}")
    if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps:
        engine_noise, loop_noise = _noise_floors()
        console.print(
            f"measured noise floor of a central difference (64-128-10, m=100, 400 entries, against "
            f"extended precision): engine {engine_noise:.1e}, loop {loop_noise:.1e}"
        )
    else:
        console.print("noise floor not measured: numpy's longdouble is no wider than float64 on this machine")
    console.print(
        f"max-memory bound: {DEFAULT_MAX_MEMORY / 2**20:.0f} MiB; step h = {step:.3g}; loop and torch "
        f"slow mode run {args.loop_repeats}x on sizes over {LARGE:,} entries, else {args.repeats}x; "
        f"allocator tuned: {tuned}"
    )
    for note in dict.fromkeys(notes):
        console.print(note)
    largest = args.sizes[-1]
    ratio = _truncation_overhead(
        MLP(MLPSpec.build([int(n) for n in largest.split("-")], m=SIZES[largest])), args.repeats
    )
    console.print(
        f"truncation measurement (a sample of 64 entries per parameter at h/4) on {largest}: "
        f"{ratio:.3f}x the check without it"
    )


def _truncation_overhead(model: MLP, repeats: int) -> float:
    """The full check over the same check with truncation measurement switched off,
    side by side in this process."""
    import gradcheck_cli.checks.gradient as check_module

    measure = check_module._measure_truncation
    with_it, _ = median_time(lambda: check_model(model), repeats)
    check_module._measure_truncation = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        without, _ = median_time(lambda: check_model(model), repeats)
    finally:
        check_module._measure_truncation = measure
    return with_it / without


if __name__ == "__main__":
    main()
