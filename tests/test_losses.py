import numpy as np
import pytest

from gradcheck_cli.models.activations import series_order
from gradcheck_cli.models.losses import LOSSES, SERIES_REACH, get_loss

from errmodel import assert_scaled_close, assert_within_roundoff

NAMES = list(LOSSES)


def _case(name, rng, m=7, k=3):
    loss = LOSSES[name]
    out = rng.normal(0, 2, size=(m, k))
    return loss, out, loss.make_targets(rng, m, k)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name, rng):
    loss, out, y = _case(name, rng)
    grad = loss.gradient(out, y)
    h = 1e-6
    numeric = np.zeros_like(out)
    for idx in np.ndindex(out.shape):
        e = np.zeros_like(out)
        e[idx] = h
        numeric[idx] = (loss.value(out + e, y) - loss.value(out - e, y)) / (2 * h)
    # Round-off eps |J| / h with |J| of a few units: about 1e-9; truncation is far below.
    assert_scaled_close(grad, numeric, 1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_value_is_analytic_for_complex_step(name, rng):
    loss, out, y = _case(name, rng)
    grad = loss.gradient(out, y)
    h = 1e-30
    for idx in [(0, 0), (3, 1), (6, 2)]:
        e = np.zeros(out.shape, dtype=complex)
        e[idx] = 1j * h
        assert_scaled_close(loss.value(out + e, y).imag / h, grad[idx], 1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_value_accepts_batch_axes(name, rng):
    loss, out, y = _case(name, rng)
    batch = np.stack([out, 2 * out, out - 1])
    np.testing.assert_allclose(loss.value(batch, y), [loss.value(o, y) for o in batch])


@pytest.mark.parametrize("name", NAMES)
def test_change_equals_difference_and_is_more_accurate(name, rng):
    loss, out, y = _case(name, rng)
    d = rng.normal(0, 1e-4, size=out.shape)
    exact = loss.change(out, y, d)
    before, after = loss.value(out, y), loss.value(out + d, y)
    assert_within_roundoff(exact, after - before, before, after)


def test_bce_and_softmax_are_stable_for_huge_logits():
    a = np.array([[800.0, -800.0], [-800.0, 800.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert np.isfinite(LOSSES["bce"].value(a, np.array([[1.0, 0.0], [0.0, 1.0]])))
        assert np.isfinite(LOSSES["softmax-ce"].value(a, np.array([0, 1])))
        assert LOSSES["softmax-ce"].value(a, np.array([1, 0])) == pytest.approx(1600.0)


def test_mse_value_is_the_seed_formula(rng):
    z, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    assert LOSSES["mse"].value(z, y) == pytest.approx(np.sum((z - y) ** 2) / (2 * 5))


def test_unknown_loss_lists_valid_names():
    with pytest.raises(KeyError, match="valid: mse, bce, softmax-ce"):
        get_loss("hinge")


# An 80-bit (or wider) long double is the reference below; where long double is float64
# (macOS on arm64, Windows) there is none finer than the series itself.
EXTENDED = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps / 100


@pytest.mark.skipif(not EXTENDED, reason="long double is float64 here: no extended-precision reference")
@pytest.mark.parametrize("name", list(LOSSES))
def test_the_rank_one_series_is_the_loss_change_to_round_off_up_to_its_reach(name, rng):
    # Moving unit j of the last hidden layer by t_i in sample i moves the output by
    # t_i w_j; the series must give value(out + t w_j) - value(out) far below a
    # float64 loss's round-off, measured against extended precision.
    loss = LOSSES[name]
    m, k = 16, 5
    out = 3 * rng.standard_normal((m, k))
    targets = loss.make_targets(rng, m, k)
    w = rng.standard_normal((4, k))
    series = loss.rank_one(out, targets, w)
    wide = out.astype(np.longdouble)
    scale = max(1.0, abs(float(loss.value(wide, targets))))
    for j in range(len(w)):
        spread = 1.0 if series.spread is None else series.spread[j]
        for reach in (1e-9, 1e-5, SERIES_REACH):
            t = rng.choice([-1.0, 1.0], m) * rng.uniform(0.5, 1.0, m) * reach / spread
            order = len(series.coefficients) if series.spread is None else series_order(reach)
            value = sum(c[j] * t ** (n + 1) for n, c in enumerate(series.coefficients[:order])).sum() / m
            exact = loss.value(wide + t[:, None] * w[j].astype(np.longdouble), targets) - loss.value(wide, targets)
            assert abs(value - float(exact)) <= 1e-17 * scale, (reach, order)
