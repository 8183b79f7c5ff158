"""Layers with hand-written backward passes, each with one shape-correct mistake.

Each ``*_forward`` returns ``(out, cache)``; each ``*_backward(dout, cache)``
returns the gradients of every input in order.  The ``*_wrong`` backward passes
have the right shapes and the wrong values: what dimension matching lets through.

    gradcheck func examples/layers.py:affine_forward --vjp examples/layers.py:affine_backward \
        --param x=8x4 --param w=4x5 --param b=5
    gradcheck func examples/layers.py:relu_forward --vjp examples/layers.py:relu_backward --param x=6x5
    gradcheck func examples/layers.py:batchnorm_forward --vjp examples/layers.py:batchnorm_backward \
        --param x=16x4 --param gamma=4 --param beta=4
    gradcheck func examples/layers.py:conv_forward --vjp examples/layers.py:conv_backward \
        --param x=2x3x6x6 --param w=4x3x3x3 --param b=4 --const stride=1 --const pad=1
    gradcheck func examples/layers.py:max_pool_forward --vjp examples/layers.py:max_pool_backward \
        --param x=2x3x4x4 --const size=2
    gradcheck func examples/layers.py:affine_forward --jvp examples/layers.py:affine_jvp \
        --param x=8x4 --param w=4x5 --param b=5
    gradcheck func examples/layers.py:softmax_loss --grad examples/layers.py:softmax_grad \
        --param scores=8x5 --data examples/labels.npz

Swap ``_backward`` for ``_backward_wrong`` (``softmax_grad`` for
``softmax_grad_wrong``) and the check fails on the inputs the mistake touches.
"""

import numpy as np

# ---- affine: out = x w + b ---------------------------------------------------


def affine_forward(x, w, b):
    """x: (N, D), w: (D, M), b: (M,) -> out: (N, M)."""
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    """dx: (N, D) = dout wᵀ, dw: (D, M) = xᵀ dout, db: (M,) = sum over the batch."""
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_wrong(dout, cache):
    """db averaged over the batch instead of summed: right shape, 1/N too small."""
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)


def affine_jvp(tangents, x, w, b):
    """Forward mode: d out = dx w + x dw + db along the tangents (dx, dw, db)."""
    return tangents["x"] @ w + x @ tangents["w"] + tangents["b"]


def affine_jvp_wrong(tangents, x, w, b):
    """The bias's tangent left out."""
    return tangents["x"] @ w + x @ tangents["w"]


# ---- relu --------------------------------------------------------------------


def relu_forward(x):
    out = np.maximum(0, x)
    return out, (x, out)


def relu_backward(dout, cache):
    x, _ = cache
    return (dout * (x > 0),)


def relu_backward_wrong(dout, cache):
    """The mask taken from the output with >=: every entry passes (out >= 0 always)."""
    _, out = cache
    return (dout * (out >= 0),)


# ---- batch normalisation (training mode) -------------------------------------

BN_EPS = 1e-5


def batchnorm_forward(x, gamma, beta):
    """x: (N, D), gamma, beta: (D,)."""
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)  # not x.var(): that takes |.|, which a complex step cannot pass
    inv_std = 1.0 / np.sqrt(var + BN_EPS)
    xhat = (x - mu) * inv_std
    return gamma * xhat + beta, (xhat, gamma, inv_std)


def batchnorm_backward(dout, cache):
    """dx = gamma inv_std / N (N dout - sum(dout) - xhat sum(dout xhat))."""
    xhat, gamma, inv_std = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = gamma * inv_std / n * (n * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def batchnorm_backward_wrong(dout, cache):
    """Without the mean's term (- sum(dout)): as if the batch mean were a constant."""
    xhat, gamma, inv_std = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = gamma * inv_std / n * (n * dout - xhat * dgamma)
    return dx, dgamma, dbeta


# ---- naive 2-D convolution (cross-correlation, as deep-learning layers do) ---


def conv_forward(x, w, b, stride, pad):
    """x: (N, C, H, W), w: (F, C, HH, WW), b: (F,) -> out: (N, F, H', W')."""
    n, _, h, wd = x.shape
    f, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = 1 + (h + 2 * pad - hh) // stride, 1 + (wd + 2 * pad - ww) // stride
    out = np.zeros((n, f, ho, wo), dtype=np.result_type(x, w, b))
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * stride : i * stride + hh, j * stride : j * stride + ww]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, stride, pad)


def _conv_backward(dout, cache, flip):
    x, w, stride, pad = cache
    _, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    kernel = w[:, :, ::-1, ::-1] if flip else w
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = xp[:, :, i * stride : i * stride + hh, j * stride : j * stride + ww]
            g = dout[:, :, i, j]  # (N, F)
            dw += np.tensordot(g, window, axes=([0], [0]))
            back = np.tensordot(g, kernel, axes=([1], [0]))  # (N, C, HH, WW)
            dxp[:, :, i * stride : i * stride + hh, j * stride : j * stride + ww] += back
    dx = dxp[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return dx, dw, dout.sum(axis=(0, 2, 3))


def conv_backward(dout, cache):
    """Each output position sends dout times the kernel back to its window."""
    return _conv_backward(dout, cache, flip=False)


def conv_backward_wrong(dout, cache):
    """The kernel flipped in dx (a true convolution's backward, applied to a
    cross-correlation): right shapes, wrong dx."""
    return _conv_backward(dout, cache, flip=True)


# ---- max pooling -------------------------------------------------------------


def max_pool_forward(x, size):
    """x: (N, C, H, W), non-overlapping size x size windows."""
    n, c, h, w = x.shape
    windows = x.reshape(n, c, h // size, size, w // size, size)
    return windows.max(axis=(3, 5)), (x, size)


def max_pool_backward(dout, cache):
    """The gradient goes to each window's maximum."""
    x, size = cache
    n, c, h, w = x.shape
    windows = x.reshape(n, c, h // size, size, w // size, size)
    top = windows == windows.max(axis=(3, 5), keepdims=True)
    dx = top * dout[:, :, :, None, :, None]
    return (dx.reshape(x.shape),)


def max_pool_backward_wrong(dout, cache):
    """The gradient spread evenly over the window (average pooling's backward)."""
    x, size = cache
    dx = np.repeat(np.repeat(dout, size, axis=2), size, axis=3) / size**2
    return (dx.reshape(x.shape),)


# ---- softmax cross-entropy loss ----------------------------------------------


def softmax_loss(scores, y):
    """Mean cross-entropy of (N, K) scores against integer labels y: (N,)."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y.astype(int)].mean()


def _softmax(scores):
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_grad(scores, y):
    """(softmax - one_hot(y)) / N."""
    p = _softmax(scores)
    p[np.arange(len(y)), y.astype(int)] -= 1
    return {"scores": p / len(y)}


def softmax_grad_wrong(scores, y):
    """The softmax alone, without subtracting the one-hot: right shape, wrong values."""
    return {"scores": _softmax(scores) / len(y)}
