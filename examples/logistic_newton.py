"""Logistic regression for Newton's method: loss, gradient, Hessian and Hessian-vector product.

    J(w) = mean(log(1 + exp(X w)) - y * (X w)),   grad = X^T (s - y) / m,
    H = X^T diag(s (1 - s)) X / m,   s = sigmoid(X w)

The data (X: 50 x 4, y) are fixed in this module:

    gradcheck func examples/logistic_newton.py:loss --grad examples/logistic_newton.py:grad --param w=4
    gradcheck func examples/logistic_newton.py:loss --grad examples/logistic_newton.py:grad \
        --hess examples/logistic_newton.py:hessian --param w=4
    gradcheck func examples/logistic_newton.py:loss --grad examples/logistic_newton.py:grad \
        --hess examples/logistic_newton.py:hessian_wrong --param w=4
    gradcheck func examples/logistic_newton.py:loss --hvp examples/logistic_newton.py:hvp --param w=4

Without ``--grad`` the Hessian is held against second differences of the loss.
"""

import numpy as np

_rng = np.random.default_rng(0)
X = _rng.standard_normal((50, 4))
y = (_rng.random(50) < 1 / (1 + np.exp(-X @ np.array([1.0, -2.0, 0.5, 0.0])))).astype(float)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def loss(w):
    z = X @ w
    return np.mean(np.log(1 + np.exp(z)) - y * z)  # not logaddexp: that takes no complex step


def grad(w):
    return {"w": X.T @ (_sigmoid(X @ w) - y) / len(y)}


def hessian(w):
    """(4, 4) = X^T diag(s (1 - s)) X / m."""
    s = _sigmoid(X @ w)
    return (X.T * (s * (1 - s))) @ X / len(y)


def hessian_wrong(w):
    """The weights s (1 - s) dropped: X^T X / m, the Hessian of least squares."""
    return X.T @ X / len(y)


def hvp(v, w):
    """H v without forming H: X^T (s (1 - s) * (X v)) / m."""
    s = _sigmoid(X @ w)
    return {"w": X.T @ (s * (1 - s) * (X @ v["w"])) / len(y)}


def hvp_wrong(v, w):
    """s (1 - s) replaced by s: a shape-correct slip."""
    s = _sigmoid(X @ w)
    return {"w": X.T @ (s * (X @ v["w"])) / len(y)}
