"""Flat indices as a user reads them: ``[1, 0]``, the one way every message writes them."""

from __future__ import annotations

import numpy as np


def entry_index(shape: tuple[int, ...], flat: int) -> list[int]:
    """The multi-index of entry ``flat`` of an array of ``shape`` (empty for a scalar)."""
    return [int(i) for i in np.unravel_index(int(flat), shape)] if shape else []


def format_index(shape: tuple[int, ...], flat: int) -> str:
    """``[i, j]`` for entry ``flat`` (``[]`` for a scalar)."""
    return "[" + ", ".join(map(str, entry_index(shape, flat))) + "]"
