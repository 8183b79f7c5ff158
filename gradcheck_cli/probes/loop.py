"""The probe protocol and the plain loop: one evaluation of the loss per move.

A probe is what the checks take finite differences through: ``LoopProbe`` works for
any loss (in this process, on worker processes or on Dask, through a runner); a model
may offer a faster one (the MLP's incremental engine, ``probes.engine``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..core.estimates import Evaluation
from ..execution.evaluation import Job, Moves, ScalarReader, call_recording
from ..execution.workers import Forecast, InProcess, Runner
from ..numerics.steps import loss_roundoff

Array = npt.NDArray[Any]
Params = dict[str, Array]


@dataclass(frozen=True)
class Planned:
    """What a check plans for one parameter, for the time guard: ``moves``
    evaluations of ``entries`` single entries (or, when ``along``, of directions),
    at steps up to ``step``, and ``extra`` evaluations beyond them (a black box's
    second look and noise, or the truncation measured at a quarter step)."""

    name: str
    entries: int
    moves: int
    step: float
    along: bool = False
    extra: int = 0


class Probe(Protocol):
    """A loss evaluator: what the check needs to take finite differences.

    ``LoopProbe`` (below) works for any loss; a model may offer a faster one (the
    MLP's incremental engine).  ``entries`` moves single entries of a parameter,
    ``along`` moves a whole parameter along unit directions.
    """

    base: float
    evaluations: int
    progress: Callable[[int], None] | None
    engine_name: str

    def entries(self, name: str, flat: Array, steps: Array) -> Evaluation: ...

    def along(self, name: str, directions: Array, steps: Array) -> Evaluation: ...

    def forecast(self, plan: list[Planned]) -> Forecast: ...


class LoopProbe:
    """Evaluates the loss once per perturbation: the plain reference path.

    ``loss`` takes a dict of arrays and returns a scalar.  ``kink_pattern``, when
    given, returns an array that changes whenever a perturbation crosses a kink.
    ``black_box`` (a user's function): a non-finite loss at a moved point is
    reported as nan (the step left the function's domain; a smaller one may not)
    and, under a complex step, a real-valued loss as a zero derivative (the
    parameter does not reach the output) rather than refused at once.
    ``output_eps`` is the relative precision the loss computes in, read from the
    type of its value (float32 arithmetic inside gives a float32 value).
    """

    engine_name = "loop"

    def __init__(
        self,
        loss: Callable[[Params], Any],
        params: Params,
        kink_pattern: Callable[[Params], Array | None] | None = None,
        where: str = "loss",
        black_box: bool = False,
        runner: Runner | None = None,
    ) -> None:
        self.black_box = black_box
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.runner = runner if runner is not None else InProcess()
        self.job = Job(loss, self.params, ScalarReader(where, black_box), kink_pattern)
        began = time.perf_counter()
        first = self._call("at the starting point")
        self.runner.observe(time.perf_counter() - began)
        self.base = float(np.real(first))
        self.output_eps = self.job.reader.eps
        self.evaluations = 1
        self.progress: Callable[[int], None] | None = None

    def _call(self, context: str) -> complex | float:
        raw, dropped = call_recording(self.job.where, self.job.function, self.params)
        reader = self.job.reader
        assert isinstance(reader, ScalarReader)
        value, _ = reader.read(raw, dropped, False, context, moved=False)
        return value

    def _run(self, moves: Moves) -> Evaluation:
        out = self.runner.run(self.job, moves, self.progress)
        self.evaluations += len(moves)
        change = out["value"] - self.base
        crossed = out["crossed"] if self.job.kink_pattern is not None else None
        return Evaluation(change, loss_roundoff(self.base, change, self.output_eps), crossed, out["real"])

    def entries(self, name: str, flat: Array, steps: Array) -> Evaluation:
        """``J(x + steps[k] e_{flat[k]}) - J(x)`` for each k, one loss call each."""
        return self._run(Moves.entries(name, flat, steps))

    def along(self, name: str, directions: Array, steps: Array) -> Evaluation:
        """``J(x + steps[k] v_k) - J(x)`` for each unit direction ``v_k`` (rows of ``directions``)."""
        steps = np.asarray(steps)
        changes = steps[:, None] * np.asarray(directions).reshape(len(steps), -1)
        return self._run(Moves.dense(name, changes))

    def forecast(self, plan: list[Planned]) -> Forecast:
        """The plan's evaluations (and the starting point's second look) at the measured
        time of one, where the runner runs them."""
        return self.runner.forecast(2 + sum(p.moves + p.extra for p in plan))

    def repeat_base(self) -> float:
        """The loss at the starting point once more (a determinism check)."""
        self.evaluations += 1
        began = time.perf_counter()
        value = float(np.real(self._call("at the starting point, called again")))
        self.runner.observe(time.perf_counter() - began)
        return value
