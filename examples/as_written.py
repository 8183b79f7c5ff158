"""Derivative code in the conventions people already write it in, checked as it is.

Each function here follows a public convention (scipy's, CS231n's, numpy-ml's);
docs/as-it-is.md runs gradcheck on each with no glue code.  Written for this
repository in the style of those sources.
"""

from math import pi, sqrt

import numpy as np

# ---- scipy.optimize: functions of one array --------------------------------------------------


def rosen(x):
    """The Rosenbrock function, as scipy.optimize.rosen."""
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def rosen_der(x):
    """Its gradient, returned as a bare array (scipy's jac= convention)."""
    der = np.zeros_like(x)
    der[1:-1] = 200 * (x[1:-1] - x[:-2] ** 2) - 400 * (x[2:] - x[1:-1] ** 2) * x[1:-1] - 2 * (1 - x[1:-1])
    der[0] = -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])
    der[-1] = 200 * (x[-1] - x[-2] ** 2)
    return der


def rosen_hess_prod(x, p):
    """Its Hessian times p, scipy's hessp(x, p) convention."""
    hp = np.zeros_like(x)
    hp[0] = (1200 * x[0] ** 2 - 400 * x[1] + 2) * p[0] - 400 * x[0] * p[1]
    hp[1:-1] = -400 * x[:-2] * p[:-2] + (202 + 1200 * x[1:-1] ** 2 - 400 * x[2:]) * p[1:-1] - 400 * x[1:-1] * p[2:]
    hp[-1] = -400 * x[-2] * p[-2] + 200 * p[-1]
    return hp


class Problem:
    """A test problem that keeps fun and jac on an object (scipy's benchmark style)."""

    def __init__(self, scale):
        self.scale = scale

    def fun(self, x):
        return self.scale * rosen(x)

    def jac(self, x):
        return self.scale * rosen_der(x)


problem = Problem(0.5)


def soft_l1(z):
    """A robust loss as scipy.optimize.least_squares takes it: rows rho, rho', rho''.
    Name a row as a target: soft_l1[0], soft_l1[1], soft_l1[2]."""
    t = 1 + z
    return np.vstack([2 * (t**0.5 - 1), t**-0.5, -0.5 * t**-1.5])


# ---- CS231n: (loss, dx) pairs, layers with caches, keepdims --------------------------------------


def softmax_loss(x, y):
    """Returns (loss, dx): check it with --value-and-grad."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows, labels = np.arange(x.shape[0]), y.astype(int)
    dx = np.exp(log_probs)
    dx[rows, labels] -= 1
    return -log_probs[rows, labels].mean(), dx / x.shape[0]


def affine_forward(x, w, b):
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    """db with keepdims=True: shape (1, M) for a (M,) bias."""
    x, w = cache
    return {"x": dout @ w.T, "w": x.T @ dout, "b": dout.sum(axis=0, keepdims=True)}


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """Two outputs and a cache: (next_h, next_c, cache)."""
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o, g = _sigmoid(a[:, :H]), _sigmoid(a[:, H : 2 * H]), _sigmoid(a[:, 2 * H : 3 * H]), np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    return o * np.tanh(next_c), next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """One dout per output; writes into dnext_c, as the original does."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    do = dnext_h * tanh_c
    dnext_c += dnext_h * o * (1 - tanh_c**2)
    di, df, dg = dnext_c * g, dnext_c * prev_c, dnext_c * i
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)])
    return {
        "x": da @ Wx.T,
        "prev_h": da @ Wh.T,
        "prev_c": dnext_c * f,
        "Wx": x.T @ da,
        "Wh": prev_h.T @ da,
        "b": da.sum(axis=0),
    }


# ---- numpy-ml: activation objects, layers that keep their cache ----------------------------------


class GELU:
    """fn(z) beside grad(x) and grad2(x): the names differ, the input is positional."""

    def fn(self, z):
        return 0.5 * z * (1 + np.tanh(sqrt(2 / pi) * (z + 0.044715 * z**3)))

    def grad(self, x):
        s, c = sqrt(2 / pi), 0.044715
        t = np.tanh(s * (x + c * x**3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * s * (1 + 3 * c * x**2)

    def grad2(self, x):
        s, c = sqrt(2 / pi), 0.044715
        u = s * (x + c * x**3)
        t, du = np.tanh(u), s * (1 + 3 * c * x**2)
        return (1 - t**2) * du - x * t * (1 - t**2) * du**2 + 0.5 * x * (1 - t**2) * s * 6 * c * x


gelu = GELU()


class Dense:
    """forward(X) stores X on self; backward(dLdy) reads it and accumulates dW, db."""

    def __init__(self, n_in, n_out, seed=0):
        rng = np.random.default_rng(seed)
        self.W, self.b = rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out)
        self.gradients = {"W": np.zeros_like(self.W), "b": np.zeros_like(self.b)}

    def forward(self, X):
        self.X = X
        return np.tanh(X @ self.W + self.b)

    def backward(self, dLdy):
        dZ = dLdy * (1 - np.tanh(self.X @ self.W + self.b) ** 2)
        self.gradients["W"] += self.X.T @ dZ
        self.gradients["b"] += dZ.sum(axis=0)
        return dZ @ self.W.T


layer = Dense(4, 3)
