"""The verdict: correct gradients pass everywhere, every catalogued mistake fails."""

import runpy
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradcheck_cli import InputError, Settings, check_gradients, check_model
from gradcheck_cli.core.methods import METHOD, METHODS
from gradcheck_cli.core.text import report_as_text as report_to_text
from gradcheck_cli.models import ACTIVATIONS, LOSSES, MLP, LinearRegression, LinRegSpec, MLPSpec

from mistakes import MISTAKES, one_entry_off

MISTAKE_IDS = [m.name for m in MISTAKES]


@st.composite
def mlp_specs(draw):
    depth = draw(st.integers(1, 4))
    layers = draw(st.lists(st.integers(1, 6), min_size=depth + 1, max_size=depth + 1))
    loss = draw(st.sampled_from(list(LOSSES)))
    if loss == "softmax-ce":
        layers[-1] = max(2, layers[-1])
    return MLPSpec.build(
        layers,
        activation=draw(st.sampled_from(list(ACTIVATIONS))),
        loss=loss,
        bias=draw(st.booleans()),
        m=draw(st.integers(1, 120)),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=mlp_specs(), method=st.sampled_from(METHODS), dtype=st.sampled_from(["float64", "float32"]))
def test_correct_mlp_gradients_pass_everywhere(spec, method, dtype):
    report = check_model(MLP(spec), method=method, dtype=dtype)
    assert report.passed, report_to_text(report)
    assert report.exit_code == 0


@settings(deadline=None)
@given(
    spec=mlp_specs(),
    mode=st.sampled_from(["sample", "directional"]),
    taylor=st.booleans(),
    method=st.sampled_from(METHODS),
    dtype=st.sampled_from(["float64", "float32"]),
)
def test_correct_mlp_gradients_pass_in_every_mode(spec, mode, taylor, method, dtype):
    report = check_model(MLP(spec), mode=mode, samples=3, directions=3, taylor=taylor, method=method, dtype=dtype)
    assert report.passed, report_to_text(report)


@pytest.mark.parametrize("l2", [0.0, 0.7])
@pytest.mark.parametrize("method", METHODS)
def test_correct_linreg_passes(l2, method):
    report = check_model(LinearRegression(LinRegSpec.build(m=100, n=4, l2=l2)), method=method)
    assert report.status == "PASS", report_to_text(report)


@pytest.mark.parametrize("mistake", MISTAKES, ids=MISTAKE_IDS)
def test_every_mistake_is_caught(mistake):
    report = check_model(mistake.build())
    assert report.exit_code == 1
    statuses = {p.name: p.status for p in report.parameters}
    for name in mistake.failing:
        assert statuses[name] == "FAIL", report_to_text(report)
    for name, status in statuses.items():
        if name not in mistake.failing:
            assert status != "FAIL", f"{name} should not fail:\n{report_to_text(report)}"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mistake", MISTAKES, ids=MISTAKE_IDS)
def test_every_mistake_is_caught_by_every_method(mistake, method):
    report = check_model(mistake.build(), method=method)
    failed = {p.name for p in report.parameters if p.status == "FAIL"}
    assert set(mistake.failing) <= failed, report_to_text(report)


@pytest.mark.parametrize("mistake", MISTAKES, ids=MISTAKE_IDS)
def test_every_mistake_is_caught_by_directional_mode(mistake):
    report = check_model(mistake.build(), mode="directional", directions=4)
    failed = {p.name for p in report.parameters if p.status == "FAIL"}
    assert set(mistake.failing) <= failed, report_to_text(report)
    assert all(p.coverage == "directions" and p.checked == 4 for p in report.parameters)


@pytest.mark.parametrize("mistake", MISTAKES, ids=MISTAKE_IDS)
def test_every_mistake_is_caught_by_the_taylor_test(mistake):
    report = check_model(mistake.build(), taylor=True)
    for p in report.parameters:
        if p.name in mistake.failing:
            assert p.taylor is not None and not p.taylor.passed, report_to_text(report)
            assert p.taylor.order == pytest.approx(1.0, abs=0.3)
            assert p.status == "FAIL"


