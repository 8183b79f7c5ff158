"""gradcheck expr: formulas parsed into whitelisted trees, shapes matched first, then checked."""

import contextlib
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradcheck_cli import GradcheckError
from gradcheck_cli.checks.expression import check_expression
from gradcheck_cli.cli.main import cli
from gradcheck_cli.models.formulas import evaluate, infer_shape, parse_formula

LINREG = "sum((X@theta - y)**2)/(2*m)"
LINREG_SHAPES = ["--shape", "X=100x4", "--shape", "theta=4x1", "--shape", "y=100x1", "--const", "m=100"]


def _expr(runner, loss, grad, *extra):
    return runner.invoke(cli, ["expr", loss, "--grad", grad, *extra])


@pytest.mark.parametrize(
    "grad, code",
    [
        ("theta=X.T@(X@theta - y)/m", 0),  # the seed's gradient
        ("theta=X.T@(X@theta - y)", 1),  # the 1/m forgotten: shapes match, the numbers do not
        ("theta=X.T@(y - X@theta)/m", 1),  # the sign
    ],
)
def test_linear_regression_as_the_seed_derives_it(runner, grad, code):
    assert _expr(runner, LINREG, grad, *LINREG_SHAPES, "-q").exit_code == code


@pytest.mark.parametrize(
    "grad, message",
    [
        ("theta=(X@theta - y).T@X/m", "Error: `(X@theta - y).T@X/m` is 1x4, `theta` is 4x1: transpose it\n"),
        (
            "theta=X@(X@theta - y)/m",
            "Error: `X@(X@theta - y)`: `X` is 100x4, `X@theta - y` is 100x1; transpose `X` (`X`.T is 4x100)\n",
        ),
        (
            "theta=X.T@(X@theta - z)/m",
            "Error: `z` in `X.T@(X@theta - z)/m` has no shape; give --shape z=SHAPE (e.g. 4x1)\n",
        ),
    ],
)
def test_dimensions_that_do_not_match_are_named_as_the_seed_would(runner, grad, message):
    result = _expr(runner, LINREG, grad, *LINREG_SHAPES)
    assert result.exit_code == 2 and result.stderr == message


SIGMOID_LAYER = "sum((sigmoid(X@W) - Y)**2)/2"
LAYER_SHAPES = ["--shape", "X=16x3", "--shape", "W=3x2", "--shape", "Y=16x2"]


@pytest.mark.parametrize(
    "grad, code",
    [
        ("W=X.T@((sigmoid(X@W) - Y)*sigmoid(X@W)*(1 - sigmoid(X@W)))", 0),
        # The seed's classic slip: sigma' applied to the activation's output, not its input.
        ("W=X.T@((sigmoid(X@W) - Y)*sigmoid(sigmoid(X@W))*(1 - sigmoid(sigmoid(X@W))))", 1),
    ],
)
def test_a_sigmoid_layer_right_and_with_the_classic_slip(runner, grad, code):
    assert _expr(runner, SIGMOID_LAYER, grad, *LAYER_SHAPES, "-q").exit_code == code


@pytest.mark.parametrize(
    "formula, piece",
    [
        ("__import__('os').system('touch pwned')", "__import__('os').system"),
        ("X.__class__", "X.__class__"),
        ("open('pwned', 'w')", "open"),
        ("[t for t in X]", "[t for t in X]"),
        ("(lambda: X)()", "lambda: X"),
        ("X[0]", "X[0]"),
        ("sum(X, axis=0)", "sum(X, axis=0)"),
        ("_secret", "_secret"),
        ("'text'", "'text'"),
    ],
)
def test_hostile_formulas_are_refused_and_run_nothing(runner, tmp_path, monkeypatch, formula, piece):
    monkeypatch.chdir(tmp_path)
    result = _expr(runner, "sum(X**2)", f"X={formula}", "--shape", "X=3")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: the gradient of X {formula!r}: {piece!r} is ")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "pwned").exists()


def test_a_huge_shape_is_refused_before_anything_is_drawn(runner):
    result = _expr(runner, "sum(X**2)", "X=2*X", "--shape", "X=100000x100000")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: the formulas' arrays needs 74.5 GiB of memory; the limit is 2 GiB")


def test_the_api_and_data():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((30, 3)), rng.standard_normal((30, 1))
    report = check_expression(
        LINREG, {"theta": "X.T@(X@theta - y)/m"}, {"theta": (3, 1)}, data={"X": X, "y": y}, const={"m": 30}
    )
    assert report.status == "PASS" and report.model["model"] == "expr"


def test_the_evaluator_computes_what_numpy_does():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    v = np.array([1.0, -2.0])
    values = {"A": A, "v": v}
    cases = {
        "trace(inv(A)) + logdet(A) - det(A)": np.trace(np.linalg.inv(A)) + np.log(np.linalg.det(A)) - np.linalg.det(A),
        "sum(diag(v) @ A.T) * norm(v)": np.sum(np.diag(v) @ A.T) * np.linalg.norm(v),
        "sum(outer(v, v) + eye(2) + ones(2, 2)) ** 2": np.sum(np.outer(v, v) + np.eye(2) + np.ones((2, 2))) ** 2,
        "mean(relu(v) + softplus(v) + abs(v) + tanh(v) + log1p(exp(v)) - sqrt(exp(v)))": np.mean(
            np.maximum(v, 0) + np.logaddexp(0, v) + np.abs(v) + np.tanh(v) + np.log1p(np.exp(v)) - np.sqrt(np.exp(v))
        ),
    }
    for formula, expected in cases.items():
        node = parse_formula(formula)
        assert infer_shape(node, {"A": (2, 2), "v": (2,)}) == ()
        assert np.isclose(evaluate(node, values), expected), formula


