"""A battery of hard cases, one or more per mechanism that once gave a wrong verdict.

Each case states the true answer and why.  A correct gradient must never FAIL (it
may be UNRESOLVED where the numbers cannot tell, with the reason); a wrong one must
never PASS.  Every case runs through ``check_gradients`` on a black-box function,
as ``gradcheck func`` does.
"""

import numpy as np
import pytest

from gradcheck_cli import BadValueError, check_gradients, check_model
from gradcheck_cli.core.text import report_as_text as report_to_text
from gradcheck_cli.models import MLP, MLPSpec
from gradcheck_cli.render.report import reports_to_junit

REAL = ["central", "forward", "richardson"]
ALL = [*REAL, "complex"]


def _check(loss, grad, params, **options):
    return check_gradients(lambda p: loss(**p), lambda p: grad(**p), params, **options)


def _statuses(report):
    return {p.name: p.status for p in report.parameters}


def _never_fails(report):
    assert all(p.status != "FAIL" for p in report.parameters), report_to_text(report)


def _fails(report, name="w"):
    assert _statuses(report)[name] == "FAIL", report_to_text(report)


# 1. A complex-step value is the reference: no real re-check overrules it.
@pytest.mark.parametrize("factor", [1.0001, 1.01, -1.0])
def test_complex_step_is_not_overruled_for_a_wrong_gradient(factor):
    # J = sum sin(w) w^2 is complex-safe; the gradient is off by a factor: it must FAIL.
    w = np.linspace(-2, 2, 9)
    report = _check(
        lambda w: np.sum(np.sin(w) * w * w),
        lambda w: {"w": factor * (np.cos(w) * w * w + 2 * w * np.sin(w))},
        {"w": w},
        method="complex",
    )
    _fails(report)


def test_a_partly_complex_safe_loss_is_unresolved_not_passed():
    # J = sum w^2 + sum |w| at w > 0: np.abs of a complex number drops its imaginary
    # part, so the complex step sees 2w, the truth is 2w + 1.  The correct gradient is
    # UNRESOLVED with the reason (never PASS on a method that cannot see it); the
    # gradient that matches the broken complex step (2w) FAILs against real differences.
    w = np.linspace(0.5, 2, 6)
    loss = lambda w: np.sum(w * w) + np.sum(np.abs(w))
    correct = _check(loss, lambda w: {"w": 2 * w + 1}, {"w": w}, method="complex")
    assert _statuses(correct)["w"] == "UNRESOLVED" and correct.exit_code == 3
    assert any("complex step is not valid" in r for r in correct.parameters[0].reasons)
    junit = reports_to_junit([correct])
    assert '<skipped message="UNRESOLVED: 6 unresolved: the complex step is not valid here' in junit
    assert correct.to_dict()["parameters"][0]["unresolved"] == 6
    assert _statuses(_check(loss, lambda w: {"w": 2 * w}, {"w": w}, method="complex"))["w"] == "FAIL"


# 2. A smooth function is not read as a kink because its parameters are large.
@pytest.mark.parametrize("method", REAL)
def test_large_parameters_smooth_function(method):
    # w near 1e6: the auto step eps*|w| is about 6, a period of sin.  The truth is cos(w).
    w = 1e6 + np.linspace(0, 3, 7)
    right = _check(lambda w: np.sum(np.sin(w)), lambda w: {"w": np.cos(w)}, {"w": w}, method=method)
    _never_fails(right)
    assert int(right.parameters[0].kinks.sum()) == 0
    _fails(_check(lambda w: np.sum(np.sin(w)), lambda w: {"w": 2 * np.cos(w)}, {"w": w}, method=method))


