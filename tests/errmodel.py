"""Numeric assertions made against the tool's own error model, never a bare relative error.

A relative error at an entry near zero measures round-off, not correctness, and
differs between CPUs, BLAS builds and thread counts.  These helpers bound a
difference by what the tool itself says the round-off can be, or normalise it by
``max(1, |expected|)`` as scipy's ``check_derivative`` does.
"""

import numpy as np

from gradcheck_cli.core.estimates import EPS64
from gradcheck_cli.numerics.steps import LOSS_ROUNDOFF


def scaled_error(actual, expected):
    """``|actual - expected| / max(1, |expected|)``, entrywise."""
    expected = np.asarray(expected)
    return np.abs(np.asarray(actual) - expected) / np.maximum(1.0, np.abs(expected))


def assert_scaled_close(actual, expected, tol):
    err = scaled_error(actual, expected)
    assert np.all(err <= tol), f"largest scaled error {err.max():.3g} > {tol:g}"


def difference_roundoff(*values):
    """The tool's round-off bound for a difference of values of these sizes
    (``numeric.loss_roundoff``: ``LOSS_ROUNDOFF * eps * max |value|``)."""
    return LOSS_ROUNDOFF * EPS64 * np.maximum.reduce([np.abs(np.asarray(v, dtype=float)) for v in values])


def assert_within_roundoff(actual, expected, *values):
    """``|actual - expected|`` within the round-off of a difference of ``values``."""
    bound = difference_roundoff(*values)
    err = np.abs(np.asarray(actual) - np.asarray(expected))
    assert np.all(err <= bound), f"largest error {err.max():.3g}, bound there {bound.flat[np.argmax(err - bound)]:.3g}"
