"""A kink: J(W) = sum |W|.  At W = 0 any value in [-1, 1] is a valid subgradient.

gradcheck func examples/abs_sum.py:loss --grad examples/abs_sum.py:grad --init zeros.npz
"""

import numpy as np


def loss(W):
    return np.sum(np.abs(W))


def grad(W):
    return {"W": np.sign(W)}  # sign(0) = 0: inside [-1, 1]


def grad_outside(W):
    return {"W": np.where(W == 0, 2.0, np.sign(W))}  # 2 at the kink: no subgradient of |w|