# 3. An allowance larger than the derivative never says PASS.
@pytest.mark.parametrize("method", REAL)
def test_a_huge_offset_never_passes_a_wrong_small_gradient(method):
    # J = 1e8 + 1e-3 sum sin(w): gradient about 1e-3, round-off of J about 1e-8.
    w = np.linspace(-1, 1, 5)
    loss = lambda w: 1e8 + 1e-3 * np.sum(np.sin(w))
    right = _check(loss, lambda w: {"w": 1e-3 * np.cos(w)}, {"w": w}, method=method)
    _never_fails(right)
    wrong = _check(loss, lambda w: {"w": 2e-3 * np.cos(w)}, {"w": w}, method=method)
    assert _statuses(wrong)["w"] != "PASS", report_to_text(wrong)


# 4. Floors are per entry: small entries beside large ones keep their own limit.
def test_a_small_entry_beside_large_ones_is_checked_on_its_own_scale():
    # J = sum c w^2 / 2, gradient c w: entries of 2.6e-6 beside entries of 1e3.
    c = np.array([1e3, 2.6e-6, 5e2, 1e3])
    w = np.ones(4)
    wrong = c * w
    wrong[1] *= 1.1  # 10 % off on the small entry
    report = _check(lambda w: np.sum(c * w * w) / 2, lambda w: {"w": wrong}, {"w": w}, method="complex")
    _fails(report)
    assert report.parameters[0].failed[1]


def test_float32_small_entry_off_by_100_percent_fails():
    c = np.array([1e4, 1.7, 3e3], dtype=np.float64)
    w = np.ones(3)

    def grad(w):
        g = (c * w).astype(w.dtype)
        g[1] *= 2  # 100 % off
        return {"w": g}

    report = _check(lambda w: float(np.sum(c * w * w) / 2), grad, {"w": w}, dtype="float32")
    _fails(report)


# 5. Steps sized for the function's scale: log-sum-exp of logits near 1000.
@pytest.mark.parametrize("shift", [0.0, 1000.0])
@pytest.mark.parametrize("method", REAL)
def test_log_sum_exp_anywhere(shift, method):
    a = shift + np.array([0.3, -1.2, 2.0, 0.5])

    def lse(a):
        m = np.max(a)
        return m + np.log(np.sum(np.exp(a - m)))

    def grad(a):
        e = np.exp(a - np.max(a))
        return {"a": e / e.sum()}

    report = _check(lse, grad, {"a": a}, method=method)
    assert report.passed, report_to_text(report)


# 7. C1 functions with a small scale.
@pytest.mark.parametrize("method", REAL)
def test_huber_exactly_at_its_transition(method):
    delta = 1.0
    w = np.array([1.0, -1.0, 0.3, 2.5])  # two entries exactly at |w| = delta

    def huber(w):
        small = np.abs(w) <= delta
        return np.sum(np.where(small, 0.5 * w * w, delta * (np.abs(w) - 0.5 * delta)))

    report = _check(huber, lambda w: {"w": np.clip(w, -delta, delta)}, {"w": w}, method=method)
    _never_fails(report)


@pytest.mark.parametrize("method", REAL)
def test_smoothed_abs_near_zero(method):
    # sqrt(w^2 + 1e-12): curvature scale 1e-6, far below the auto step at w ~ 1e-7.
    w = np.array([1e-7, -3e-7, 0.0, 2e-6])
    report = _check(
        lambda w: np.sum(np.sqrt(w * w + 1e-12)), lambda w: {"w": w / np.sqrt(w * w + 1e-12)}, {"w": w}, method=method
    )
    _never_fails(report)


# 8. Round-off that is not proportional to |J|: measured, not modelled.
@pytest.mark.parametrize("method", REAL)
def test_round_off_of_an_intermediate(method):
    w = np.linspace(-2, 2, 6)
    loss = lambda w: (1e8 + np.sum(np.sin(w))) - 1e8
    right = _check(loss, lambda w: {"w": np.cos(w)}, {"w": w}, method=method)
    _never_fails(right)
    wrong = _check(loss, lambda w: {"w": 1.5 * np.cos(w)}, {"w": w}, method=method)
    assert _statuses(wrong)["w"] != "PASS"


