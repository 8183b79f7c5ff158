"""Documented limits, checked before anything is built or run.

A size that cannot be allocated, or a file far larger than any real suite, is
refused up front with the size it would need, instead of running out of memory
(or time) with no output.
"""

from __future__ import annotations

from .errors import InputError

MAX_ARRAY_BYTES = 2 * 2**30  # arrays a model or a check allocates up front (data, parameters, caches)
MAX_LAYERS = 1000  # layers of an MLP
MAX_SUITE_BYTES = 2**20  # a suite file
MAX_CHECKS = 1000  # checks in one suite


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes} bytes"


def require_bytes(nbytes: int, what: str, option: str) -> None:
    """Refuse ``what`` when it needs more than ``MAX_ARRAY_BYTES``."""
    if nbytes > MAX_ARRAY_BYTES:
        raise InputError(
            f"{what} needs {_size(nbytes)} of memory; the limit is {_size(MAX_ARRAY_BYTES)}: give smaller sizes",
            option=option,
        )
