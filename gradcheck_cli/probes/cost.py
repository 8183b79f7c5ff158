"""The incremental engine's cost model: what a check on it should take, from its own
arithmetic at this machine's measured pace, for the time guard and the progress bar.

``measured_rates`` times this machine's elementwise passes, matrix products and
fixed cost per numpy call once per process; ``EngineCost`` follows each planned move
through the path the engine takes for it (the weight grid or one column; a series
or an exact change; the layers above) and prices it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..execution.workers import Forecast
from ..models.activations import TAYLOR_REACH, get_activation, series_order
from ..models.losses import RankOne, get_loss
from .loop import Planned

if TYPE_CHECKING:
    from .engine import IncrementalProbe

Array = npt.NDArray[Any]

# Work on about this many numbers per temporary array at a time: big enough for
# numpy's per-call overhead to vanish, small enough to stay in cache.
CACHE_ELEMENTS = 2**19

# numpy calls per chunk of perturbations, whatever its size: what a small chunk costs.
CALLS_PER_CHUNK = 40


# numpy calls per parameter outside the engine (its steps, the verdict, the report).
CALLS_PER_PARAMETER = 400


@dataclass(frozen=True)
class Rates:
    """This machine's pace, measured: ``elementwise`` numbers per second through one
    arithmetic pass over an engine-sized array, ``flops`` per second in a matrix
    product, and ``call`` seconds of fixed cost per numpy call on a small array."""

    elementwise: float
    flops: float
    call: float


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return max(sorted(times)[len(times) // 2], 1e-9)


@functools.cache
def measured_rates(m: int = 64) -> Rates:
    """This machine's ``Rates``, measured once per process and innermost length ``m``
    (a few milliseconds) on arrays shaped as the engine's grid: rows x columns x
    samples, a sample's numbers innermost, one input change per row broadcast over
    the columns (numpy's inner loops then run ``m`` numbers long, the pace the engine
    gets; the two-layer series runs them ``n_L`` long)."""
    rng = np.random.default_rng(0)
    columns = 128
    row = rng.standard_normal((max(1, CACHE_ELEMENTS // (2 * columns * m)), 1, m))
    column = rng.standard_normal((columns, m))

    def passes(row: Array, column: Array) -> None:  # six passes as the engine makes them
        total = column * row  # fresh
        total += column  # in place
        total *= row
        np.abs(total).max()  # reduced
        total.sum(axis=-1)

    elementwise = 6 * row.shape[0] * column.size / _median_seconds(functools.partial(passes, row, column), 5)
    x, w = rng.standard_normal((2048, 128)), rng.standard_normal((128, 128))
    flops = 2 * x.shape[0] * 128 * 128 / _median_seconds(lambda: x @ w, 3)
    tiny = functools.partial(passes, row[:1, :, :8], column[:2, :8])
    call = _median_seconds(lambda: [tiny() for _ in range(20)], 5) / (20 * 6)
    return Rates(elementwise, flops, call)


@functools.cache
def _activation_seconds(name: str) -> float:
    """Seconds per number of an exact activation change (and its kink test), timed."""
    act = get_activation(name)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((64, 128))
    Z = act.forward(A)
    d = 1e-5 * rng.standard_normal((8, 64, 128))
    prepared = act.prepare(A, Z) if act.prepare is not None else ()

    def change() -> None:
        act.change(A, Z, d, prepared)
        if act.kink:
            (np.sign(A + d) != np.sign(A)).sum(axis=(-2, -1))

    return _median_seconds(change, 3) / d.size


@functools.cache
def _loss_seconds(name: str, outputs: int) -> float:
    """Seconds per number of an exact loss change over ``outputs`` columns, timed."""
    loss = get_loss(name)
    rng = np.random.default_rng(0)
    out = rng.standard_normal((64, outputs))
    targets = loss.make_targets(rng, 64, outputs)
    d = 1e-5 * rng.standard_normal((32, 64, outputs))
    return _median_seconds(lambda: loss.change(out, targets, d), 3) / d.size


@dataclass
class _Cost:
    """Work per perturbation: ``passes`` arithmetic passes over a number, matrix-product
    ``flops``, and ``seconds`` of exact changes (timed kernels)."""

    passes: float = 0.0
    flops: float = 0.0
    seconds: float = 0.0

    def total(self, rates: Rates) -> float:
        return self.passes / rates.elementwise + self.flops / rates.flops + self.seconds


class EngineCost:
    """The cost of moves on one ``IncrementalProbe``, read from its layers and paths."""

    def __init__(self, probe: IncrementalProbe) -> None:
        self.probe = probe

    def forecast(self, plan: list[Planned]) -> Forecast:
        """The time the engine should take for ``plan``, from its own arithmetic: each
        parameter's moves through the path they take here (a whole weight matrix on
        the grid, other moves, and the ``extra`` ones, column by column; a series or an
        exact change; the layers above), at this machine's measured ``Rates`` and
        timed kernels, plus a fixed cost per chunk and per parameter.  Directions are
        plain forward passes, at the measured time of one and a copy of the parameters."""
        rates = measured_rates(self.probe.m)
        size = sum(x.size for x in self.probe.params.values())
        seconds = CALLS_PER_PARAMETER * len(plan) * rates.call
        moves = 0
        for p in plan:
            moves += p.moves + p.extra
            if p.along:
                seconds += (p.moves + p.extra) * (
                    (self.probe._loop.runner.seconds or 0.0) + 3 * size / rates.elementwise
                )
                continue
            kind, l = self.probe.model.roles[p.name]
            x = self.probe.params[p.name]
            # The moved column's change: the step times the layer's input (a weight), or the step (a bias).
            reach = p.step * (float(np.abs(self.probe.layers[l - 1].Z).max(initial=0.0)) if kind == "W" else 1.0)
            columns, chunks = p.moves + p.extra, 0
            if kind == "W" and p.entries == x.size > 0:
                columns -= p.moves
                width, rows = self.probe._grid_blocks(l, x.shape[1])
                chunks += -(-x.shape[1] // width) * -(-x.shape[0] // rows) * -(-p.moves // x.size)
                seconds += p.moves * self._move_cost(l, True, reach).total(rates)
            if columns:
                chunks += -(-columns // self.probe._chunk_size(columns, l, per_row=1))
                seconds += columns * self._move_cost(l, False, reach).total(rates)
            seconds += chunks * CALLS_PER_CHUNK * rates.call
        basis = f"{moves:,} moves, costed from the engine's arithmetic at this machine's measured pace"
        return Forecast(seconds, "the incremental engine (this process)", basis, remedies="")

    def _move_cost(self, l: int, grid: bool, reach: float) -> _Cost:
        """Work of one move of layer ``l`` whose column change is up to ``reach``, on
        the weight grid or as a single column, through every layer above."""
        m, sizes = self.probe.m, self.probe.model.spec.layers
        loss_seconds = _loss_seconds(self.probe.loss_fn.name, sizes[-1])
        cost = _Cost()
        act = self.probe.model.activations[l - 1]
        coefficients, margin, exact = self.probe.series.get(l, ([], None, False))
        if grid and coefficients and (exact or reach <= TAYLOR_REACH):
            order = len(coefficients) if exact else series_order(reach, len(coefficients))
            cost.passes += (2 * order - 1 + (margin is not None)) * m  # Horner's rule (and the kink test)
        elif not act.linear:
            cost.seconds += m * _activation_seconds(act.name)
        if l == self.probe.L and self.probe.output_rank_one is not None:
            return self._rank_one_cost(cost, self.probe.output_rank_one, reach)
        if l == self.probe.L - 1 and self.probe.rank_one is not None:
            return self._rank_one_cost(cost, self.probe.rank_one, reach)
        outputs = m * sizes[-1]
        if l == self.probe.L - 2 and self.probe.two_layers is not None:
            two = self.probe.two_layers
            order = len(two.G) if two.exact else series_order(reach * float(two.scale.max()), len(two.G))
            # Horner's rule with the unit's change broadcast along the outputs: numpy's
            # inner loops run n_L numbers long here, at their own pace.
            cost.seconds += (2 * order - 1) * outputs / measured_rates(sizes[-1]).elementwise
            cost.seconds += outputs * loss_seconds
            return cost
        for k in range(l + 1, self.probe.L + 1):
            numbers = m * sizes[k]
            cost.flops += 2 * m * sizes[k - 1] * sizes[k] if k > l + 1 else 0
            cost.passes += numbers  # the rank-1 change, or the product's output
            if k < self.probe.L or not self.probe.fused:
                cost.seconds += numbers * _activation_seconds(self.probe.model.activations[k - 1].name)
        cost.seconds += outputs * loss_seconds
        return cost

    def _rank_one_cost(self, cost: _Cost, series: RankOne, reach: float) -> _Cost:
        """``cost`` plus the loss's change scored by ``series`` (its reach, Horner's rule,
        the sum)."""
        order = len(series.coefficients)
        if series.spread is not None:
            order = series_order(reach * float(series.spread.max(initial=0.0)), order)
        cost.passes += (2 * order + 2) * self.probe.m
        return cost