ATOMS = st.sampled_from(["X", "v", "s", "2", "0.5", "X.T", "v.T"])
FUNCTIONS = st.sampled_from(
    ["sum", "exp", "log", "tanh", "relu", "inv", "diag", "trace", "det", "norm", "outer", "eye"]
)


def _formula(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "@"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(FUNCTIONS, children).map(lambda t: f"{t[0]}({t[1]})"),
        children.map(lambda c: f"-{c}"),
        children.map(lambda c: f"({c}).T"),
    )


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formula=st.recursive(ATOMS, _formula, max_leaves=6))
def test_random_formula_trees_never_give_a_traceback(formula):
    # Refused, a shape named, or the formula's own failure said in one line: never another exception.
    with np.errstate(all="ignore"), contextlib.suppress(GradcheckError):
        check_expression(f"sum({formula})", {"s": "0*s"}, {"X": (3, 3), "v": (3,), "s": ()}, method="central")


def test_explain_shows_the_dimension_matching_step_by_step(runner):
    result = _expr(runner, LINREG, "theta=X.T@(X@theta - y)/m", *LINREG_SHAPES, "--explain")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    start = lines.index("the gradient of theta: X.T@(X@theta - y)/m")
    assert lines[start + 1 : start + 6] == [
        "    X.T: (100x4).T -> 4x100",
        "    X@theta: 100x4 @ 4x1 -> 100x1",
        "    X@theta - y: 100x1 - 100x1 -> 100x1",
        "    X.T@(X@theta - y): 4x100 @ 100x1 -> 4x1",
        "    X.T@(X@theta - y)/m: 4x1 / scalar -> 4x1",
    ]


@pytest.mark.parametrize("grad, code", [("w=X.T@step(X@w)", 0), ("w=X.T@sign(X@w)", 1)])
def test_relu_and_its_step(runner, grad, code):
    assert _expr(runner, "sum(relu(X@w))", grad, "--shape", "X=5x3", "--shape", "w=3", "-q").exit_code == code


def test_expr_checks_in_a_suite(runner, tmp_path):
    np.savez(tmp_path / "z.npz", X=np.array([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]]))
    suite = tmp_path / "s.toml"
    suite.write_text(
        """
[[check]]
name = "right"
model = "expr"
loss = "sum((X@theta - y)**2)/(2*m)"
grad = { theta = "X.T@(X@theta - y)/m" }
shape = { X = "100x4", theta = "4x1", y = "100x1" }
const = { m = 100 }

[[check]]
name = "forgot 1/m"
model = "expr"
loss = "sum((X@theta - y)**2)/(2*m)"
grad = { theta = "X.T@(X@theta - y)" }
shape = { X = "100x4", theta = "4x1", y = "100x1" }
const = { m = 100 }

[[check]]
name = "data from the suite's folder"
model = "expr"
loss = "sum(relu(X@w))"
grad = { w = "X.T@step(X@w)" }
shape = { w = "3" }
data = "z.npz"
""",
        encoding="utf-8",
    )
    result = runner.invoke(cli, ["run", str(suite), "--json"])
    assert result.exit_code == 1
    assert [c["status"] for c in json.loads(result.stdout)["checks"]] == ["PASS", "FAIL", "PASS"]


def test_a_suite_key_of_the_wrong_kind_names_file_line_and_key(runner, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('[[check]]\nname = "a"\nmodel = "expr"\nloss = "sum(X)"\ngrad = { X = 3 }\n', encoding="utf-8")
    result = runner.invoke(cli, ["run", str(suite)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {suite}:5: key 'grad' in check 'a': X: 3 is not a non-empty string; e.g. theta='X.T@(X@theta - y)/m'\n"
    )


def test_the_classic_slip_is_named_when_the_gradient_fails(runner):
    slip = "W=X.T@((sigmoid(X@W) - Y)*sigmoid(sigmoid(X@W))*(1 - sigmoid(sigmoid(X@W))))"
    result = _expr(runner, SIGMOID_LAYER, slip, *LAYER_SHAPES, "--json")
    assert result.exit_code == 1
    (note,) = json.loads(result.stdout)["notes"]
    assert note.startswith("the gradient of W applies an activation to its own output (sigmoid(sigmoid(X@W)))")
    right = _expr(runner, SIGMOID_LAYER, "W=X.T@((sigmoid(X@W) - Y)*sigmoid(X@W)*(1 - sigmoid(X@W)))", *LAYER_SHAPES)
    assert right.exit_code == 0 and "own output" not in right.stdout


@pytest.mark.parametrize(
    "loss, grad, code",
    [
        ("sum(softplus(X@w))", "w=X.T@sigmoid(X@w)", 0),  # analytic: the complex step applies
        ("sum(softplus(X@w))", "w=X.T@tanh(X@w)", 1),
        ("sum(relu(X@w))", "w=X.T@step(X@w)", 2),  # a kink: the complex step cannot see it
    ],
)
def test_the_complex_step_where_every_function_is_analytic(runner, loss, grad, code):
    result = _expr(runner, loss, grad, "--shape", "X=5x3", "--shape", "w=3", "--method", "complex", "-q")
    assert result.exit_code == code
    if code == 2:
        assert result.stderr == (
            "Error: Invalid value for '--method': the complex step needs analytic functions, and the loss uses "
            "relu; use another method (central, the default, judges kinks by the subgradient rule)\n"
        )
