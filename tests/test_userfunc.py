"""gradcheck func and the Python API on a user's own code."""

import json
import runpy
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gradcheck_cli import assert_gradients, check_gradients
from gradcheck_cli.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "two_layer.py")
ABS = str(ROOT / "examples" / "abs_sum.py")
SHAPES = ["--param", "W1=4x8", "--param", "b1=8", "--param", "W2=8x2", "--param", "b2=2"]


def _func(runner, grad="grad", *extra, loss=None):
    return runner.invoke(cli, ["func", loss or f"{EXAMPLE}:loss", "--grad", f"{EXAMPLE}:{grad}", *SHAPES, *extra])


def test_correct_example_passes(runner):
    result = _func(runner)
    assert result.exit_code == 0, result.output
    assert "PASS  4 parameters, 0 failed" in result.output


def test_wrong_example_fails_on_the_right_parameters(runner):
    result = _func(runner, "grad_wrong", "--json")
    assert result.exit_code == 1
    status = {p["name"]: p["status"] for p in json.loads(result.stdout)["parameters"]}
    assert status == {"W1": "FAIL", "b1": "FAIL", "W2": "PASS", "b2": "PASS"}


@pytest.mark.parametrize(
    "options",
    [
        ["--method", "complex"],
        ["--method", "richardson"],
        ["--mode", "sample"],
        ["--mode", "directional"],
        ["--taylor"],
        ["--dtype", "float32"],
    ],
)
def test_every_option_works_for_func(runner, options):
    assert _func(runner, "grad", *options).exit_code == 0
    assert _func(runner, "grad_wrong", *options).exit_code == 1


