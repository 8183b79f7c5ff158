"""Vector functions: column grouping, the grouped evaluator, and the Python API of
the derivative checks (``check_jacobian``, ``check_vjp``, ``check_hessian``, the
``assert_*`` helpers)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from gradcheck_cli import (
    BadValueError,
    InputError,
    assert_hessian,
    assert_jacobian,
    assert_jvp,
    assert_vjp,
    check_hessian,
    check_jacobian,
    check_vjp,
)
from gradcheck_cli.probes.vector import VectorFunction, column_evaluator, group_columns, unit_columns

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import layers
import least_squares
import logistic_newton


def _band(n, half):
    i = np.arange(n)
    return np.abs(i[:, None] - i[None, :]) <= half


@pytest.mark.parametrize(("half", "groups"), [(0, 1), (1, 3), (2, 5)])
def test_a_band_needs_its_width_in_groups(half, groups):
    rows, cols = np.nonzero(_band(40, half))
    group = group_columns(rows, cols, 40)
    assert group.max() + 1 == groups


def test_grouped_columns_never_share_an_output(rng):
    mask = rng.random((30, 25)) < 0.15
    rows, cols = np.nonzero(mask)
    group = group_columns(rows, cols, 25)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        assert np.all(mask[:, members].sum(axis=1) <= 1)


def test_one_evaluation_serves_a_whole_group(rng):
    n = 12
    mask = _band(n, 1)
    fn = VectorFunction(lambda p: least_squares.convection(p["u"]), {"u": rng.standard_normal(n)}, "f")
    rows, cols = np.nonzero(mask)
    h = np.full(n, 1e-5)
    evaluate = column_evaluator(fn, "u", unit_columns(n, (rows, cols)), rows, cols, h)
    before = fn.evaluations
    ev = evaluate(h[cols], None)
    assert fn.evaluations - before == 3
    # The same changes as moving each column alone.
    alone = column_evaluator(fn, "u", unit_columns(n), rows, cols, h)(h[cols], None)
    np.testing.assert_allclose(ev.change, alone.change, rtol=0, atol=4 * np.max(ev.roundoff))


@pytest.mark.parametrize("method", ["central", "richardson", "complex", "forward"])
def test_the_grouped_check_gives_the_dense_checks_numbers(method):
    u = 0.1 * np.random.default_rng(2).standard_normal(16)
    f = lambda p: least_squares.convection(p["u"])
    jac = lambda p: least_squares.convection_jacobian(p["u"])
    mask = least_squares.convection_sparsity(16)
    grouped = check_jacobian(f, jac, {"u": u}, sparsity={"u": mask}, method=method).parameters[0]
    dense = check_jacobian(f, jac, {"u": u}, method=method).parameters[0]
    inside = mask.reshape(-1)[dense.positions]
    assert np.array_equal(grouped.positions, dense.positions[inside])
    # Equal within the numerical values' own error bounds.
    bound = 2 * (grouped.noise + dense.noise[inside] + grouped.truncation + dense.truncation[inside])
    assert np.all(np.abs(grouped.numerical - dense.numerical[inside]) <= bound)
    assert grouped.evaluations < dense.evaluations


def test_a_pattern_too_sparse_for_the_jacobian_fails():
    u = np.linspace(-0.5, 0.5, 8)
    f = lambda p: least_squares.convection(p["u"])
    jac = lambda p: least_squares.convection_jacobian(p["u"])
    report = check_jacobian(f, jac, {"u": u}, sparsity={"u": np.eye(8, dtype=bool)})
    assert report.status == "FAIL"
    assert any("outside the declared sparsity" in r for r in report.parameters[0].reasons)


def test_a_sparse_jacobian_is_read_without_densifying():
    class Coo:  # the part of scipy.sparse's interface gradcheck uses
        def __init__(self, dense):
            self.row, self.col = np.nonzero(dense)
            self.data = dense[self.row, self.col]
            self.shape = dense.shape

        def tocoo(self):
            return self

    u = np.linspace(-0.5, 0.5, 8)
    f = lambda p: least_squares.convection(p["u"])
    right = check_jacobian(f, lambda p: Coo(least_squares.convection_jacobian(p["u"])), {"u": u})
    assert right.passed
    wrong = check_jacobian(f, lambda p: Coo(least_squares.convection_jacobian(p["u"]).T), {"u": u})
    assert wrong.status == "FAIL" and wrong.parameters[0].diagnosis == "transposed"


def test_vjp_through_the_api_with_a_given_dout(rng):
    inputs = {"x": rng.standard_normal((3, 2)), "w": rng.standard_normal((2, 4)), "b": rng.standard_normal(4)}
    backward = lambda dout, cache, p: layers.affine_backward(dout, cache)
    forward = lambda p: layers.affine_forward(**p)
    report = check_vjp(forward, backward, inputs, dout=np.ones((3, 4)))
    assert report.passed and [p.name for p in report.parameters] == ["x", "w", "b"]
    with pytest.raises(InputError, match=r"dout has shape \(4,\); it must have the output's shape \(3, 4\)"):
        check_vjp(forward, backward, inputs, dout=np.ones(4))


def test_assert_helpers_raise_with_the_table(rng):
    inputs = {"x": rng.standard_normal((3, 2)), "w": rng.standard_normal((2, 4)), "b": rng.standard_normal(4)}
    forward = lambda p: layers.affine_forward(**p)
    assert_vjp(forward, lambda d, c, p: layers.affine_backward(d, c), inputs)
    with pytest.raises(AssertionError, match="VJP check failed") as info:
        assert_vjp(forward, lambda d, c, p: layers.affine_backward_wrong(d, c), inputs)
    assert "FAIL" in str(info.value)
    assert_jvp(forward, lambda t, p: layers.affine_jvp(t, **p), inputs)
    with pytest.raises(AssertionError, match="JVP check failed"):
        assert_jvp(forward, lambda t, p: layers.affine_jvp_wrong(t, **p), inputs)
    u = {"u": np.linspace(0, 1, 6)}
    assert_jacobian(lambda p: least_squares.convection(p["u"]), lambda p: least_squares.convection_jacobian(p["u"]), u)
    loss = lambda p: logistic_newton.loss(p["w"])
    w = {"w": np.zeros(4)}
    assert_hessian(loss, w, hessian=lambda p: logistic_newton.hessian(p["w"]))
    with pytest.raises(AssertionError, match="Hessian check failed"):
        assert_hessian(loss, w, hessian=lambda p: logistic_newton.hessian_wrong(p["w"]))


def test_api_keywords_are_checked():
    with pytest.raises(InputError, match="unknown option 'methd'; valid: method, mode"):
        check_jacobian(lambda p: p["u"], lambda p: np.eye(2), {"u": np.ones(2)}, methd="central")
    with pytest.raises(InputError, match="give exactly one of hessian and hvp"):
        check_hessian(lambda p: 0.0, {"w": np.ones(2)})


def test_a_nondeterministic_function_is_named_when_it_matters(rng):
    noise = np.random.default_rng()  # deliberately unseeded: the function under test

    def f(p):
        return p["u"] ** 2 + 1e-3 * noise.standard_normal(p["u"].size)

    with pytest.raises(BadValueError, match="is not deterministic"):
        check_jacobian(f, lambda p: np.diag(2 * p["u"]), {"u": rng.standard_normal(5)})


def test_a_function_whose_output_changes_shape_is_refused():
    calls = []

    def f(p):
        calls.append(1)
        return np.zeros(3 if len(calls) == 1 else 4) + p["u"].sum()

    with pytest.raises(BadValueError, match=r"returned shape \(4,\) with u moved, but \(3,\) at the starting"):
        check_jacobian(f, lambda p: np.ones((3, 2)), {"u": np.ones(2)})


def test_a_jacobian_matching_a_broken_complex_step_never_passes():
    # abs() drops the complex step's imaginary part: the complex step sees 0 there.
    def f(p):
        return np.array([np.abs(p["u"][0]) + 0 * p["u"][1], p["u"][1] ** 2])

    right = check_jacobian(
        f,
        lambda p: np.array([[np.sign(p["u"][0]), 0], [0, 2 * p["u"][1]]]),
        {"u": np.array([0.7, -0.3])},
        method="complex",
    )
    assert right.status == "UNRESOLVED" and "complex step is not valid" in right.parameters[0].reasons[0]
    broken = check_jacobian(
        f, lambda p: np.array([[0.0, 0], [0, 2 * p["u"][1]]]), {"u": np.array([0.7, -0.3])}, method="complex"
    )
    assert broken.status == "FAIL"