def test_taylor_order_is_two_for_correct_gradients():
    report = check_model(MLP(MLPSpec.build([3, 5, 2])), taylor=True)
    for p in report.parameters:
        assert p.taylor.passed
        assert p.taylor.order == pytest.approx(2.0, abs=0.3)


def _wrong_entry(model):
    """Flat index of dW1's largest entry, the one one_entry_off spoils."""
    g = MLP.gradients(model, model.initial_parameters())["W1"]
    return int(np.argmax(np.abs(g)))


def test_sample_mode_catches_the_one_wrong_entry_when_it_is_sampled():
    model = one_entry_off([3, 5, 2], 1e-3)
    wrong = _wrong_entry(model)
    seeds = [
        s for s in range(40) if wrong in check_model(model, mode="sample", samples=3, seed=s).parameters[0].positions
    ]
    missed = [s for s in range(40) if s not in seeds]
    assert seeds and missed  # the seeded draw does and does not pick it
    assert check_model(model, mode="sample", samples=3, seed=seeds[0]).parameters[0].status == "FAIL"
    assert check_model(model, mode="sample", samples=3, seed=missed[0]).parameters[0].status != "FAIL"


def test_sample_mode_samples_every_parameter():
    report = check_model(MLP(MLPSpec.build([6, 7, 1])), mode="sample", samples=4)
    assert [p.checked for p in report.parameters] == [4, 4, 4, 1]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_float32_correct_passes_and_one_entry_off_by_1e2_fails(dtype):
    assert check_model(MLP(MLPSpec.build([4, 6, 3])), dtype=dtype).passed
    bad = one_entry_off([4, 6, 3], 1e-2)
    report = check_model(bad, dtype=dtype)
    assert [p.name for p in report.parameters if p.status == "FAIL"] == ["W1"]


def test_analytic_side_runs_in_the_chosen_dtype():
    seen = []

    def grad(p):
        seen.append(p["w"].dtype)
        return {"w": 2 * p["w"]}

    check_gradients(lambda p: float(np.sum(p["w"] ** 2)), grad, {"w": np.ones(3)}, dtype="float32")
    assert seen[0] == np.float32  # (then once in float64, to measure its own rounding)


def test_zero_gradient_parameters_never_fail_a_correct_gradient():
    # All-dead relu layer: dW1 is exactly zero, the loss is flat in W1.
    model = MLP(MLPSpec.build([3, 4, 2], activation="relu", m=50))
    model._params["b1"][:] = -100.0
    report = check_model(model)
    w1 = report.parameters[0]
    assert np.all(w1.analytic == 0) and w1.status == "PASS"


def test_report_numbers_are_consistent():
    report = check_model(MLP(MLPSpec.build([4, 8, 3])))
    for p in report.parameters:
        assert p.checked == p.size
        np.testing.assert_array_equal(p.abs_error, np.abs(p.analytic - p.numerical))
        assert p.failures == 0 and np.all(p.abs_error <= p.limit)


def test_tolerance_defaults_come_from_the_table():
    s = Settings(dtype="float32", method="central").resolved()
    assert (s.rtol, s.atol) == METHOD["central"].tolerances["float32"]
    assert Settings(rtol=1e-3).resolved().rtol == 1e-3


def test_user_tolerance_can_turn_a_failure_into_a_pass():
    model = one_entry_off([3, 5, 2], 1e-3)
    assert not check_model(model).passed
    assert check_model(model, rtol=1e-2).passed


@pytest.mark.parametrize(
    "grad, message",
    [
        (lambda p: {"w": np.ones((2, 3))}, r"gradient: w has shape \(2, 3\), expected \(3, 2\) \(the shape of w\)"),
        (lambda p: {}, "gradient returned no entry for w; expected keys w"),
        (lambda p: {"w": np.ones((3, 2)), "v": 1}, "gradient returned unknown keys v; expected keys w"),
        (lambda p: {"w": np.full((3, 2), np.nan)}, r"gradient: w is nan at \[0, 0\]; gradients must be finite"),
        (lambda p: 3.0, "gradient must return a dict name -> array, a tuple in parameter order, or "),
    ],
)
def test_bad_gradients_are_input_errors(grad, message):
    with pytest.raises(InputError, match=message):
        check_gradients(lambda p: float(np.sum(p["w"] ** 2)), grad, {"w": np.ones((3, 2))})