def _write(tmp_path, body, name="user.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


USER = """
import numpy as np

def loss(W, b):
    return float(np.sum(W ** 2) + np.sum(b))

def grad(W, b):
    return {"W": 2 * W, "b": np.ones_like(b)}

def grad_shape(W, b):
    return {"W": (2 * W).T, "b": np.ones_like(b)}

def grad_missing(W, b):
    return {"W": 2 * W}

def grad_extra(W, b):
    return {"W": 2 * W, "b": np.ones_like(b), "c": 1.0}

def grad_nan(W, b):
    g = 2 * W
    g[1, 2] = np.nan
    return {"W": g, "b": np.ones_like(b)}

def grad_tuple(W, b):
    return 2 * W, np.ones_like(b)

def loss_vector(W, b):
    return W.sum(axis=0)

def loss_nan(W, b):
    return float("nan")

def loss_raises(W, b):
    return helper(W)

def helper(W):
    raise ValueError("shapes do not align in my forward pass")
"""


@pytest.mark.parametrize(
    "loss, grad, message",
    [
        ("loss", "grad_shape", "Error: {path}:grad_shape: W has shape (3, 2), expected (2, 3) (the shape of W)"),
        ("loss", "grad_missing", "Error: {path}:grad_missing returned no entry for b; expected keys W, b"),
        ("loss", "grad_extra", "Error: {path}:grad_extra returned unknown keys c; expected keys W, b"),
        ("loss", "grad_nan", "Error: {path}:grad_nan: W is nan at [1, 2]; gradients must be finite"),
        (
            "loss_vector",
            "grad",
            "Error: {path}:loss_vector must return a scalar; got an array of shape (3,) at the starting point",
        ),
        (
            "loss_nan",
            "grad",
            "Error: {path}:loss_nan returned nan at the starting point; the loss must be a finite number",
        ),
        (
            "loss",
            "nothere",
            "Error: Invalid value for '--grad': {path} has no function 'nothere'; functions defined there: grad, grad_extra, "
            "grad_missing, grad_nan, grad_shape, grad_tuple, helper, loss, loss_nan, loss_raises, "
            "loss_vector",
        ),
    ],
)
def test_user_errors_are_one_clear_line_with_exit_2(runner, tmp_path, loss, grad, message):
    path = _write(tmp_path, USER)
    result = runner.invoke(
        cli, ["func", f"{path}:{loss}", "--grad", f"{path}:{grad}", "--param", "W=2x3", "--param", "b=3"]
    )
    assert result.exit_code == 2
    assert result.stderr == message.format(path=path) + "\n"
    assert result.stdout == ""


def test_param_names_must_match_the_function_arguments(runner, tmp_path):
    path = _write(tmp_path, USER)
    result = runner.invoke(
        cli, ["func", f"{path}:loss", "--grad", f"{path}:grad", "--param", "W=2x3", "--param", "c=3"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: Invalid value for '--param': {path}:loss takes (W, b) but the parameters are W, c (missing a required "
        f"argument: 'b'); name each parameter after an argument\n"
    )


def test_a_step_that_leaves_the_domain_is_retried_smaller(runner, tmp_path):
    # The loss is nan for W[0, 1] >= 0.5; W[0, 1] = 0.49999999 sits 1e-8 from that edge.
    # The ladder's first steps leave the domain; smaller ones do not: a verdict, not an error.
    path = _write(
        tmp_path,
        """
    import numpy as np

    def loss(W):
        return float(np.sum(W ** 2)) if W[0, 1] < 0.5 else float("nan")

    def grad(W):
        return {"W": 2 * W}
    """,
    )
    init = tmp_path / "edge.npz"
    np.savez(init, W=np.array([[0.1, 0.49999999], [0.3, 0.2]]))
    result = runner.invoke(cli, ["func", f"{path}:loss", "--grad", f"{path}:grad", "--init", str(init), "-q"])
    assert result.exit_code == 0, result.output
    # On the edge itself no step stays inside on both sides: UNRESOLVED, with the reason.
    np.savez(init, W=np.array([[0.1, 0.5 - 1e-15], [0.3, 0.2]]))
    result = runner.invoke(cli, ["func", f"{path}:loss", "--grad", f"{path}:grad", "--init", str(init)])
    assert result.exit_code == 3, result.output
    assert "W: 1 unresolved: the loss is not finite at nearby points" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("UNRESOLVED  1 parameter, 0 failed, 1 unresolved")
    ok = runner.invoke(
        cli, ["func", f"{path}:loss", "--grad", f"{path}:grad", "--init", str(init), "--allow-unresolved", "-q"]
    )
    assert ok.exit_code == 0


def test_missing_file(runner, tmp_path):
    result = runner.invoke(cli, ["func", "nowhere.py:loss", "--grad", "nowhere.py:grad", "--param", "W=2"])
    assert result.exit_code == 2
    assert (
        result.stderr
        == "Error: Invalid value for 'FILE.py:FUNCTION': file 'nowhere.py' not found; give an existing FILE.py:FUNCTION\n"
    )


@pytest.mark.parametrize(
    "param, message",
    [
        (
            "W=2xa",
            "Error: Invalid value for '--param': shape '2xa': 'a' is not a whole number; e.g. W=4x3, b=3, s= (a scalar)",
        ),
        ("W", "Error: Invalid value for '--param': 'W' is not NAME=SHAPE; e.g. W=4x3, b=3, s= (a scalar)"),
        ("W=0x3", "Error: Invalid value for '--param': shape '0x3': every dimension must be >= 1; e.g. W=4x3"),
    ],
)
def test_bad_param_option(runner, tmp_path, param, message):
    path = _write(tmp_path, USER)
    result = runner.invoke(cli, ["func", f"{path}:loss", "--grad", f"{path}:grad", "--param", param])
    assert result.exit_code == 2 and result.stderr == message + "\n"


def test_exception_in_user_code_shows_the_users_frames(runner, tmp_path):
    path = _write(tmp_path, USER)
    result = runner.invoke(
        cli, ["func", f"{path}:loss_raises", "--grad", f"{path}:grad", "--param", "W=2x3", "--param", "b=3"]
    )
    assert result.exit_code == 2
    err = result.stderr.splitlines()
    assert err[0] == "Traceback (user code, most recent call last):"
    assert any("in loss_raises" in line for line in err) and any("in helper" in line for line in err)
    assert not any("gradcheck_cli" in line for line in err)
    assert err[-1] == (f"Error: {path}:loss_raises raised ValueError: shapes do not align in my forward pass")


def test_tuple_gradient_and_init_file(runner, tmp_path):
    path = _write(tmp_path, USER)
    init = tmp_path / "start.npz"
    np.savez(init, W=np.arange(6.0).reshape(2, 3), b=np.zeros(3))
    result = runner.invoke(cli, ["func", f"{path}:loss", "--grad", f"{path}:grad_tuple", "--init", str(init), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [p["shape"] for p in data["parameters"]] == [[2, 3], [3]]
    bad = runner.invoke(
        cli,
        ["func", f"{path}:loss", "--grad", f"{path}:grad", "--init", str(init), "--param", "W=3x2", "--param", "b=3"],
    )
    assert bad.exit_code == 2
    assert bad.stderr == f"Error: Invalid value for '--init': W in {init} has shape (2, 3), but it is declared (3, 2)\n"


def test_abs_sum_at_exact_zeros_uses_the_subgradient_rule(runner, tmp_path):
    init = tmp_path / "zeros.npz"
    np.savez(init, W=np.array([[0.0, 1.5, 0.0], [-2.0, 0.0, 0.3]]))
    ok = runner.invoke(cli, ["func", f"{ABS}:loss", "--grad", f"{ABS}:grad", "--init", str(init), "--json"])
    # sign(0) = 0 is the central difference itself: it passes at the first step.
    assert ok.exit_code == 0, ok.output
    # 1 at the kink is a valid subgradient (the right slope) that no single central
    # difference gives: it passes by the subgradient rule, the kinks found.
    edge = tmp_path / "edge.py"
    edge.write_text("import numpy as np\ndef grad(W):\n    return {'W': np.where(W >= 0, 1.0, -1.0)}\n")
    ok = runner.invoke(cli, ["func", f"{ABS}:loss", "--grad", f"{edge}:grad", "--init", str(init), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["parameters"][0]["kink_entries"] == 3
    bad = runner.invoke(cli, ["func", f"{ABS}:loss", "--grad", f"{ABS}:grad_outside", "--init", str(init), "--json"])
    assert bad.exit_code == 1
    p = json.loads(bad.stdout)["parameters"][0]
    assert p["status"] == "FAIL" and p["failures"] == 3 and p["kink_entries"] == 3


@pytest.mark.parametrize("method", ["central", "forward", "richardson"])
def test_abs_sum_kinks_for_every_real_method(method):
    W = np.array([0.0, 1.5, 0.0, -2.0])
    loss = lambda p: float(np.sum(np.abs(p["W"])))
    assert check_gradients(loss, lambda p: {"W": np.sign(p["W"])}, {"W": W}, method=method).passed
    assert check_gradients(
        loss, lambda p: {"W": np.where(p["W"] == 0, 0.5, np.sign(p["W"]))}, {"W": W}, method=method
    ).passed
    assert not check_gradients(
        loss, lambda p: {"W": np.where(p["W"] == 0, -1.5, np.sign(p["W"]))}, {"W": W}, method=method
    ).passed


def test_complex_step_on_a_loss_that_drops_the_imaginary_part_is_an_input_error(runner):
    result = runner.invoke(
        cli, ["func", f"{ABS}:loss", "--grad", f"{ABS}:grad", "--param", "W=3", "--method", "complex"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {ABS}:loss dropped the imaginary part of its complex input (float(), abs, "
        f".real or a real array do that), so the complex step cannot see its derivative; keep "
        f"the loss complex-safe or use the central method\n"
    )


def test_smooth_wrong_gradient_is_not_excused_as_a_kink():
    report = check_gradients(
        lambda p: float(np.sum(np.sin(p["x"]))), lambda p: {"x": np.cos(p["x"]) * 1.001}, {"x": np.linspace(-3, 3, 50)}
    )
    assert not report.passed and int(report.parameters[0].kinks.sum()) == 0


def test_relu_kink_near_the_point_is_settled_by_a_smaller_step():
    x = np.array([1e-3, -2e-3, 0.5])
    report = check_gradients(
        lambda p: float(np.sum(np.maximum(p["x"], 0))), lambda p: {"x": (p["x"] > 0) * 1.0}, {"x": x}, eps=0.01
    )
    assert report.passed


def test_api_matches_the_cli(runner):
    import importlib.util

    spec = importlib.util.spec_from_file_location("two_layer_api", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    params = {n: rng.standard_normal(s) for n, s in [("W1", (4, 8)), ("b1", (8,)), ("W2", (8, 2)), ("b2", (2,))]}
    for grad in ("grad", "grad_wrong"):
        report = check_gradients(lambda p: module.loss(**p), lambda p: getattr(module, grad)(**p), params)
        cli_data = json.loads(_func(runner, grad, "--json").stdout)
        assert report.passed == cli_data["passed"]
        for p, q in zip(report.to_dict()["parameters"], cli_data["parameters"], strict=False):
            assert p["status"] == q["status"]
            assert p["max_abs_error"] == pytest.approx(q["max_abs_error"], rel=1e-9, abs=1e-15)
            assert p["worst"] == q["worst"]


def test_assert_gradients_passes_silently_and_raises_with_the_table():
    loss = lambda p: float(np.sum(p["w"] ** 3))
    report = assert_gradients(loss, lambda p: {"w": 3 * p["w"] ** 2}, {"w": np.linspace(-1, 1, 5)})
    assert report.passed
    with pytest.raises(AssertionError) as info:
        assert_gradients(loss, lambda p: {"w": 2 * p["w"] ** 2}, {"w": np.linspace(-1, 1, 5)})
    message = str(info.value)
    assert "gradient check failed" in message and "FAIL" in message
    assert any(line.split()[:1] == ["w"] and line.split()[-1] == "FAIL" for line in message.splitlines())


WRITTEN = Path(__file__).resolve().parent.parent / "examples" / "as_written.py"


def _folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **modules: str) -> Path:
    """The working folder of a test: examples/as_written.py (the conventions as
    written, which the modules import) beside ``modules`` (name -> source)."""
    shutil.copy(WRITTEN, tmp_path / "as_written.py")
    for name, source in modules.items():
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


# ---- a single derivative as a bare array -------------------------------------------------------

BARE = '''
import numpy as np

from as_written import rosen, rosen_der, rosen_hess_prod  # scipy's conventions: bare arrays, hessp(x, p)


def rosen_der_wrong(x):
    der = rosen_der(x)
    der[2] *= 1.01  # one entry 1% off
    return der


def rosen_hvp(v, x):
    """H v (v: a dict, --hvp's convention), returned bare: a wrong Hessian, 200 I."""
    return 200 * v["x"]


def relu_forward(x):
    return np.maximum(0, x)


def relu_backward(dout, x):
    return dout * (x > 0)


def relu_backward_wrong(dout, x):
    return dout * (x < 0)  # the mask flipped


def rosen_hess_prod_wrong(x, p):
    hp = rosen_hess_prod(x, p)
    hp[-1] += 2 * p[-1]  # the last diagonal entry 1% off
    return hp


def quartic(x):
    return float(np.sum(x**4))


def quartic_grad(x):
    return 4 * x**3


def quartic_hvp(v, x):
    return 12 * x**2 * v["x"]


def two(x, y):
    return float(np.sum(x * y))


def two_grad(x, y):
    return y
'''


@pytest.mark.parametrize(
    "args, code",
    [
        (["bare.py:rosen", "--grad", "bare.py:rosen_der", "--param", "x=6"], 0),
        (["bare.py:rosen", "--grad", "bare.py:rosen_der_wrong", "--param", "x=6"], 1),
        (["bare.py:relu_forward", "--vjp", "bare.py:relu_backward", "--param", "x=3x4"], 0),
        (["bare.py:relu_forward", "--vjp", "bare.py:relu_backward_wrong", "--param", "x=3x4"], 1),
        (["bare.py:quartic", "--hvp", "bare.py:quartic_hvp", "--grad", "bare.py:quartic_grad", "--param", "x=6"], 0),
        (["bare.py:rosen", "--hvp", "bare.py:rosen_hvp", "--grad", "bare.py:rosen_der", "--param", "x=6"], 1),
        (["bare.py:rosen", "--hessp", "bare.py:rosen_hess_prod", "--grad", "bare.py:rosen_der", "--param", "x=6"], 0),
        (["bare.py:rosen", "--hessp", "bare.py:rosen_hess_prod", "--param", "x=6"], 0),
        (["bare.py:rosen", "--hessp", "bare.py:rosen_hess_prod_wrong", "--param", "x=6"], 1),
    ],
    ids=["grad", "grad-wrong", "vjp", "vjp-wrong", "hvp", "hvp-wrong", "hessp", "hessp-alone", "hessp-wrong"],
)
def test_one_parameter_takes_a_bare_array(runner, tmp_path, monkeypatch, args, code):
    _folder(tmp_path, monkeypatch, bare=BARE)
    result = runner.invoke(cli, ["func", *args, "-q"])
    assert result.exit_code == code, result.output


def test_a_bare_array_for_several_parameters_is_one_line(runner, tmp_path, monkeypatch):
    _folder(tmp_path, monkeypatch, bare=BARE)
    result = runner.invoke(
        cli, ["func", "bare.py:two", "--grad", "bare.py:two_grad", "--param", "x=3", "--param", "y=3"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: bare.py:two_grad returned one array, but there are 2 parameters (x, y); return a dict name -> "
        "array, or a tuple in parameter order\n"
    )


def test_hessp_takes_one_parameter(runner, tmp_path, monkeypatch):
    _folder(tmp_path, monkeypatch, bare=BARE)
    args = ["func", "bare.py:two", "--hessp", "bare.py:rosen_hess_prod", "--param", "x=3", "--param", "y=3"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Invalid value for '--hessp': scipy's hessp(x, p) takes one parameter, x, but there are 2 (x, y); "
        "give one, or --hvp HVP(v, **params) for several\n"
    )


def test_hessp_in_a_suite(runner, tmp_path, monkeypatch):
    _folder(tmp_path, monkeypatch, bare=BARE)
    suite = tmp_path / "s.toml"
    suite.write_text(
        '[[check]]\nname = "ok"\nmodel = "func"\nloss = "bare.py:rosen"\nhessp = "bare.py:rosen_hess_prod"\n'
        'params = { x = "6" }\n\n[[check]]\nname = "wrong"\nmodel = "func"\nloss = "bare.py:rosen"\n'
        'hessp = "bare.py:rosen_hess_prod_wrong"\nparams = { x = "6" }\n',
        encoding="utf-8",
    )
    result = runner.invoke(cli, ["run", str(suite), "--json"])
    assert result.exit_code == 1
    assert [c["status"] for c in json.loads(result.stdout)["checks"]] == ["PASS", "FAIL"]


BATCHNORM = '''
import numpy as np


def forward(x, gamma, beta, bn_param):
    """CS231n's habit: the forward keeps its running mean in the parameter dict."""
    mu, var = x.mean(axis=0), x.var(axis=0)
    bn_param["running_mean"] = 0.9 * bn_param.get("running_mean", np.zeros_like(mu)) + 0.1 * mu
    return gamma * (x - mu) / np.sqrt(var + 1e-5) + beta


def backward(dout, x, gamma, beta, bn_param):
    n, mu, std = x.shape[0], x.mean(0), np.sqrt(x.var(0) + 1e-5)
    xhat = (x - mu) / std
    dxhat = dout * gamma
    dx = (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (n * std)
    return {"x": dx, "gamma": (dout * xhat).sum(0), "beta": dout.sum(0)}
'''


def test_a_forward_that_writes_into_its_constant_keeps_json_whole_and_is_named(runner, tmp_path, monkeypatch):
    _folder(tmp_path, monkeypatch, bn=BATCHNORM)
    args = ["func", "bn.py:forward", "--vjp", "bn.py:backward", "--param", "x=6x3", "--param", "gamma=3"]
    result = runner.invoke(cli, [*args, "--param", "beta=3", "--const", 'bn_param={"mode": "train"}', "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"]["const"] == {"bn_param": {"mode": "train"}}  # the value given, not the user's writes
    assert data["notes"] == [
        "the code under test changed the fixed input bn_param while it ran (the check passes it a copy of the value "
        "given, which the report shows)"
    ]


def test_any_value_in_a_report_renders_as_json():
    from gradcheck_cli.core.result import json_safe

    value = {"a": np.arange(3.0), "b": np.float32(2.5), "c": np.zeros((100, 100)), "d": object, "e": float("nan")}
    assert json.loads(json.dumps(json_safe(value))) == {
        "a": [0.0, 1.0, 2.0],
        "b": 2.5,
        "c": "array of shape (100, 100), dtype float64",
        "d": "<class 'object'>",
        "e": "nan",
    }


# ---- a loss that returns (loss, gradient) ------------------------------------------------------

PAIRS = """
from as_written import softmax_loss  # CS231n's convention: (loss, dx)


def softmax_loss_wrong(x, y):
    loss, dx = softmax_loss(x, y)
    return loss, dx * x.shape[0]  # the 1/N forgotten


def just_dx(x, y):
    return softmax_loss(x, y)[1]
"""


@pytest.fixture
def pairs(tmp_path, monkeypatch):
    np.savez(tmp_path / "labels.npz", y=np.array([0, 2, 1, 2, 0]))
    return _folder(tmp_path, monkeypatch, pairs=PAIRS)


@pytest.mark.parametrize("function, code", [("softmax_loss", 0), ("softmax_loss_wrong", 1)])
def test_value_and_grad_checks_the_gradient_the_loss_returns(runner, pairs, function, code):
    args = ["func", f"pairs.py:{function}", "--value-and-grad", "--param", "x=5x3", "--data", "labels.npz", "-q"]
    assert runner.invoke(cli, args).exit_code == code


@pytest.mark.parametrize(
    "grad, message",
    [
        (
            "softmax_loss",
            "Error: pairs.py:softmax_loss returned a number and an array, a (loss, gradient) pair; give the function "
            "with --value-and-grad to check the gradient it returns\n",
        ),
        (
            "just_dx",
            "Error: pairs.py:softmax_loss returned a tuple of 2 at the starting point; return the loss alone (a "
            "float), e.g. 'return loss', not 'return loss, dx', or give --value-and-grad to check the dx it returns\n",
        ),
    ],
)
def test_a_pair_given_without_value_and_grad_names_the_option(runner, pairs, grad, message):
    args = ["func", "pairs.py:softmax_loss", "--grad", f"pairs.py:{grad}", "--param", "x=5x3", "--data", "labels.npz"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2 and result.stderr == message


def test_value_and_grad_in_a_suite_and_through_the_api(runner, pairs):
    suite = pairs / "s.toml"
    suite.write_text(
        '[[check]]\nname = "pair"\nmodel = "func"\nloss = "pairs.py:softmax_loss"\nvalue_and_grad = true\n'
        'params = { x = "5x3" }\ndata = "labels.npz"\n',
        encoding="utf-8",
    )
    assert runner.invoke(cli, ["run", str(suite), "-q"]).exit_code == 0
    namespace = runpy.run_path(str(pairs / "pairs.py"))
    y = np.array([0, 2, 1, 2, 0])
    x = {"x": np.random.default_rng(3).normal(size=(5, 3))}
    right = check_gradients(lambda p: namespace["softmax_loss"](p["x"], y), None, x, value_and_grad=True)
    wrong = check_gradients(lambda p: namespace["softmax_loss_wrong"](p["x"], y), None, x, value_and_grad=True)
    assert (right.status, wrong.status) == ("PASS", "FAIL")


# ---- methods of module-level objects -----------------------------------------------------------

OBJECTS = '''
import as_written


class Rosenbrock(as_written.Problem):
    """scipy's test problems keep fun, jac and hess on an object."""

    @staticmethod
    def unscaled(x):
        return Rosenbrock(1.0).jac(x)


class Gradient:
    def __call__(self, x):
        return problem.jac(x)


problem = Rosenbrock(2.0)
gradient = Gradient()
'''


@pytest.mark.parametrize(
    "grad, extra, code",
    [
        ("problem.jac", [], 0),  # a bound method
        ("gradient", [], 0),  # a callable instance
        ("problem.unscaled", [], 1),  # a static method: missing the scale of 2
        ("problem.jac", ["--workers", "2"], 0),  # pickled by reference to the module and the path
    ],
)
def test_a_method_of_a_module_level_object_is_a_target(runner, tmp_path, monkeypatch, grad, extra, code):
    _folder(tmp_path, monkeypatch, objects=OBJECTS)
    args = ["func", "objects.py:problem.fun", "--grad", f"objects.py:{grad}", "--param", "x=5", "-q", *extra]
    assert runner.invoke(cli, args).exit_code == code


def test_a_missing_method_lists_the_objects_methods(runner, tmp_path, monkeypatch):
    _folder(tmp_path, monkeypatch, objects=OBJECTS)
    result = runner.invoke(
        cli, ["func", "objects.py:problem.fun", "--grad", "objects.py:problem.jacc", "--param", "x=5"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Invalid value for '--grad': objects.py:problem has no attribute 'jacc'; its methods: fun, jac, unscaled\n"
    )


# ---- elementwise derivatives -------------------------------------------------------------------

ACTIVATIONS = '''
import numpy as np
from math import pi, sqrt

import as_written


class GELU(as_written.GELU):
    """numpy-ml's convention: fn(z) beside grad(x) and grad2(x), the names differ."""

    def grad_wrong(self, x):
        s, c = sqrt(2 / pi), 0.044715
        t = np.tanh(s * (x + c * x**3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * s  # the cubic term's derivative forgotten


def softplus(z):
    return np.logaddexp(0, z)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_grad(x):
    return sigmoid(x) * (1 - sigmoid(x))


def sigmoid_grad_wrong(x):
    return sigmoid(x) * (1 - sigmoid(x)) * 1.01


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def softmax_diagonal(x):
    return softmax(x) * (1 - softmax(x))  # only the diagonal of a full Jacobian


gelu = GELU()
'''


@pytest.mark.parametrize(
    "args, code",
    [
        (["act.py:gelu.fn", "--deriv", "act.py:gelu.grad"], 0),
        (["act.py:gelu.fn", "--deriv", "act.py:gelu.grad_wrong"], 1),
        (["act.py:softplus", "--deriv", "act.py:sigmoid", "--deriv2", "act.py:sigmoid_grad"], 0),
        (["act.py:softplus", "--deriv", "act.py:sigmoid", "--deriv2", "act.py:sigmoid_grad_wrong"], 1),
        (["act.py:softmax", "--deriv", "act.py:softmax_diagonal"], 1),  # not elementwise: its Jacobian is full
    ],
    ids=["gelu", "gelu-wrong", "second", "second-wrong", "not-elementwise"],
)
def test_elementwise_derivatives(runner, tmp_path, monkeypatch, args, code):
    _folder(tmp_path, monkeypatch, act=ACTIVATIONS)
    result = runner.invoke(cli, ["func", *args, "--param", "z=64", "--json"])
    assert result.exit_code == code, result.output
    evaluations = json.loads(result.stdout)["loss_evaluations"]
    assert evaluations < 64  # every entry moves at once: far fewer evaluations than entries


def test_a_second_derivative_needs_the_first(runner, tmp_path, monkeypatch):
    _folder(tmp_path, monkeypatch, act=ACTIVATIONS)
    result = runner.invoke(cli, ["func", "act.py:softplus", "--deriv2", "act.py:sigmoid_grad", "--param", "z=4"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Invalid value for '--deriv2': the elementwise second derivative is checked as the derivative of "
        "--deriv; give --deriv too\n"
    )


# ---- layers of several outputs, backward passes that write into their dout ---------------------

LSTM = """import numpy as np

from as_written import lstm_step_backward, lstm_step_forward  # writes into its dnext_c, as CS231n's does


def lstm_step_backward_wrong(dnext_h, dnext_c, cache):
    grads = lstm_step_backward(dnext_h, dnext_c, cache)
    grads["prev_c"] = grads["prev_c"] * 0  # the cell state's path dropped
    return grads


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    \"\"\"CS231n's: writes into its dout.\"\"\"
    dx = dout
    dx[cache <= 0] = 0
    return dx
"""

LSTM_INPUTS = ["--param", "x=3x4", "--param", "prev_h=3x5", "--param", "prev_c=3x5", "--param", "Wx=4x20"]


@pytest.mark.parametrize("backward, code", [("lstm_step_backward", 0), ("lstm_step_backward_wrong", 1)])
def test_a_forward_of_several_outputs_gets_one_dout_each(runner, tmp_path, monkeypatch, backward, code):
    _folder(tmp_path, monkeypatch, lstm=LSTM)
    args = ["func", "lstm.py:lstm_step_forward", "--vjp", f"lstm.py:{backward}", *LSTM_INPUTS]
    result = runner.invoke(cli, [*args, "--param", "Wh=5x20", "--param", "b=20", "-q"])
    assert result.exit_code == code, result.output


def test_a_backward_that_writes_into_its_dout_gets_a_copy(runner, tmp_path, monkeypatch):
    _folder(tmp_path, monkeypatch, lstm=LSTM)
    args = ["func", "lstm.py:relu_forward", "--vjp", "lstm.py:relu_backward", "--param", "x=4x6", "-q"]
    assert runner.invoke(cli, args).exit_code == 0


def test_one_wrong_entry_of_an_hvp_is_named_as_the_products_entry():
    from gradcheck_cli.checks.derivatives import check_hessian

    def hvp(v, p):
        out = 12 * p["x"] ** 2 * v["x"]
        out[2] *= 1.05  # row 2 of H is 5% off
        return {"x": out}

    report = check_hessian(
        lambda p: float(np.sum(p["x"] ** 4)),
        {"x": np.linspace(0.5, 1.5, 6)},
        hvp=hvp,
        gradient=lambda p: {"x": 4 * p["x"] ** 3},
    )
    (block,) = [r for r in report.parameters if r.name.startswith("Hv")]
    assert block.status == "FAIL"
    assert block.reasons == [
        "only entry 2 of the product Hv[x,x] is wrong, along every direction; every other entry passes"
    ]


DENSE = '''
import numpy as np

import as_written


class Dense(as_written.Dense):
    """numpy-ml's habit: the layer keeps its input on self and accumulates its weight gradients."""

    def backward_wrong(self, dLdy):
        return dLdy @ self.W.T  # the activation's derivative forgotten


layer = Dense(4, 3)


def forward_with_weights(X, W, b):
    """The adapter that checks the weights too: they become inputs of the check."""
    layer.W, layer.b = W, b
    return layer.forward(X)


def backward_with_weights(dLdy, X, W, b):
    layer.gradients = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
    dX = layer.backward(dLdy)
    return {"X": dX, "W": layer.gradients["W"], "b": layer.gradients["b"]}
'''


@pytest.mark.parametrize(
    "args, code",
    [
        (["dense.py:layer.forward", "--vjp", "dense.py:layer.backward", "--param", "X=5x4"], 0),
        (["dense.py:layer.forward", "--vjp", "dense.py:layer.backward_wrong", "--param", "X=5x4"], 1),
        (
            ["dense.py:forward_with_weights", "--vjp", "dense.py:backward_with_weights", "--param", "X=5x4"]
            + ["--param", "W=4x3", "--param", "b=3"],
            0,
        ),
    ],
    ids=["object-as-cache", "object-wrong", "weights-through-an-adapter"],
)
def test_a_layer_object_that_keeps_its_own_cache(runner, tmp_path, monkeypatch, args, code):
    _folder(tmp_path, monkeypatch, dense=DENSE)
    assert runner.invoke(cli, ["func", *args, "-q"]).exit_code == code


REMEMBERING = '''
import numpy as np


class Remembering:
    """numpy-ml's layers append every forward's input to self.X, and the backward
    returns one dX per remembered input."""

    def __init__(self):
        self.X, self.W = [], np.eye(4)

    def forward(self, X):
        self.X.append(X)
        return X @ self.W

    def backward(self, dLdy):
        return [dLdy @ self.W.T for _ in self.X]

    def backward_stacked(self, dLdy):
        return np.vstack([dLdy @ self.W.T for _ in self.X])


layer = Remembering()
'''


@pytest.mark.parametrize(
    "backward, said",
    [
        ("backward", "a list of "),
        ("backward_stacked", "times its rows: it may hold every forward call a layer object remembered"),
    ],
)
def test_a_backward_that_returns_every_remembered_call_is_told_so(runner, tmp_path, monkeypatch, backward, said):
    _folder(tmp_path, monkeypatch, remember=REMEMBERING)
    args = ["func", "remember.py:layer.forward", "--vjp", f"remember.py:layer.{backward}", "--param", "X=5x4"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert said in result.stderr and "clear its cache before the backward" in result.stderr
    assert result.stderr.count("\n") == 1


ROBUST = """
import numpy as np

from as_written import soft_l1  # scipy.optimize.least_squares' convention: rows rho, rho', rho''


def soft_l1_wrong(z):
    t = 1 + z
    return np.vstack([2 * (t**0.5 - 1), 0.5 * t**-0.5, -0.5 * t**-1.5])  # rho' halved
"""


@pytest.mark.parametrize(
    "deriv, code",
    [("soft_l1[1]", 0), ("soft_l1_wrong[1]", 1)],
)
def test_a_row_of_what_a_function_returns_is_a_target(runner, tmp_path, monkeypatch, deriv, code):
    _folder(tmp_path, monkeypatch, robust=ROBUST)
    np.savez(tmp_path / "z.npz", z=np.linspace(0.1, 3.0, 20))
    args = ["func", "robust.py:soft_l1[0]", "--deriv", f"robust.py:{deriv}", "--init", "z.npz", "-q"]
    assert runner.invoke(cli, args).exit_code == code


def test_a_row_that_is_not_there_is_one_line(runner, tmp_path, monkeypatch):
    _folder(tmp_path, monkeypatch, robust=ROBUST)
    np.savez(tmp_path / "z.npz", z=np.linspace(0.1, 3.0, 20))
    result = runner.invoke(cli, ["func", "robust.py:soft_l1[0]", "--deriv", "robust.py:soft_l1[7]", "--init", "z.npz"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: robust.py:soft_l1 returned ndarray with no row 7; a target NAME[k] takes row k of what the function "
        "returns\n"
    )
