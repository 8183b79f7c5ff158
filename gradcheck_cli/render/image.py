"""Charts as image files, with matplotlib: an optional extra (``gradcheck-cli[plot]``).

matplotlib is loaded only when an image is asked for (``--plot``): it is not a
dependency of the checker, and it takes longer to import than a whole small check.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InputError, option_ref
from ..core.result import SweepResult

FORMATS = (".png", ".svg")
INSTALL = "pip install 'gradcheck-cli[plot]'"


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise InputError(
            f"{option_ref('plot')} needs matplotlib, an optional extra: {INSTALL}", option="plot"
        ) from None
    matplotlib.use("Agg")  # files only: no window, no display needed
    return importlib.import_module("matplotlib.pyplot")


def write_sweep_image(sweep: SweepResult, path: Path) -> None:
    """The sweep's log-log chart as a PNG or SVG at ``path``."""
    if path.suffix.lower() not in FORMATS:
        raise InputError(f"{str(path)!r} is neither .png nor .svg; e.g. sweep.png", option="plot")
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    for curve in sweep.curves:
        if curve.missing:
            continue
        errors = np.maximum(curve.errors, 1e-17)
        (line,) = axes.loglog(sweep.steps, errors, marker=".", label=curve.method)
        best_step, best_error = curve.best(sweep.steps)
        axes.plot([best_step], [max(best_error, 1e-17)], marker="o", color=line.get_color())
        axes.axvline(curve.auto_step, color=line.get_color(), linestyle=":", linewidth=0.8)
    axes.set_xlabel("relative step h (dotted: the auto step of each method)")
    axes.set_ylabel("max error / max |analytic|")
    axes.set_title(sweep.title)
    axes.legend()
    axes.grid(True, which="major", linewidth=0.3)
    try:
        figure.savefig(path)
    except OSError as exc:
        raise InputError(f"cannot write {str(path)!r} ({exc.strerror}); give a writable path", option="plot") from None
    finally:
        plt.close(figure)
