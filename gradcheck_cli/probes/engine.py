"""The incremental finite-difference engine for the built-in MLP.

A full check moves every parameter entry, one at a time.  Done the obvious way,
each move costs a whole forward pass.  The structure of the network makes most of
that work unnecessary:

* Moving ``W^l[i, j]`` by ``s`` changes only column ``j`` of ``A^l``, by
  ``s * Z^{l-1}[:, i]``; moving ``b^l[j]`` changes it by ``s``.  Layers below ``l``
  are never recomputed: their forward values are cached once.
* So only column ``j`` of ``Z^l`` changes, and ``A^{l+1}`` changes by the rank-1
  term ``dz_j (x) W^{l+1}[j, :]``: no matrix product for the layer right above.
* Layers further up change everywhere; they run as one large matrix product per
  chunk of perturbations, ``(B*m, n) @ W``.
* When the whole of a weight matrix is checked with a step that is the same along
  each row, a row's input change ``s * Z^{l-1}[:, i]`` is shared by every column:
  the activation change is evaluated on a broadcast grid, and transcendental
  parts of it (``tanh`` of the input change) are computed once per row, not once
  per entry.

Everything is built from the model's *forward* pieces (``Activation.change``,
``Loss.change``), never from the backward formulas: the numerical side stays
independent of the analytic side it judges.  The engine propagates *changes*
(``sigma(a + d) - sigma(a)`` by addition theorems, ``loss(out + d) - loss(out)``
without forming either total), so it does not subtract two nearly equal loss
values the way a plain loop must.

For the mse loss with an identity output, a change ``dz (x) w`` of the last
pre-activation changes the loss by ``(2 dz.(R w) + |dz|^2 |w|^2) / (2m)`` with
``R = Z^L - Y``: the expansion of ``_mse_change`` for a rank-1 change, used when
the perturbed layer is the one below the output.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ..core.estimates import Evaluation
from ..execution.workers import Forecast
from ..models.activations import TAYLOR_REACH, series_order
from ..models.losses import SERIES_REACH, RankOne
from ..models.mlp import MLP
from ..numerics.steps import loss_roundoff
from .cost import CACHE_ELEMENTS, EngineCost
from .loop import LoopProbe, Planned

Array = npt.NDArray[Any]
Params = dict[str, Array]

DEFAULT_MAX_MEMORY = 512 * 2**20  # bytes of scratch space for one chunk of perturbations
TEMPORARIES = 6  # live arrays of one chunk's size, at the most, in any path below


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def tune_allocator() -> bool:
    """Ask glibc to keep freed memory up to 128 MiB and serve blocks up to 32 MiB from it.

    The engine allocates and frees arrays of a few MiB per chunk.  With glibc's
    defaults each freed block goes back to the system and the next chunk faults
    fresh pages in: measured here, 12-14 ns per element of a ``tanh`` change
    against 3 ns with the memory kept.  The command line calls this once; a
    library user may call it too.  Returns False where the C library has no
    ``mallopt`` (not glibc), changing nothing.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)) and bool(mallopt(_M_TRIM_THRESHOLD, 128 * 2**20))


# ---- the cost model -----------------------------------------------------------------------


@dataclass
class _Layer:
    A: Array  # (m, n) pre-activation, float64 (empty for layer 0, the input)
    Z: Array  # (m, n) output
    AT: Array  # (n, m) transposed copies, for column-wise access
    ZT: Array
    prep: tuple[Array, ...]  # the activation's prepare(A, Z), (m, n) each
    prepT: tuple[Array, ...]  # and transposed


@dataclass
class _TwoLayers:
    """Layer L-1 carried by its Taylor series for moves of layer L-2 (see
    ``IncrementalProbe._two_layers``): ``G[n-1]`` (units, m, n_L), the reach ``scale``
    (units,), the kink ``margin`` (units, m) or None, and whether the series is
    ``exact`` (piecewise linear) rather than good to round-off within its reach."""

    G: list[Array]
    scale: Array
    margin: Array | None
    exact: bool


def _cached_layers(model: MLP, cache: Any) -> list[_Layer]:
    """Every layer's forward values, and transposed copies for column-wise access."""
    layers = [_Layer(cache.A[0], cache.Z[0], cache.A[0], np.ascontiguousarray(cache.Z[0].T), (), ())]
    for l in range(1, model.depth + 1):
        act = model.activations[l - 1]
        prep = act.prepare(cache.A[l], cache.Z[l]) if act.prepare is not None else ()
        layers.append(
            _Layer(
                cache.A[l],
                cache.Z[l],
                np.ascontiguousarray(cache.A[l].T),
                np.ascontiguousarray(cache.Z[l].T),
                prep,
                tuple(np.ascontiguousarray(x.T) for x in prep),
            )
        )
    return layers