def test_a_tuple_in_another_order_is_named_with_the_order_that_fits():
    with pytest.raises(InputError) as info:
        check_gradients(
            lambda p: float(np.sum(p["W"] ** 2) + np.sum(p["b"])),
            lambda p: (np.ones(3), 2 * p["W"]),  # (db, dW) for parameters (W, b)
            {"W": np.ones((2, 3)), "b": np.ones(3)},
        )
    assert str(info.value) == (
        "gradient returned a tuple whose arrays fit the parameters in the order (b, W), not (W, b); return them "
        "in parameter order, or a dict name -> array"
    )


def test_gradient_tuple_in_parameter_order_is_accepted():
    report = check_gradients(
        lambda p: float(np.sum(p["a"] ** 2) + np.sum(p["b"] ** 3)),
        lambda p: (2 * p["a"], 3 * p["b"] ** 2),
        {"a": np.ones(2), "b": np.ones(3)},
    )
    assert report.passed


@pytest.mark.xfail(strict=True, reason="every derivative of a dead relu network is exactly zero: UNRESOLVED today")
def test_a_dead_relu_network_passes():
    # Found by the property test above: the single hidden unit is dead, so every
    # change of the loss is exactly zero, and the round-off bound still exceeds it.
    spec = MLPSpec(layers=(1, 1, 1), activations=("relu", "identity"), loss="mse", bias=False, m=1, seed=1)
    assert check_model(MLP(spec)).passed


def _bias_loss(p):
    return float(np.sum(np.tanh(p["b"]) ** 2))


def _bias_grad(p, factor=1.0):
    t = np.tanh(p["b"])
    return {"b": (factor * 2 * t * (1 - t**2)).reshape(1, -1)}  # keepdims=True, as in db = dout.sum(0, keepdims=True)


def test_a_keepdims_gradient_is_compared_in_the_parameters_shape_and_said():
    b = {"b": np.linspace(-1, 1, 5)}
    report = check_gradients(_bias_loss, _bias_grad, b)
    assert report.status == "PASS"
    note = "gradient returned b with shape (1, 5); compared in b's shape (5,) (they differ only by axes of length 1)"
    assert report.to_dict()["parameters"][0]["reasons"] == [note]
    assert check_gradients(_bias_loss, lambda p: _bias_grad(p, 1.01), b).status == "FAIL"


def test_a_shape_that_differs_by_more_than_axes_of_length_one_stays_an_error():
    with pytest.raises(InputError, match=r"gradient: b has shape \(5, 2\), expected \(10,\) \(the shape of b\)"):
        check_gradients(lambda p: float(np.sum(p["b"] ** 2)), lambda p: {"b": np.ones((5, 2))}, {"b": np.ones(10)})


# scipy's Rosenbrock function and its gradient, as examples/as_written.py writes them.
_WRITTEN = runpy.run_path(str(Path(__file__).resolve().parent.parent / "examples" / "as_written.py"))
rosen, rosen_der = _WRITTEN["rosen"], _WRITTEN["rosen_der"]


def test_the_api_calls_functions_as_the_command_line_does():
    x0 = {"x": np.array([1.3, 0.7, 0.8, 1.9, 1.2])}
    assert check_gradients(rosen, rosen_der, x0).status == "PASS"  # as written: no lambda
    assert check_gradients(rosen, lambda x: rosen_der(x) * 1.01, x0).status == "FAIL"

    def scaled(x, y, scale):
        return scale * float(np.sum((x - y) ** 2))

    def scaled_grad(x, y, scale):
        return 2 * scale * (x - y)

    fixed = {"data": {"y": np.ones(5)}, "const": {"scale": 3.0}}
    assert check_gradients(scaled, scaled_grad, x0, **fixed).status == "PASS"
    assert check_gradients(lambda p: rosen(p["x"]), lambda p: {"x": rosen_der(p["x"])}, x0).status == "PASS"


def test_fixed_inputs_need_functions_that_take_their_parameters_by_name():
    with pytest.raises(
        InputError, match="data and const are passed by name, but <lambda> does not take the parameters"
    ):
        check_gradients(lambda p: rosen(p["x"]), lambda p: {"x": 0 * p["x"]}, {"x": np.ones(3)}, const={"k": 1})
