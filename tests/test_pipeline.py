"""The one measurement pipeline: a gradient, a one-output Jacobian and a VJP of the same
function are three spellings of one question, and get one verdict; the ladder's
estimator and the pass rule, unit by unit."""

import numpy as np
import pytest

from gradcheck_cli import check_gradients, check_jacobian, check_vjp
from gradcheck_cli.core.estimates import FLAG_DOMAIN, FLAG_JUMP, Derivatives, Evaluation
from gradcheck_cli.core.methods import CENTRAL, FORWARD, METHOD, METHODS, RICHARDSON
from gradcheck_cli.core.rule import RESOLVE_FLOOR, PassRule
from gradcheck_cli.numerics.ladder import LADDER_RATIO, LADDER_UP, LadderEstimator, StepSequence

DTYPES = ["float64", "float32"]


def _loss(x, w):
    return np.sum(np.sin(x) * np.exp(0.3 * w)) + np.sum(x * x * w) / 3


def _grad(x, w, wrong=False):
    gx = np.cos(x) * np.exp(0.3 * w) + 2 * x * w / 3
    gw = 0.3 * np.sin(x) * np.exp(0.3 * w) + x * x / 3
    if wrong:
        gw = gw.copy()
        gw[1] *= 1.05  # one entry 5% off: every method and dtype must see it
    return {"x": gx, "w": gw}


def _spellings(wrong, **options):
    """The same loss and gradient checked as a gradient, a Jacobian of a 1-vector and a VJP."""
    rng = np.random.default_rng(7)
    inputs = {"x": rng.standard_normal(4), "w": rng.standard_normal(4)}

    def loss(p):
        return _loss(p["x"], p["w"])

    def vector(p):
        return np.array([_loss(p["x"], p["w"])])

    def jacobian(p):
        g = _grad(p["x"], p["w"], wrong)
        return {k: v.reshape(1, -1) for k, v in g.items()}

    def backward(dout, cache, p):
        return {k: dout[0] * v for k, v in _grad(p["x"], p["w"], wrong).items()}

    gradient = check_gradients(loss, lambda p: _grad(p["x"], p["w"], wrong), inputs, **options)
    jac = check_jacobian(vector, jacobian, inputs, **options)
    vjp = check_vjp(vector, backward, inputs, **options)
    return gradient, jac, vjp


