import numpy as np
import pytest

from gradcheck_cli import check_gradients, check_model
from gradcheck_cli.core.methods import METHOD, METHODS
from gradcheck_cli.core.text import report_as_text as report_to_text
from gradcheck_cli.models import MLP, LinearRegression, LinRegSpec, MLPSpec
from gradcheck_cli.numerics.differences import numerical_derivatives
from gradcheck_cli.numerics.steps import absolute_steps
from gradcheck_cli.numerics.taylor import taylor_test
from gradcheck_cli.probes.loop import LoopProbe

from errmodel import scaled_error


def _derivatives(f, x, method, rel=None):
    """Numerical derivative of a scalar function of a vector, every entry, via the loop probe."""
    probe = LoopProbe(lambda p: f(p["x"]), {"x": x})
    flat = np.arange(x.size)
    h = absolute_steps(x, rel or METHOD[method].auto_step, METHOD[method])
    return numerical_derivatives(
        lambda steps, subset: probe.entries("x", flat if subset is None else flat[subset], steps), h, METHOD[method]
    )


KNOWN = [
    ("sin*exp", lambda x: np.sum(np.sin(x) * np.exp(x)), lambda x: np.cos(x) * np.exp(x) + np.sin(x) * np.exp(x)),
    ("log1p(x^2)", lambda x: np.sum(np.log1p(x * x)), lambda x: 2 * x / (1 + x * x)),
    ("x^5 big values", lambda x: np.sum(x**5), lambda x: 5 * x**4),
]


@pytest.mark.parametrize("name, f, df", KNOWN, ids=[k[0] for k in KNOWN])
def test_method_accuracy_ordering_on_known_functions(name, f, df, rng):
    x = rng.uniform(0.5, 2, size=40) * rng.choice([-1, 1], size=40)
    if name == "x^5 big values":
        x = x * 50
    exact = df(x)
    errors = {m: np.max(scaled_error(_derivatives(f, x, m).values, exact)) for m in METHODS}
    assert errors["complex"] <= 1e-13
    assert errors["richardson"] < errors["central"] < errors["forward"]
    assert errors["central"] < 1e-7 and errors["forward"] < 1e-4


@pytest.mark.parametrize(
    "build",
    [
        lambda seed: MLP(MLPSpec.build([4, 6, 3], seed=seed)),
        lambda seed: MLP(MLPSpec.build([3, 5, 4], activation="softplus", loss="softmax-ce", seed=seed)),
        lambda seed: MLP(MLPSpec.build([3, 5, 2], activation="sigmoid", loss="bce", bias=False, seed=seed)),
        lambda seed: LinearRegression(LinRegSpec.build(m=50, l2=0.3, seed=seed)),
    ],
    ids=["tanh-mse", "softplus-ce", "sigmoid-bce-nobias", "linreg-ridge"],
)
def test_method_accuracy_on_every_builtin_model(build, seed):
    """Each method's error against the analytic gradient: the complex step's is within
    its own round-off model alone (no tolerance), and the methods rank by order."""
    model = build(seed)
    median = {}
    for method in METHODS:
        report = check_model(
            model, method=method, rtol=0 if method == "complex" else None, atol=0 if method == "complex" else None
        )
        median[method] = max(float(np.median(scaled_error(p.numerical, p.analytic))) for p in report.parameters)
        if method == "complex":
            assert report.passed, report_to_text(report)
    assert median["richardson"] < median["central"] < median["forward"]


def test_step_is_relative_to_magnitude_and_remeasured():
    x = np.array([0.0, 1e-3, 3.0, -1e4])
    h = absolute_steps(x, 1e-5, METHOD["central"])
    np.testing.assert_array_equal(h, (x + h) - x)
    np.testing.assert_allclose(h, 1e-5 * np.maximum(1, np.abs(x)), rtol=1e-9)


@pytest.mark.parametrize("method", ["central", "forward", "richardson"])
def test_step_is_never_zero_nor_below_float32_spacing(method):
    x = np.array([0.0, 1.0, 1e6, -3e7], dtype=np.float32)
    h = absolute_steps(x, 1e-30, METHOD[method], np.float32)
    assert np.all(h > 0)
    assert np.all(h >= np.spacing(np.maximum(1, np.abs(x)).astype(np.float32)))
    auto = absolute_steps(x, METHOD[method].auto_step, METHOD[method], np.float32)
    assert np.all(auto >= np.spacing(np.abs(x)))


def test_auto_steps_follow_machine_epsilon():
    eps = np.finfo(np.float64).eps
    assert METHOD["forward"].auto_step == pytest.approx(eps**0.5)
    assert METHOD["central"].auto_step == pytest.approx(eps ** (1 / 3))
    assert METHOD["richardson"].auto_step > METHOD["central"].auto_step
    assert METHOD["complex"].auto_step < 1e-15


def test_noise_floor_bounds_the_error_of_a_flat_direction():
    # J depends on y only: the derivative in x is exactly zero, the numerical one is round-off.
    f = lambda p: float(np.sum(np.exp(p["y"])) * 1e3 + 0 * np.sum(p["x"]))
    report = check_gradients(
        f, lambda p: {"x": np.zeros(3), "y": 1e3 * np.exp(p["y"])}, {"x": np.ones(3), "y": np.linspace(1, 5, 3)}
    )
    assert report.passed


def test_taylor_order_two_for_correct_and_one_for_wrong_slope():
    x0 = np.array([0.3, -1.2, 2.0])
    v = np.array([1.0, 2.0, -1.0]) / np.sqrt(6)
    f = lambda x: np.sum(np.sin(x) * x)
    g = np.cos(x0) * x0 + np.sin(x0)
    probe = LoopProbe(lambda p: f(p["x"]), {"x": x0})

    def along(steps):
        return probe.along("x", np.broadcast_to(v, (len(steps), 3)), steps)

    good = taylor_test(along, float(g @ v), 1e-12, 0.1)
    bad = taylor_test(along, float(g @ v) * 1.01, 1e-12, 0.1)
    assert good.passed and good.order == pytest.approx(2, abs=0.2)
    assert not bad.passed and bad.order == pytest.approx(1, abs=0.2)