# 9. Discontinuities: no derivative exists, the entry FAILs with the reason.
@pytest.mark.parametrize("method", REAL)
def test_a_jump_fails_with_its_size(method):
    w = np.array([2.0, 0.3, -1.5])  # floor jumps by 1 at w = 2
    report = _check(
        lambda w: np.sum(np.floor(w)) * 0.5 + np.sum(w), lambda w: {"w": np.ones(3)}, {"w": w}, method=method
    )
    _fails(report)
    p = report.parameters[0]
    assert p.failed[0] and not p.failed[1:].any()
    assert any("discontinuous at w[0]: it jumps by 0.5" in r for r in p.reasons), p.reasons


# 10. An exactly zero imaginary part is a zero derivative, not a dropped one.
def test_complex_step_with_an_unused_parameter():
    params = {"w": np.linspace(-1, 1, 4), "unused": np.ones(2)}
    report = _check(
        lambda w, unused: np.sum(w**3),
        lambda w, unused: {"w": 3 * w * w, "unused": np.zeros(2)},
        params,
        method="complex",
    )
    assert report.passed, report_to_text(report)


def test_complex_step_on_a_loss_that_drops_everything_is_refused():
    with pytest.raises(BadValueError, match="dropped the imaginary part"):
        _check(lambda w: np.sum(w**2).real, lambda w: {"w": 2 * w}, {"w": np.ones(3)}, method="complex")


# 11. Steps that leave the function's domain.
@pytest.mark.parametrize("method", REAL)
def test_a_parameter_tiny_but_steep(method):
    # J = sum exp(1e6 w) at w ~ 1e-6: a step of 1e-3 overflows exp; smaller ones do not.
    w = np.array([1e-6, -2e-6, 5e-7])
    loss = lambda w: np.sum(np.exp(1e6 * w))
    right = _check(loss, lambda w: {"w": 1e6 * np.exp(1e6 * w)}, {"w": w}, method=method)
    assert right.passed, report_to_text(right)
    _fails(_check(loss, lambda w: {"w": 1.01e6 * np.exp(1e6 * w)}, {"w": w}, method=method))


# 12. A user's step changes how closely the check looks, not whether a correct gradient passes.
@pytest.mark.parametrize("method, eps", [("central", 1e-3), ("forward", 1e-4), ("central", 0.05), ("forward", 0.01)])
def test_a_users_step_on_a_builtin_model(method, eps):
    # The truncation of the step in use is measured and allowed for: a correct model
    # never FAILs.  A very large step may leave entries UNRESOLVED (truncation larger
    # than the value): that is said, with the reason.
    report = check_model(MLP(MLPSpec.build([4, 8, 3])), method=method, eps=eps)
    _never_fails(report)
    if eps <= 1e-3:
        assert report.passed, report_to_text(report)
    for p in report.parameters:
        if p.status == "UNRESOLVED":
            assert any("truncation" in r for r in p.reasons)
    auto = check_model(MLP(MLPSpec.build([4, 8, 3])), method=method)
    # the larger step looks less closely: its resolution says so
    assert max(p.resolution for p in report.parameters) >= max(p.resolution for p in auto.parameters)


@pytest.mark.parametrize("eps", [1e-3, 0.1])
def test_a_users_step_on_a_black_box(eps):
    w = np.linspace(-2, 2, 5)
    right = _check(lambda w: np.sum(np.sin(w)), lambda w: {"w": np.cos(w)}, {"w": w}, eps=eps)
    assert right.passed, report_to_text(right)
    _fails(_check(lambda w: np.sum(np.sin(w)), lambda w: {"w": 1.01 * np.cos(w)}, {"w": w}, eps=eps))


