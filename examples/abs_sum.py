"""A kink: J(W) = sum |W|.  At W = 0 any value in [-1, 1] is a valid subgradient.

``abs_sum_start.npz`` (shipped beside this file) holds a 3x4 ``W`` with six exact
zeros, so six entries sit on the kink:

    gradcheck func examples/abs_sum.py:loss --grad examples/abs_sum.py:grad --init examples/abs_sum_start.npz
    gradcheck func examples/abs_sum.py:loss --grad examples/abs_sum.py:grad_outside --init examples/abs_sum_start.npz

The first passes (sign(0) = 0 lies in [-1, 1]); the second fails (2 does not).
"""

import numpy as np


def loss(W):
    return np.sum(np.abs(W))


def grad(W):
    return {"W": np.sign(W)}  # sign(0) = 0: inside [-1, 1]


def grad_outside(W):
    return {"W": np.where(W == 0, 2.0, np.sign(W))}  # 2 at the kink: no subgradient of |w|
