"""A two-layer network written by hand: its loss, its backward pass, and a wrong one.

    H = tanh(X W1 + b1)          X: (20, 4), W1: (4, 8), b1: (8,)
    J = 1/(2m) ||H W2 + b2 - Y||^2     W2: (8, 2), b2: (2,), Y: (20, 2)

Check it:

    gradcheck func examples/two_layer.py:loss --grad examples/two_layer.py:grad \\
        --param W1=4x8 --param b1=8 --param W2=8x2 --param b2=2

and see the checker catch the wrong one (``--grad examples/two_layer.py:grad_wrong``).
"""

import numpy as np

_rng = np.random.default_rng(7)
X = _rng.standard_normal((20, 4))
Y = _rng.standard_normal((20, 2))


def loss(W1, b1, W2, b2):
    H = np.tanh(X @ W1 + b1)
    R = H @ W2 + b2 - Y
    return 0.5 * np.sum(R * R) / len(X)


def grad(W1, b1, W2, b2):
    A1 = X @ W1 + b1
    H = np.tanh(A1)
    D2 = (H @ W2 + b2 - Y) / len(X)  # dJ/d(output): (20, 2)
    D1 = (D2 @ W2.T) * (1 - H * H)  # tanh'(A1) = 1 - H^2, written from the output: valid for tanh
    return {"W1": X.T @ D1, "b1": D1.sum(axis=0), "W2": H.T @ D2, "b2": D2.sum(axis=0)}


def grad_wrong(W1, b1, W2, b2):
    """Every shape right, and wrong: tanh' applied to the output H instead of to A1."""
    H = np.tanh(X @ W1 + b1)
    D2 = (H @ W2 + b2 - Y) / len(X)
    D1 = (D2 @ W2.T) * (1 - np.tanh(H) ** 2)
    return {"W1": X.T @ D1, "b1": D1.sum(axis=0), "W2": H.T @ D2, "b2": D2.sum(axis=0)}
