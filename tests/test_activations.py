import numpy as np
import pytest

from gradcheck_cli.models.activations import ACTIVATIONS, get_activation

from errmodel import assert_scaled_close, assert_within_roundoff

NAMES = list(ACTIVATIONS)


def _points(rng, kinked):
    a = rng.uniform(-4, 4, size=200)
    if kinked:  # keep central differences away from the kink at 0
        a = a[np.abs(a) > 1e-3]
    return a


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_finite_difference(name, rng):
    act = ACTIVATIONS[name]
    a = _points(rng, act.kink)
    h = 1e-6
    numeric = (act.forward(a + h) - act.forward(a - h)) / (2 * h)
    # Round-off eps |f| / h (|f| <= 4 here) plus truncation h^2 |f(3)| / 6: about 1e-9.
    assert_scaled_close(act.derivative(a), numeric, 1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_complex_step(name, rng):
    act = ACTIVATIONS[name]
    a = _points(rng, act.kink)
    h = 1e-30
    numeric = act.forward(a + 1j * h).imag / h
    assert_scaled_close(act.derivative(a), numeric, 1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_shortcut_from_output_agrees_where_documented_valid(name, rng):
    act = ACTIVATIONS[name]
    a = _points(rng, act.kink)
    assert_scaled_close(act.derivative_from_output(act.forward(a)), act.derivative(a), 1e-12)


def test_derivative_of_output_is_the_classic_bug(rng):
    """Feeding Z instead of A to sigma' keeps the shape and changes the numbers."""
    act = ACTIVATIONS["sigmoid"]
    a = rng.uniform(-3, 3, size=(4, 5))
    wrong = act.derivative(act.forward(a))
    assert wrong.shape == a.shape
    assert np.max(np.abs(wrong - act.derivative(a))) > 1e-2


@pytest.mark.parametrize("name", NAMES)
def test_change_equals_difference_of_forward(name, rng):
    act = ACTIVATIONS[name]
    a = rng.uniform(-4, 4, size=100)
    d = rng.uniform(-1e-3, 1e-3, size=100)
    before, after = act.forward(a), act.forward(a + d)
    # The plain difference carries the round-off of two values of size |f|.
    assert_within_roundoff(act.change(a, before, d), after - before, before, after)


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "tanh", "elu"])
def test_forward_does_not_overflow(name):
    act = ACTIVATIONS[name]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = act.forward(np.array([-800.0, 0.0, 800.0]))
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", NAMES)
def test_forward_keeps_float32(name):
    a = np.linspace(-2, 2, 7, dtype=np.float32)
    act = ACTIVATIONS[name]
    assert act.forward(a).dtype == np.float32
    assert act.derivative(a).dtype == np.float32


def test_unknown_activation_lists_valid_names():
    with pytest.raises(KeyError, match="valid: identity, sigmoid, tanh, relu, leaky_relu, softplus, elu"):
        get_activation("swish")