def _layer_series(model: MLP, cache: Any) -> dict[int, tuple[list[Array], Array | None, bool]]:
    """Each nonlinear hidden layer's Taylor series (coefficients, kink margin, exact),
    transposed like ``_Layer.AT``."""
    series = {}
    for l in range(1, model.depth + 1):
        act = model.activations[l - 1]
        if act.taylor is not None and not act.linear:
            taylor = act.taylor(cache.A[l], cache.Z[l])
            series[l] = (
                [np.ascontiguousarray(c.T) for c in taylor.coefficients],
                None if taylor.margin is None else np.ascontiguousarray(taylor.margin.T),
                taylor.exact,
            )
    return series


def _two_layers(model: MLP, params: Params, layers: list[_Layer], max_memory: int) -> _TwoLayers | None:
    """For moves of layer L-2: the change of the output's pre-activation as a
    polynomial of the moved unit's change, through layer L-1's Taylor series
    (``activations.Taylor``): ``dA^L_i = sum_n dz_i^n G_n[j][i]`` with
    ``G_n[j] = (C_n * W^{L-1}[j, :]^n) W^L``, computed once.  None when layer L-1's
    activation has no series or ``G`` would not fit a quarter of the memory bound."""
    L, m = model.depth, model.spec.m
    k = L - 1
    act = model.activations[k - 1]
    if act.taylor is None:
        return None
    W_in, W_out = params[model.weight_name(k)], params[model.weight_name(L)]  # (n_{L-2}, n_{L-1}), (n_{L-1}, n_L)
    units, width = W_in.shape
    outputs = W_out.shape[1]
    layer = layers[k]
    taylor = act.taylor(layer.A, layer.Z)
    if 8 * units * len(taylor.coefficients) * m * outputs > max_memory // 4:
        return None
    G = []
    for n, C in enumerate(taylor.coefficients, start=1):
        T = (C.T[:, :, None] * W_out[:, None, :]).reshape(width, m * outputs)  # (n_{L-1}, m n_L)
        G.append(np.ascontiguousarray((W_in**n @ T).reshape(units, m, outputs)))
    scale = np.abs(W_in).max(axis=1)  # |dA^{L-1}_ik| <= |dz_i| scale_j
    margin = None
    if taylor.margin is not None:
        # No kink of layer L-1 is crossed while |dz_i| < margin[j, i] = min_k |A_ik| / |W_jk|.
        with np.errstate(divide="ignore"):
            inverse = np.where(W_in != 0, 1.0 / np.abs(W_in), np.inf)  # (units, width)
        margin = np.empty((units, m))
        for rows in range(0, units, 64):
            block = taylor.margin[None, :, :] * inverse[rows : rows + 64, None, :]
            margin[rows : rows + 64] = block.min(axis=-1)
    return _TwoLayers(G, scale, margin, taylor.exact)