# 13. A loss computed in float32.
@pytest.mark.parametrize("method", REAL)
def test_a_loss_computed_in_float32(method):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 4)).astype(np.float32)

    def loss(w):
        z = X @ w.astype(np.float32)
        return np.sum(np.tanh(z)) / np.float32(20)

    def grad(w):
        z = X.astype(np.float64) @ w
        return {"w": X.T.astype(np.float64) @ (1 - np.tanh(z) ** 2) / 20}

    w = rng.standard_normal(4)
    right = _check(loss, grad, {"w": w}, method=method)
    _never_fails(right)
    assert int(right.parameters[0].kinks.sum()) == 0
    wrong = _check(loss, lambda w: {"w": 1.5 * grad(w)["w"]}, {"w": w}, method=method)
    assert _statuses(wrong)["w"] == "FAIL", report_to_text(wrong)


# 14. A loss that is not deterministic cannot be checked: say so.
def test_a_loss_that_is_not_deterministic():
    rng = np.random.default_rng(0)  # seeded, yet every call draws a fresh mask

    def loss(w):  # unseeded dropout
        return float(np.sum((w * (rng.random(w.shape) > 0.5)) ** 2))

    with pytest.raises(BadValueError, match="is not deterministic: two calls at the same point differ by"):
        _check(loss, lambda w: {"w": 2 * w}, {"w": np.ones(50)})


# 15. The table says what the verdict rests on.
def test_the_table_shows_error_over_limit_and_resolution():
    report = _check(lambda w: np.sum(w**3), lambda w: {"w": 3 * w * w}, {"w": np.linspace(-1, 1, 5)})
    text = report_to_text(report)
    assert "err/limit" in text and "resolution" in text and "WARN" not in text
    p = report.parameters[0]
    assert p.error_ratio <= 1 and 1e-6 <= p.resolution < 1e-3
    assert p.to_dict()["resolution"] == pytest.approx(p.resolution)


# ---- properties over random smooth functions at random scales --------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SHAPES = {
    "sin": (np.sin, np.cos),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "bump": (lambda z: np.exp(-z * z), lambda z: -2 * z * np.exp(-z * z)),
    "softplus": (lambda z: np.logaddexp(0, z), lambda z: 1 / (1 + np.exp(-z))),
    "cubic": (lambda z: z**3 / 3 - z, lambda z: z * z - 1),
}


@st.composite
def smooth_problems(draw):
    """J(w) = offset + A sum_k a_k phi(w_k / s + c_k), parameters of size s (1e-8 to 1e8)."""
    n = draw(st.integers(1, 6))
    s = 10.0 ** draw(st.integers(-8, 8))
    amplitude = 10.0 ** draw(st.integers(-3, 3))
    offset = draw(st.sampled_from([0.0, 1.0, 1e4, 1e8, 1e12])) * draw(st.sampled_from([1, -1]))
    kind = draw(st.sampled_from(sorted(SHAPES)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, n) * rng.choice([-1, 1], n)
    c = rng.uniform(-1, 1, n)
    w = s * rng.uniform(-1.5, 1.5, n)
    phi, dphi = SHAPES[kind]

    def loss(w):
        return offset + amplitude * float(np.sum(a * phi(w / s + c)))

    def grad(w):
        return {"w": amplitude * a * dphi(w / s + c) / s}

    return loss, grad, w, draw(st.sampled_from(REAL))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=smooth_problems(), which=st.integers(0, 5), sign=st.sampled_from([1, -1]))
def test_correct_never_fails_and_a_wrong_entry_beyond_the_resolution_never_passes(problem, which, sign):
    loss, grad, w, method = problem
    right = _check(loss, grad, {"w": w}, method=method)
    _never_fails(right)
    p = right.parameters[0]
    if p.status != "PASS":
        return  # nothing resolved to claim a resolution for
    k = which % w.size
    g = grad(w)["w"]
    reference = float(np.max(np.abs(np.concatenate([p.numerical, p.analytic]))))
    _, atol = right.settings.tolerances
    off = g.copy()
    off[k] += sign * (2 * p.resolution * max(abs(g[k]), 1e-3 * reference) + 2 * atol)
    wrong = _check(loss, lambda w: {"w": off}, {"w": w}, method=method)
    assert wrong.parameters[0].status != "PASS", report_to_text(wrong)


