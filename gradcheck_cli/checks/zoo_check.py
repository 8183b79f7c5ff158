"""Running the zoo: every mistake of the catalogue against the checker, on one model.

For each mistake that can show on the model (``Mistake.needs``), the model is
built with it in (``zoo.inject``) and checked with every method in full mode, in
directional mode and in sample mode.  A check *catches* the mistake when it fails
every parameter the mistake changes (``zoo.affected``).  The correct model is
checked the same way and must pass every time.  The zoo exits 0 only when the
correct model passes and every mistake that can show is caught by every method
and by directional mode (sample mode may miss a mistake confined to entries it
did not draw: reported, not required): a self-test a user can run on their own
machine.
"""

from __future__ import annotations

import math

from ..core.result import ZOO_CHECKS, Report, ZooReport, ZooRow
from ..insight.zoo import MISTAKES, Mistake, affected, inject
from ..models import MLP, MLPSpec
from .gradient import check_model

# The zoo's default model: a square weight and two equal-shaped ones, tanh hidden
# layers, so every mistake but the softmax one can show.
ZOO_LAYERS = (4, 6, 6, 6, 3)


def _run(model: MLP, method: str, mode: str, seed: int) -> Report:
    return check_model(model, method=method, mode=mode, seed=seed, directions=4, samples=8)


def _row(mistake: Mistake, spec: MLPSpec, seed: int) -> ZooRow:
    row = ZooRow(mistake.name, mistake.description, mistake.formula, mistake.needs(spec))
    if row.reason is not None:
        return row
    row.expected = affected(mistake, spec)
    model = inject(mistake, spec)
    for label, method, mode in ZOO_CHECKS:
        report = _run(model, method, mode, seed)
        failed = [p.name for p in report.parameters if p.status == "FAIL"]
        row.caught[label] = report.status == "FAIL" and set(row.expected) <= set(failed)
        if label == "central":
            row.failed = failed
            rows = [p for p in report.parameters if p.status == "FAIL"]
            row.max_rel_error = max((float(p.rel_error.max()) for p in rows), default=math.nan)
            row.diagnosis = next((p.diagnosis for p in rows if p.diagnosis), None)
    return row


def check_zoo(spec: MLPSpec, mistakes: tuple[Mistake, ...] = MISTAKES) -> ZooReport:
    """Every mistake of ``mistakes`` against the checker on the model of ``spec``."""
    right = MLP(spec)
    correct = {label: _run(right, method, mode, spec.seed).passed for label, method, mode in ZOO_CHECKS}
    rows = [_row(m, spec, spec.seed) for m in mistakes]
    return ZooReport(f"zoo of {spec.title()}", correct, rows)