class IncrementalProbe:
    """Loss changes of an ``MLP`` under single-entry perturbations, computed incrementally.

    ``along`` (a whole tensor moved along a direction) has no structure to exploit
    and falls back to plain forward passes.
    """

    engine_name = "incremental"

    def __init__(
        self,
        model: MLP,
        params: Params,
        max_memory: int = DEFAULT_MAX_MEMORY,
    ) -> None:
        self.model = model
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.max_memory = max_memory
        self.progress: Callable[[int], None] | None = None
        self._loop = LoopProbe(model.loss, self.params, model.kink_pattern if model.has_kinks else None)
        self.base = self._loop.base
        self.evaluations = 1
        self.peak_chunk_bytes = 0
        cache = model.forward(self.params)
        self.L = model.depth
        self.m = model.spec.m
        self.layers = _cached_layers(model, cache)
        # Each hidden layer's Taylor series, transposed like AT: a grid of column
        # changes within its reach is scored by a short polynomial, not a transcendental.
        self.series = _layer_series(model, cache)
        self.targets = cache.targets
        self.loss_fn = model.loss_fn
        self.fused = model.loss_fn.fused
        self.out = cache.A[self.L] if self.fused else cache.Z[self.L]
        # A move of unit j of the last hidden layer moves the output along row j of
        # W^L, the same for every sample: the loss change is then a polynomial of the
        # unit's change with coefficients computed once (losses.RankOne), when the
        # output is scored directly (fused) or through the identity.  A move of output
        # unit j is the same case with the row e_j.
        rank_one = model.loss_fn.rank_one
        self.rank_one: RankOne | None = None
        self.output_rank_one: RankOne | None = None
        if rank_one is not None:
            self.output_rank_one = rank_one(self.out, self.targets, np.eye(self.out.shape[1]))
            if self.L >= 2 and (self.fused or model.activations[-1].linear):
                self.rank_one = rank_one(self.out, self.targets, self._weight(self.L))
        self.two_layers = _two_layers(model, self.params, self.layers, max_memory) if self.L >= 3 else None

    # ---- the probe interface ----------------------------------------------------------

    def along(self, name: str, directions: Array, steps: Array) -> Evaluation:
        self._loop.progress = self.progress
        ev = self._loop.along(name, directions, steps)
        self.evaluations += len(steps)
        return ev

    def entries(self, name: str, flat: Array, steps: Array) -> Evaluation:
        """``J(x + steps[b] e_{flat[b]}) - J(x)`` for each b, without a forward pass each."""
        flat = np.asarray(flat)
        steps = np.asarray(steps)
        kind, l = self.model.roles[name]
        change = np.empty(len(flat), dtype=np.result_type(steps, np.float64))
        crossed = np.zeros(len(flat), dtype=np.int64)  # kinks each move crosses
        n_in, n_out = self.model.spec.layers[l - 1], self.model.spec.layers[l]
        if kind == "W" and len(flat) == n_in * n_out and np.array_equal(flat, np.arange(len(flat))):
            self._dense_weight(l, steps.reshape(n_in, n_out), change.reshape(n_in, n_out), crossed.reshape(n_in, n_out))
        else:
            for sl in self._chunks(len(flat), l, per_row=1):
                if kind == "W":
                    i, j = np.divmod(flat[sl], n_out)
                    dA = steps[sl, None] * self.layers[l - 1].ZT[i]
                else:
                    j = flat[sl]
                    dA = np.broadcast_to(steps[sl, None], (len(j), self.m))
                change[sl], crossed[sl] = self._from_column(l, j, dA)
                self._tick(len(j))
        self.evaluations += len(flat)
        # The engine's own error is far smaller; the verdict keeps the plain loop's bound.
        return Evaluation(change, loss_roundoff(self.base, change), crossed)

    def forecast(self, plan: list[Planned]) -> Forecast:
        """The time the engine should take for ``plan`` (``cost.EngineCost``)."""
        return EngineCost(self).forecast(plan)

    # ---- internals ----------------------------------------------------------------------

    def _weight(self, l: int) -> Array:
        return self.params[self.model.weight_name(l)]

    def _tick(self, count: int) -> None:
        if self.progress is not None:
            self.progress(count)

    def _width(self, l: int) -> int:
        """Numbers per sample that one perturbation of layer ``l`` carries in its path."""
        sizes = self.model.spec.layers
        if l == self.L:
            return sizes[-1]  # the output change and the loss's temporaries
        if l == self.L - 1 and self.rank_one is not None:
            return 1  # a few vectors of length m
        if l == self.L - 2 and self.two_layers is not None:
            return sizes[-1]  # the output's change, by the series
        return max(sizes[l + 1 :])  # full changes of every layer above

    def _bytes_per_perturbation(self, l: int) -> int:
        """Scratch bytes one perturbation of layer ``l`` needs in the path it takes."""
        return 16 * self.m * TEMPORARIES * (self._width(l) + 1)  # 16 bytes: room for complex steps

    def _grid_blocks(self, l: int, n_out: int) -> tuple[int, int]:
        """Columns and rows per chunk of the weight grid of layer ``l``: whole rows when
        one fits the memory bound, else blocks of one row's columns."""
        n_in = self.model.spec.layers[l - 1]
        width = n_out
        if self._bytes_per_perturbation(l) * n_out > self.max_memory:
            width = self._chunk_size(n_out, l, per_row=1)
        return width, self._chunk_size(n_in, l, per_row=width)

    def _chunk_size(self, count: int, l: int, per_row: int) -> int:
        """Rows per chunk of ``count`` rows, each row holding ``per_row`` perturbations:
        within the memory bound and about a cache's worth of numbers per temporary array."""
        per = self._bytes_per_perturbation(l) * per_row
        by_memory = max(1, self.max_memory // per)
        by_cache = max(1, CACHE_ELEMENTS // (self.m * (self._width(l) + 1) * per_row))
        return int(min(by_memory, by_cache, count)) or 1

    def _chunks(self, count: int, l: int, per_row: int) -> list[slice]:
        """``_chunk_size`` slices of ``count`` rows."""
        size = self._chunk_size(count, l, per_row)
        self.peak_chunk_bytes = max(self.peak_chunk_bytes, size * self._bytes_per_perturbation(l) * per_row)
        return [slice(start, min(count, start + size)) for start in range(0, count, size)]

    def _crossings(self, l: int, A: Array, dA: Array, axis: tuple[int, ...]) -> Array | None:
        """How many elements of ``A + dA`` have another sign than ``A`` (or leave 0):
        the kinks each move crosses."""
        if not self.model.activations[l - 1].kink or np.iscomplexobj(dA):
            return None
        moved = np.sign(A + dA) != np.sign(A)
        return cast(Array, moved.sum(axis=axis))

    def _dense_weight(self, l: int, steps: Array, change: Array, crossed: Array) -> None:
        """Every entry of ``W^l``: rows of perturbations share their input change.

        Blocks of whole rows when a row fits the memory bound, else blocks of one
        row's columns: the arithmetic per entry is the same either way.
        """
        layer, below = self.layers[l], self.layers[l - 1]
        act = self.model.activations[l - 1]
        uniform = bool(np.all(steps == steps[:, :1]))
        n_in, n_out = steps.shape
        block, _ = self._grid_blocks(l, n_out)
        for cols in self._chunks(n_out, l, per_row=1) if block < n_out else [slice(0, n_out)]:
            width = cols.stop - cols.start
            AT, ZT = layer.AT[cols][None], layer.ZT[cols][None]
            prepared = tuple(x[cols][None] for x in layer.prepT)
            for rows in self._chunks(n_in, l, per_row=width):
                x = below.ZT[rows]  # (c, m)
                if uniform:
                    dA = (steps[rows, :1] * x)[:, None, :]  # (c, 1, m): one input change per row
                else:
                    dA = steps[rows, cols, None] * x[:, None, :]  # (c, width, m)
                # (c, width, m); identity returns dA itself, hence the broadcast.
                series = self._series_change(l, cols, dA)
                if series is None:
                    dZ = np.broadcast_to(act.change(AT, ZT, dA, prepared), (len(x), width, self.m))
                    hit = self._crossings(l, AT, dA, axis=(-1,))
                else:
                    dZ, hit = series
                out_change, out_hit = self._grid_above(l, cols, dA, dZ)
                change[rows, cols] = out_change
                if hit is not None:
                    crossed[rows, cols] += hit
                if out_hit is not None:
                    crossed[rows, cols] += out_hit
                self._tick(out_change.size)

    def _series_change(self, l: int, cols: slice, dA: Array) -> tuple[Array, Array | None] | None:
        """Layer ``l``'s activation change for a grid of column changes ``dA`` (rows,
        1 or len(cols), m) by its Taylor series, when every change is within the series'
        reach, and the kinks each move crosses; None when a change is beyond reach (the
        caller takes the exact path).  Elements whose change reaches a kink get the
        exact change, and only they are tested for a crossing."""
        if l not in self.series:
            return None
        coefficients, margin, exact = self.series[l]
        size = np.abs(dA)
        reach = float(size.max(initial=0.0))
        if not exact and reach > TAYLOR_REACH:
            return None
        order = len(coefficients) if exact else series_order(reach, len(coefficients))
        total = coefficients[order - 1][cols] * dA
        for c in reversed(coefficients[: order - 1]):
            total += c[cols]
            total *= dA
        if margin is None:
            return total, None
        hit = np.zeros(total.shape[:-1], dtype=np.int64)
        near = _reaching(size, margin[cols])
        if near[0].size:
            layer, act = self.layers[l], self.model.activations[l - 1]
            shape = total.shape
            A = np.broadcast_to(layer.AT[cols], shape)[near]
            Z = np.broadcast_to(layer.ZT[cols], shape)[near]
            d = np.broadcast_to(dA, shape)[near]
            total[near] = act.change(A, Z, d)
            if not np.iscomplexobj(d):
                moved = np.sign(A + d) != np.sign(A)
                np.add.at(hit, tuple(index[moved] for index in near[:-1]), 1)
        return total, hit

    def _grid_above(self, l: int, cols: slice, dA: Array, dZ: Array) -> tuple[Array, Array | None]:
        """Loss changes for a (rows, columns ``cols``, m) grid of column changes of layer ``l``."""
        c, n, m = dZ.shape
        if l == self.L and self.output_rank_one is not None:
            d = np.broadcast_to(dA, dZ.shape) if self.fused else dZ
            return self._rank_one(self.output_rank_one, cols, d), None
        if l == self.L - 1 and self.rank_one is not None:
            return self._rank_one(self.rank_one, cols, dZ), None
        if l == self.L - 2 and self.two_layers is not None:
            return self._through_two_layers(cols, dZ)
        j = np.tile(np.arange(cols.start, cols.stop), c)
        dA_cols = np.broadcast_to(dA, dZ.shape).reshape(c * n, m)
        change, hit = self._above_column(l, j, dA_cols, dZ.reshape(c * n, m))
        return change.reshape(c, n), None if hit is None else hit.reshape(c, n)

    def _from_column(self, l: int, j: Array, dA: Array) -> tuple[Array, Array]:
        """Loss changes when column ``j[b]`` of ``A^l`` moves by ``dA[b]`` (B, m)."""
        layer = self.layers[l]
        A, Z = layer.AT[j], layer.ZT[j]
        dZ = self.model.activations[l - 1].change(A, Z, dA, tuple(x[j] for x in layer.prepT))
        hit = self._crossings(l, A, dA, axis=(-1,))
        change, above = self._above_column(l, j, dA, dZ)
        crossed = np.zeros(len(j), dtype=np.int64)
        for flags in (hit, above):
            if flags is not None:
                crossed += flags
        return change, crossed

    def _above_column(self, l: int, j: Array, dA: Array, dZ: Array) -> tuple[Array, Array | None]:
        """Propagate column changes ``dZ[b]`` of ``Z^l`` (column ``j[b]``) to the loss."""
        if l == self.L:
            d = dA if self.fused else dZ
            if self.output_rank_one is not None:
                return self._rank_one(self.output_rank_one, j, d), None
            return self._output_column(j, d), None
        if l == self.L - 1 and self.rank_one is not None:
            return self._rank_one(self.rank_one, j, dZ), None
        if l == self.L - 2 and self.two_layers is not None:
            return self._through_two_layers(j, dZ)
        W = self._weight(l + 1)
        dA_up = dZ[:, :, None] * W[j][:, None, :]  # rank-1 per perturbation: (B, m, n_{l+1})
        return self._above_full(l + 1, dA_up)

    def _output_column(self, j: Array, d: Array) -> Array:
        """Loss changes when output column ``j[b]`` (of the scored output) moves by ``d[b]`` (B, m)."""
        B, m = d.shape
        full = np.zeros((B, m, self.out.shape[1]), dtype=d.dtype)
        full[np.arange(B), :, j] = d
        return self.loss_fn.change(self.out, self.targets, full)

    def _rank_one(self, series: RankOne, j: Array | slice, dZ: Array) -> Array:
        """Loss changes for changes ``dZ[..., b, :]`` of column ``j[b]`` (a slice on the
        grid) of the last hidden layer, or of the scored output when ``series`` is ``output_rank_one`` (``dZ``:
        (B, m) or a (rows, B, m) grid): the polynomial of ``losses.RankOne`` by Horner's
        rule, to the order these changes need, and the exact path for any change beyond
        the series' reach."""
        m = dZ.shape[-1]
        coefficients = series.coefficients
        spread = series.spread
        far: tuple[Array, ...] = ()
        if spread is not None:
            reach = float(np.abs(dZ).max(initial=0.0)) * float(spread[j].max(initial=0.0))
            coefficients = coefficients[: series_order(reach)]
            if reach > SERIES_REACH:
                far = np.nonzero(np.abs(dZ).max(axis=-1) * spread[j] > SERIES_REACH)
        rows = [c[j] for c in coefficients]  # (B, m) or (B, 1) each
        total = rows[-1] * dZ
        for c in reversed(rows[:-1]):
            total += c
            total *= dZ
        change: Array = total.sum(axis=-1) / m
        if far and far[0].size:
            units = _units(j)[far[-1]]
            if series is self.output_rank_one:
                change[far] = self._output_column(units, dZ[far])
            else:
                W = self._weight(self.L)
                dA_up = dZ[far][:, :, None] * W[units][:, None, :]
                change[far], _ = self._above_full(self.L, dA_up)
        return change

    def _through_two_layers(self, j: Array | slice, dZ: Array) -> tuple[Array, Array]:
        """Loss changes for column changes ``dZ[..., b, :]`` of layer L-2 (column ``j[b]``,
        a slice on the grid: views of the coefficients, not copies;
        ``dZ`` (B, m) or a (rows, B, m) grid): layer L-1 by its series
        (``_TwoLayers``) where every sample's change stays within the series' reach and
        short of a kink, the exact path for the rest."""
        two = self.two_layers
        assert two is not None
        m = dZ.shape[-1]
        size = np.abs(dZ)
        reach = size.max(axis=-1) * two.scale[j]  # (..., B): the largest change of A^{L-1}
        near = np.ones(reach.shape, dtype=bool) if two.exact else reach <= TAYLOR_REACH
        if two.margin is not None:
            near &= np.all(size < two.margin[j], axis=-1)
        largest = float(reach[near].max(initial=0.0))
        order = len(two.G) if two.exact else series_order(largest, len(two.G))
        t = dZ[..., None]
        dA = two.G[order - 1][j] * t  # (..., B, m, n_L)
        for G in reversed(two.G[: order - 1]):
            dA += G[j]
            dA *= t
        flat, hit = self._above_full(self.L, dA.reshape(-1, m, dA.shape[-1]))
        change = flat.reshape(reach.shape)
        crossed = np.zeros(reach.shape, dtype=np.int64) if hit is None else hit.reshape(reach.shape)
        far = np.nonzero(~near)
        if far[0].size:
            W = self._weight(self.L - 1)
            dA_up = dZ[far][:, :, None] * W[_units(j)[far[-1]]][:, None, :]
            change[far], exact_hit = self._above_full(self.L - 1, dA_up)
            crossed[far] = 0 if exact_hit is None else exact_hit
        return change, crossed

    def _above_full(self, k: int, dA: Array) -> tuple[Array, Array | None]:
        """Propagate full changes ``dA`` (B, m, n_k) of ``A^k`` to the loss."""
        B, m, _ = dA.shape
        crossed = None
        while True:
            layer = self.layers[k]
            hit = self._crossings(k, layer.A[None], dA, axis=(-2, -1))
            if hit is not None:
                crossed = hit if crossed is None else crossed + hit
            prepared = tuple(x[None] for x in layer.prep)
            act = self.model.activations[k - 1]
            if k == self.L:
                d = dA if self.fused else act.change(layer.A[None], layer.Z[None], dA, prepared)
                return self.loss_fn.change(self.out, self.targets, d), crossed
            dZ = act.change(layer.A[None], layer.Z[None], dA, prepared)
            W = self._weight(k + 1)
            dA = (dZ.reshape(B * m, -1) @ W).reshape(B, m, W.shape[1])
            k += 1


def _units(j: Array | slice) -> Array:
    """The unit numbers ``j`` names (a slice's as an array)."""
    return np.arange(j.start, j.stop) if isinstance(j, slice) else j


def _reaching(size: Array, margin: Array) -> tuple[Array, Array, Array]:
    """Indices ``(row, column, sample)`` of the grid elements whose change ``size``
    (rows, 1 or columns, m) reaches the kink ``margin`` (columns, m) away.

    With one input change per row (the usual case: a uniform step), each row's change
    is first held against every sample's nearest kink over the columns, an array the
    grid's width smaller; only the few (row, sample) pairs that can reach a kink are
    compared column by column.  Scanning the whole grid for a handful of hits cost a
    third of a check's time.
    """
    if size.shape[1] != 1:
        reaches = size >= margin
        if not reaches.any():
            empty = np.empty(0, dtype=np.intp)
            return empty, empty, empty
        rows, cols, samples = np.nonzero(reaches)
        return rows, cols, samples
    rows, samples = np.nonzero(size[:, 0, :] >= margin.min(axis=0))
    pairs, cols = np.nonzero(size[rows, 0, samples][:, None] >= margin.T[samples])
    return rows[pairs], cols, samples[pairs]


# The fast evaluators a model may name in its ``evaluators``: name -> factory
# ``(model, reference parameters, max_memory in bytes) -> probe``.
EVALUATORS: dict[str, Callable[[Any, Params, int], Any]] = {"incremental": IncrementalProbe}