# 6. Kinks crossed several at once, and ties.
@pytest.mark.parametrize("seed", range(3))
def test_a_tie_in_max_in_directional_mode(seed):
    # max(w) at a tie of w0 = w1: valid gradients are (t, 1 - t, 0, 0).  Entry by entry
    # (1, 1, 0, 0) is inside each one-sided interval; a direction moving both sees it.
    w = np.array([1.0, 1.0, 0.0, -0.5])
    right = _check(
        lambda w: float(np.max(w)),
        lambda w: {"w": np.array([1.0, 0, 0, 0])},
        {"w": w},
        mode="directional",
        directions=8,
        seed=seed,
    )
    assert right.passed, report_to_text(right)
    wrong = _check(
        lambda w: float(np.max(w)),
        lambda w: {"w": np.array([1.0, 1.0, 0, 0])},
        {"w": w},
        mode="directional",
        directions=8,
        seed=seed,
    )
    # A direction crosses the tie: outside its one-sided slopes, UNRESOLVED or FAIL, never PASS.
    assert _statuses(wrong)["w"] != "PASS" and wrong.exit_code in (1, 3), report_to_text(wrong)


def _pool(z):
    return z.reshape(4, 2, 3, 2).max(axis=(1, 3))


def _pool_backward(z, dout, mask_all_ties):
    out = np.zeros_like(z)
    for i in range(4):
        for j in range(3):
            window = z[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            if mask_all_ties:  # the mistake: dout to every tied entry
                out[2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = (window == window.max()) * dout[i, j]
            else:  # argmax: one entry per window
                k = np.unravel_index(np.argmax(window), (2, 2))
                out[2 * i + k[0], 2 * j + k[1]] = dout[i, j]
    return out


@pytest.mark.parametrize("seed", range(4))
def test_max_pool_over_relu_output_in_directional_mode(seed):
    # Windows of exact zeros are ties; a direction crosses many at once, so a value
    # outside the one-sided slopes may still be a valid chain-rule gradient: the
    # correct argmax backward never FAILs, the equality-mask backward never PASSes.
    rng = np.random.default_rng(seed)
    z = np.maximum(rng.standard_normal((8, 6)) - 0.8, 0)
    dout = rng.standard_normal((4, 3))
    loss = lambda z: float(np.sum(_pool(z) * dout))
    right = _check(loss, lambda z: {"z": _pool_backward(z, dout, False)}, {"z": z}, mode="directional", seed=seed)
    _never_fails(right)
    wrong = _check(loss, lambda z: {"z": _pool_backward(z, dout, True)}, {"z": z}, mode="directional", seed=seed)
    assert _statuses(wrong)["z"] != "PASS", report_to_text(wrong)


# 5 (continued). A relu MLP with many samples, Richardson's large step: every crossing settled.
@pytest.mark.parametrize("seed", range(3))
def test_relu_mlp_with_a_thousand_samples_and_richardson(seed):
    report = check_model(MLP(MLPSpec.build([6, 16, 16, 3], activation="relu", m=1000, seed=seed)), method="richardson")
    assert report.passed, report_to_text(report)


@pytest.mark.parametrize("seed", range(8))
def test_max_pool_over_relu_output_with_the_taylor_test(seed):
    # The Taylor direction crosses many tied windows at once: a correct argmax backward
    # whose slope lies outside the one-sided slopes is UNRESOLVED, never FAIL.
    rng = np.random.default_rng(seed)
    z = np.maximum(rng.standard_normal((8, 6)) - 0.8, 0)
    dout = rng.standard_normal((4, 3))
    loss = lambda z: float(np.sum(_pool(z) * dout))
    report = _check(loss, lambda z: {"z": _pool_backward(z, dout, False)}, {"z": z}, taylor=True, seed=seed)
    _never_fails(report)
    p = report.parameters[0]
    if p.status == "UNRESOLVED":
        assert any("Taylor test unresolved" in r for r in p.reasons)