@pytest.mark.parametrize("taylor", [False, True], ids=["plain", "taylor"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_grad_jacobian_and_vjp_spellings_agree(method, dtype, taylor):
    for wrong, expected in ((False, "PASS"), (True, "FAIL")):
        reports = _spellings(wrong, method=method, dtype=dtype, taylor=taylor)
        statuses = [{p.name.split("[")[-1].rstrip("]"): p.status for p in r.parameters} for r in reports]
        assert all(s == statuses[0] for s in statuses), statuses
        assert {r.status for r in reports} == {expected}, statuses
        if wrong:
            assert statuses[0] == {"x": "PASS", "w": "FAIL"}


# ---- the ladder, one rung at a time ----------------------------------------------------------


def _rung(f, x, step, one_sided=False):
    """What a rung measures of ``f`` at ``x`` (no round-off)."""
    plus = Evaluation(np.array([f(x + s) - f(x) for s in step]), np.zeros(len(step)), None)
    if one_sided:
        return plus, None
    minus = Evaluation(np.array([f(x - s) - f(x) for s in step]), np.zeros(len(step)), None)
    return plus, minus


def _estimator(method, h):
    return LadderEstimator(h, method, 0.0, PassRule(1e-6, 1e-9, "float64"))


def test_the_first_rung_keeps_no_estimate_its_truncation_is_unknown():
    h = np.array([1e-3])
    estimator = _estimator(CENTRAL, h)
    sequence = StepSequence.around(h, user_step=False)
    step = sequence.step(0, np.arange(1))
    stop = estimator.observe(0, sequence, np.arange(1), step, *_rung(np.exp, 0.5, step))
    assert not stop.any()  # fewer than the least number of rungs
    assert np.isnan(estimator.best[0])  # one rung cannot measure its own truncation


def test_rungs_of_a_cubic_measure_the_central_truncation():
    # Central differences of x^3 at 1: D(s) = 3 + s^2 exactly; the rung-to-rung change
    # over (16 - 1) is the truncation at the smaller step.
    h = np.array([1e-2])
    estimator = _estimator(CENTRAL, h)
    sequence = StepSequence.around(h, user_step=False)
    active = np.arange(1)
    for rung in range(3):
        step = sequence.step(rung, active)
        estimator.observe(rung, sequence, active, step, *_rung(lambda t: t**3, 1.0, step))
    s = sequence.step(2, active)[0]
    assert estimator.best[0] == pytest.approx(3 + s * s, rel=1e-12)
    assert estimator.best_trunc[0] == pytest.approx(s * s, rel=1e-6)
    assert sequence.start[0] == pytest.approx(h[0] * LADDER_RATIO**LADDER_UP)


def test_richardson_rungs_extrapolate_a_cubic_exactly():
    h = np.array([1e-2])
    estimator = _estimator(RICHARDSON, h)
    sequence = StepSequence.around(h, user_step=False)
    active = np.arange(1)
    for rung in range(3):
        step = sequence.step(rung, active)
        estimator.observe(rung, sequence, active, step, *_rung(lambda t: t**3, 1.0, step))
    assert estimator.best[0] == pytest.approx(3.0, rel=1e-12)  # (16 D(h) - D(4h)) / 15 cancels s^2


def test_a_forward_rung_is_one_sided():
    h = np.array([1e-4])
    estimator = _estimator(FORWARD, h)
    sequence = StepSequence.around(h, user_step=True)
    step = sequence.step(0, np.arange(1))
    estimator.observe(0, sequence, np.arange(1), step, *_rung(lambda t: t * t, 2.0, step, one_sided=True))
    assert estimator.evaluations == 1
    assert estimator.prev_d[0] == pytest.approx(4 + step[0])


def test_a_function_never_finite_has_left_its_domain():
    h = np.array([1e-3])
    estimator = _estimator(CENTRAL, h)
    sequence = StepSequence.around(h, user_step=False)
    nan = Evaluation(np.array([np.nan]), np.zeros(1), None)
    for rung in range(3):
        estimator.observe(rung, sequence, np.arange(1), sequence.step(rung, np.arange(1)), nan, nan)
    d = estimator.finish(lambda steps, chosen: nan)
    assert d.flags[0] == FLAG_DOMAIN and d.noise[0] == np.inf


def test_the_method_records_agree_with_their_formulas():
    for name, method in METHOD.items():
        assert method.name == name
        assert method.ladder.order <= method.order
    assert RICHARDSON.extrapolated and not CENTRAL.extrapolated and not FORWARD.extrapolated
    assert not METHOD["complex"].extrapolated and METHOD["complex"].ladder is CENTRAL
    assert FORWARD.ladder is FORWARD and RICHARDSON.ladder is CENTRAL
    assert CENTRAL.step_for(1e-6) == pytest.approx(1e-2)
    assert [METHOD[m].evaluations for m in METHODS] == [2, 1, 4, 1]


# ---- the pass rule ---------------------------------------------------------------------------


def _estimates(values, noise=0.0, truncation=0.0, kinks=None, lower=None, upper=None, flags=None):
    n = len(values)
    nan = np.full(n, np.nan)
    return Derivatives(
        np.asarray(values, float),
        np.full(n, 1e-5),
        np.full(n, noise),
        np.zeros(n, bool) if kinks is None else np.asarray(kinks),
        nan if lower is None else np.asarray(lower, float),
        nan.copy() if upper is None else np.asarray(upper, float),
        np.full(n, truncation),
        None if flags is None else np.asarray(flags, np.int8),
    )


def test_the_limit_is_atol_plus_rtol_times_the_scale_plus_uncertainty():
    rule = PassRule(1e-6, 1e-9, "float64")
    assert rule.limit(2.0) == pytest.approx(1e-9 + 2e-6)
    assert rule.limit(2.0, noise=1e-7, floor=1e-8) == pytest.approx(1e-9 + 2e-6 + 1e-7 + 1e-8)


def test_an_error_just_past_the_limit_fails_and_just_inside_passes():
    rule = PassRule(1e-6, 1e-9, "float64")
    a = np.array([1.0, 1.0])
    limit = 1e-9 + 1e-6 * 1.0 + rule.analytic_floor(1.0)
    j = rule.judge(a, _estimates([1.0 + 0.9 * limit, 1.0 - 1.1 * limit]), 1.0)
    assert list(j.failed) == [False, True]
    assert not j.unresolved.any()


def test_a_kink_passes_any_subgradient_and_fails_outside():
    rule = PassRule(1e-6, 1e-9, "float64")
    d = _estimates([0.0, 0.0], kinks=[True, True], lower=[-1.0, -1.0], upper=[1.0, 1.0])
    j = rule.judge(np.array([0.3, 1.5]), d, 1.5)
    assert list(j.failed) == [False, True]
    assert j.abs_error[0] == 0.0 and j.abs_error[1] == pytest.approx(0.5)


def test_uncertainty_beyond_the_values_is_unresolved_not_pass():
    rule = PassRule(1e-6, 1e-9, "float64")
    d = _estimates([1e-8], noise=1e-4)
    j = rule.judge(np.array([1e-8]), d, 1e-8)
    assert j.unresolved[0] and not j.failed[0]
    # Beside a large derivative the same entry's floor is RESOLVE_FLOOR of it: resolved.
    j = rule.judge(np.array([1e-8]), _estimates([1e-8], noise=1e-7), 1.0)
    assert RESOLVE_FLOOR > 2e-7 and not j.unresolved[0]


def test_a_jump_fails_and_a_domain_end_cannot_tell():
    rule = PassRule(1e-6, 1e-9, "float64")
    j = rule.judge(np.array([1.0, 1.0]), _estimates([1.0, 1.0], flags=[FLAG_JUMP, FLAG_DOMAIN]), 1.0)
    assert list(j.failed) == [True, False] and list(j.unresolved) == [False, True]


def test_the_resolution_is_the_loosest_relative_error_that_passes():
    rule = PassRule(1e-6, 1e-9, "float64")
    j = rule.judge(np.array([2.0, 4.0]), _estimates([2.0, 4.0], noise=1e-7), 4.0)
    relative = [(rule.limit(s, 2e-7, rule.analytic_floor(s)) - 1e-9) / s for s in (2.0, 4.0)]
    assert j.resolution == pytest.approx(max(relative))


def test_float32_gets_its_own_analytic_floor():
    rule = PassRule(1e-3, 1e-6, "float32")
    assert rule.analytic_floor(1.0) == pytest.approx(1000 * np.finfo(np.float32).eps)
