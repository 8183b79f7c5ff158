"""Residuals with hand-written Jacobians: what ``scipy.optimize.least_squares`` takes as ``jac=``.

A curve fit, ``r_i(theta) = a exp(-k t_i) + c - y_i`` (40 points, 3 parameters):

    gradcheck func examples/least_squares.py:residuals --jac examples/least_squares.py:jacobian --param theta=3
    gradcheck func examples/least_squares.py:residuals --jac examples/least_squares.py:jacobian_transposed \
        --param theta=3

The transposed Jacobian, (3, 40), has the wrong shape for (40, 3): gradcheck says
so and exits 2.  A square system, a 1-D convection-reaction equation on n points,

    r_i(u) = (u_{i-1} - 2 u_i + u_{i+1}) / dx^2 + v (u_{i+1} - u_{i-1}) / (2 dx) + lam exp(u_i),

has a tridiagonal Jacobian; its transpose has the right shape and the wrong
values (convection makes it unsymmetric), and the report says it looks transposed:

    gradcheck func examples/least_squares.py:convection --jac examples/least_squares.py:convection_jacobian \
        --param u=12
    gradcheck func examples/least_squares.py:convection \
        --jac examples/least_squares.py:convection_jacobian_transposed --param u=12

With the pattern declared (``--sparsity``: an .npz with a boolean mask for u) the
columns that share no residual are moved together, three evaluations per side
instead of one per point (see ``benchmarks/bench_jacobian.py``).
"""

import numpy as np

_rng = np.random.default_rng(0)
T = np.linspace(0, 4, 40)
Y = 2.0 * np.exp(-1.3 * T) + 0.5 + 0.01 * _rng.standard_normal(T.size)


def residuals(theta):
    a, k, c = theta
    return a * np.exp(-k * T) + c - Y


def jacobian(theta):
    """(40, 3): d r_i / d (a, k, c)."""
    a, k, _ = theta
    e = np.exp(-k * T)
    return np.stack([e, -a * T * e, np.ones_like(T)], axis=1)


def jacobian_transposed(theta):
    """The same numbers as (3, 40): rows and columns swapped."""
    return jacobian(theta).T


# ---- a square system with a banded Jacobian ----------------------------------

VELOCITY, LAMBDA = 3.0, 0.5


def convection(u):
    n = u.size
    dx = 1.0 / (n + 1)
    padded = np.concatenate([[0.0], u, [0.0]])  # u = 0 at both ends
    left, right = padded[:-2], padded[2:]
    return (left - 2 * u + right) / dx**2 + VELOCITY * (right - left) / (2 * dx) + LAMBDA * np.exp(u)


def convection_jacobian(u):
    """(n, n), tridiagonal: 1/dx^2 -+ v/(2 dx) off the diagonal, -2/dx^2 + lam exp(u) on it."""
    n = u.size
    dx = 1.0 / (n + 1)
    jac = np.diag(-2 / dx**2 + LAMBDA * np.exp(u))
    jac += np.diag(np.full(n - 1, 1 / dx**2 + VELOCITY / (2 * dx)), k=1)
    jac += np.diag(np.full(n - 1, 1 / dx**2 - VELOCITY / (2 * dx)), k=-1)
    return jac


def convection_jacobian_transposed(u):
    return convection_jacobian(u).T


def convection_sparsity(n):
    """The tridiagonal pattern: True where a residual may depend on a point."""
    i = np.arange(n)
    return np.abs(i[:, None] - i[None, :]) <= 1
