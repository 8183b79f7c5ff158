"""Every derivative a user writes by hand: layer backward passes (VJP), forward mode
(JVP), Jacobians, Hessians and Hessian-vector products, through the command line
on the shipped examples, for every method and both dtypes."""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from gradcheck_cli import check_hessian, check_jacobian, check_jvp, check_vjp
from gradcheck_cli.cli.main import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LAYERS = EXAMPLES / "layers.py"
LSQ = EXAMPLES / "least_squares.py"
NEWTON = EXAMPLES / "logistic_newton.py"
METHODS = ["central", "forward", "richardson", "complex"]
DTYPES = ["float64", "float32"]


def _params(*shapes):
    return [a for shape in shapes for a in ("--param", shape)]


# (id, function, option, right, wrong, extra arguments, rows the mistake fails)
CASES = [
    (
        "affine-vjp",
        f"{LAYERS}:affine_forward",
        "--vjp",
        f"{LAYERS}:affine_backward",
        f"{LAYERS}:affine_backward_wrong",
        _params("x=5x3", "w=3x4", "b=4"),
        {"b"},
    ),
    (
        "relu-vjp",
        f"{LAYERS}:relu_forward",
        "--vjp",
        f"{LAYERS}:relu_backward",
        f"{LAYERS}:relu_backward_wrong",
        _params("x=4x5"),
        {"x"},
    ),
    (
        "batchnorm-vjp",
        f"{LAYERS}:batchnorm_forward",
        "--vjp",
        f"{LAYERS}:batchnorm_backward",
        f"{LAYERS}:batchnorm_backward_wrong",
        _params("x=8x3", "gamma=3", "beta=3"),
        {"x"},
    ),
    (
        "conv-vjp",
        f"{LAYERS}:conv_forward",
        "--vjp",
        f"{LAYERS}:conv_backward",
        f"{LAYERS}:conv_backward_wrong",
        [*_params("x=1x2x4x4", "w=2x2x3x3", "b=2"), "--const", "stride=1", "--const", "pad=1"],
        {"x"},
    ),
    (
        "maxpool-vjp",
        f"{LAYERS}:max_pool_forward",
        "--vjp",
        f"{LAYERS}:max_pool_backward",
        f"{LAYERS}:max_pool_backward_wrong",
        [*_params("x=1x2x4x4"), "--const", "size=2"],
        {"x"},
    ),
    (
        "softmax-grad",
        f"{LAYERS}:softmax_loss",
        "--grad",
        f"{LAYERS}:softmax_grad",
        f"{LAYERS}:softmax_grad_wrong",
        [*_params("scores=8x5"), "--data", str(EXAMPLES / "labels.npz")],
        {"scores"},
    ),
    (
        "affine-jvp",
        f"{LAYERS}:affine_forward",
        "--jvp",
        f"{LAYERS}:affine_jvp",
        f"{LAYERS}:affine_jvp_wrong",
        _params("x=5x3", "w=3x4", "b=4"),
        {"J·v[b]"},
    ),
    (
        "convection-jac",
        f"{LSQ}:convection",
        "--jac",
        f"{LSQ}:convection_jacobian",
        f"{LSQ}:convection_jacobian_transposed",
        _params("u=8"),
        {"u"},
    ),
    (
        "logistic-hess",
        f"{NEWTON}:loss",
        "--hess",
        f"{NEWTON}:hessian",
        f"{NEWTON}:hessian_wrong",
        ["--grad", f"{NEWTON}:grad", *_params("w=4")],
        {"H[w,w]"},
    ),
    (
        "logistic-hess-second-differences",
        f"{NEWTON}:loss",
        "--hess",
        f"{NEWTON}:hessian",
        f"{NEWTON}:hessian_wrong",
        _params("w=4"),
        {"H[w,w]"},
    ),
    (
        "logistic-hvp",
        f"{NEWTON}:loss",
        "--hvp",
        f"{NEWTON}:hvp",
        f"{NEWTON}:hvp_wrong",
        ["--grad", f"{NEWTON}:grad", *_params("w=4")],
        {"Hv[w,w]"},
    ),
]


def _run(runner, function, option, target, extra, *more):
    result = runner.invoke(cli, ["func", function, option, target, *extra, *more, "--json"])
    assert result.exit_code in (0, 1, 3), result.output
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("case", "function", "option", "right", "wrong", "extra", "failing"), CASES, ids=[c[0] for c in CASES]
)
def test_right_passes_and_the_mistake_fails_on_its_rows(
    runner, case, function, option, right, wrong, extra, failing, method, dtype
):
    settings = ["--method", method, "--dtype", dtype]
    code, report = _run(runner, function, option, right, extra, *settings)
    assert code == 0, json.dumps(report, indent=1)
    code, report = _run(runner, function, option, wrong, extra, *settings)
    assert code == 1
    failed = {p["name"] for p in report["parameters"] if p["status"] == "FAIL"}
    assert failed == failing, json.dumps(report, indent=1)


def test_a_transposed_square_jacobian_is_named(runner):
    code, report = _run(runner, f"{LSQ}:convection", "--jac", f"{LSQ}:convection_jacobian_transposed", _params("u=8"))
    assert code == 1
    (row,) = report["parameters"]
    assert row["diagnosis"] == "transposed"
    assert any("looks transposed" in reason for reason in row["reasons"])


def test_a_sign_flipped_jacobian_is_named(runner, tmp_path):
    code = tmp_path / "neg.py"
    code.write_text(
        f"import sys\nsys.path.insert(0, {str(EXAMPLES)!r})\nimport least_squares as l\n"
        "def jac(u):\n    return -l.convection_jacobian(u)\n"
    )
    status, report = _run(runner, f"{LSQ}:convection", "--jac", f"{code}:jac", _params("u=6"))
    assert status == 1 and report["parameters"][0]["diagnosis"] == "sign"


def test_a_wrong_jacobian_entry_is_named_as_one_entry(runner, tmp_path):
    code = tmp_path / "one.py"
    code.write_text(
        f"import sys\nsys.path.insert(0, {str(EXAMPLES)!r})\nimport least_squares as l\n"
        "def jac(u):\n    j = l.convection_jacobian(u)\n    j[2, 3] += 1.0\n    return j\n"
    )
    status, report = _run(runner, f"{LSQ}:convection", "--jac", f"{code}:jac", _params("u=6"))
    row = report["parameters"][0]
    assert status == 1 and row["diagnosis"] == "entry" and row["worst"]["index"] == [2, 3]


def test_relu_at_exact_zeros_is_judged_by_the_subgradient_rule(runner, tmp_path):
    init = tmp_path / "x.npz"
    np.savez(init, x=np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 3.0]]))
    code, report = _run(runner, f"{LAYERS}:relu_forward", "--vjp", f"{LAYERS}:relu_backward", ["--init", str(init)])
    assert code == 0 and report["parameters"][0]["kink_entries"] == 3
    outside = tmp_path / "outside.py"
    outside.write_text(
        "import numpy as np\ndef backward(dout, cache):\n    x, _ = cache\n"
        "    return (np.where(x == 0, 2 * dout, dout * (x > 0)),)\n"
    )
    code, report = _run(runner, f"{LAYERS}:relu_forward", "--vjp", f"{outside}:backward", ["--init", str(init)])
    assert code == 1 and report["parameters"][0]["failures"] == 3


def test_max_pool_with_a_tie_is_judged_by_the_subgradient_rule(runner, tmp_path):
    x = np.random.default_rng(3).standard_normal((1, 1, 2, 4))
    x[0, 0, 1, 1] = x[0, 0, 0, 0] = 5.0  # a tie for the first window's maximum
    init = tmp_path / "x.npz"
    np.savez(init, x=x)
    args = ["--init", str(init), "--const", "size=2"]
    code, report = _run(runner, f"{LAYERS}:max_pool_forward", "--vjp", f"{LAYERS}:max_pool_backward", args)
    assert code == 0 and report["parameters"][0]["kink_entries"] == 2


def test_vjp_costs_two_forward_evaluations_per_input_in_full_mode(runner):
    # 120 + 40 + 4 inputs: 2 evaluations each, plus the screen's second look at a
    # sample of at most 64 per input tensor (4 evaluations each) and the base and the
    # determinism check.
    code, report = _run(
        runner, f"{LAYERS}:affine_forward", "--vjp", f"{LAYERS}:affine_backward", _params("x=12x10", "w=10x4", "b=4")
    )
    inputs = 12 * 10 + 10 * 4 + 4
    sampled = sum(min(64, n) for n in (120, 40, 4))
    assert code == 0
    assert report["loss_evaluations"] <= 2 * inputs + 4 * sampled + 2


@pytest.mark.parametrize("mode", ["sample", "directional"])
def test_vjp_and_jacobian_modes(runner, mode):
    code, report = _run(
        runner,
        f"{LAYERS}:affine_forward",
        "--vjp",
        f"{LAYERS}:affine_backward_wrong",
        _params("x=5x3", "w=3x4", "b=4"),
        "--mode",
        mode,
        "--samples",
        "3",
        "--directions",
        "2",
    )
    assert code == 1 and {p["name"] for p in report["parameters"] if p["status"] == "FAIL"} == {"b"}
    code, report = _run(
        runner, f"{LSQ}:convection", "--jac", f"{LSQ}:convection_jacobian", _params("u=8"), "--mode", mode
    )
    assert code == 0
    checked = report["parameters"][0]["checked"]
    assert checked == (16 if mode == "sample" else 8 * 8)  # samples entries; or 8 directions x 8 outputs


def test_the_taylor_test_extends_to_hessians(runner):
    args = ["--grad", f"{NEWTON}:grad", *_params("w=4"), "--taylor"]
    code, report = _run(runner, f"{NEWTON}:loss", "--hess", f"{NEWTON}:hessian", args)
    hessian_row = report["parameters"][1]
    assert code == 0 and hessian_row["name"] == "H[w,w]"
    assert hessian_row["taylor_order"] is None or hessian_row["taylor_order"] >= 3
    code, report = _run(runner, f"{NEWTON}:loss", "--hess", f"{NEWTON}:hessian_wrong", args)
    assert code == 1 and report["parameters"][1]["taylor_order"] < 2.5


def test_hessian_symmetry_is_reported(runner, tmp_path):
    code = tmp_path / "asym.py"
    code.write_text(
        f"import sys\nsys.path.insert(0, {str(EXAMPLES)!r})\nimport logistic_newton as l\n"
        "def hess(w):\n    h = l.hessian(w)\n    h[0, 1] += 0.5\n    return h\n"
    )
    args = ["--grad", f"{NEWTON}:grad", *_params("w=4")]
    status, report = _run(runner, f"{NEWTON}:loss", "--hess", f"{code}:hess", args)
    (note,) = [note for note in report["notes"] if "is not symmetric" in note]
    assert status == 1
    assert " at H[w,w][0, 1] (largest |H| " in note or " at H[w,w][1, 0] (largest |H| " in note
    assert note.endswith(
        "the Hessian of a twice-differentiable loss is symmetric, so at least one of the two entries is wrong"
    )
    status, report = _run(runner, f"{NEWTON}:loss", "--hess", f"{NEWTON}:hessian", args)
    assert status == 0 and any("is symmetric" in note for note in report["notes"])


def test_hessian_of_several_parameters_as_nested_blocks(runner, tmp_path):
    code = tmp_path / "two.py"
    code.write_text(
        "import numpy as np\n"
        "def loss(a, b):\n    return np.sum(a ** 2 * b[0]) + np.sin(b[1]) * a[0]\n"
        "def grad(a, b):\n"
        "    ga = 2 * a * b[0]; ga[0] += np.sin(b[1])\n"
        "    return {'a': ga, 'b': np.array([np.sum(a ** 2), np.cos(b[1]) * a[0]])}\n"
        "def hess(a, b):\n"
        "    haa = np.diag(2 * b[0] * np.ones_like(a))\n"
        "    hab = np.zeros((a.size, 2)); hab[:, 0] = 2 * a; hab[0, 1] = np.cos(b[1])\n"
        "    hbb = np.array([[0.0, 0.0], [0.0, -np.sin(b[1]) * a[0]]])\n"
        "    return {'a': {'a': haa, 'b': hab}, 'b': {'a': hab.T, 'b': hbb}}\n"
    )
    status, report = _run(
        runner, f"{code}:loss", "--hess", f"{code}:hess", ["--grad", f"{code}:grad", *_params("a=3", "b=2")]
    )
    names = [p["name"] for p in report["parameters"]]
    assert status == 0 and names == ["a", "b", "H[a,a]", "H[b,a]", "H[a,b]", "H[b,b]"]


def test_data_and_const_reach_every_function(runner, tmp_path):
    code = tmp_path / "scaled.py"
    code.write_text(
        "import numpy as np\n"
        "def loss(w, target, scale):\n    return scale * np.sum((w - target) ** 2)\n"
        "def grad(w, target, scale):\n    return {'w': 2 * scale * (w - target)}\n"
    )
    data = tmp_path / "data.npz"
    np.savez(data, target=np.arange(3.0))
    args = [*_params("w=3"), "--data", str(data), "--const", "scale=2.5"]
    result = runner.invoke(cli, ["func", f"{code}:loss", "--grad", f"{code}:grad", *args])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli, ["func", f"{code}:loss", "--grad", f"{code}:grad", *_params("w=3"), "--data", str(data)]
    )
    assert result.exit_code == 2 and "scale" in result.stderr


def test_a_jacobian_suite(runner, tmp_path):
    mask = tmp_path / "pattern.npz"
    i = np.arange(8)
    np.savez(mask, u=np.abs(i[:, None] - i[None, :]) <= 1)
    suite = tmp_path / "suite.toml"
    suite.write_text(
        f'[[check]]\nname = "convection"\nmodel = "func"\nloss = "{LSQ}:convection"\n'
        f'jac = "{LSQ}:convection_jacobian"\nparams = {{u = "8"}}\nsparsity = "pattern.npz"\n'
        f'[[check]]\nname = "newton"\nmodel = "func"\nloss = "{NEWTON}:loss"\ngrad = "{NEWTON}:grad"\n'
        f'hess = "{NEWTON}:hessian"\nparams = {{w = "4"}}\n'
    )
    result = runner.invoke(cli, ["run", str(suite), "--json"])
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)["checks"]
    assert [c["status"] for c in checks] == ["PASS", "PASS"]
    # Three column groups, both sides, the base and the screen's second look: 2 (3 + 1).
    assert checks[0]["loss_evaluations"] <= 2 * (3 + 1)


BAD = [
    (
        "backward-wrong-shape",
        ["func", f"{LAYERS}:affine_forward", "--vjp", "{code}:wrong_shape", *_params("x=5x3", "w=3x4", "b=4")],
        "Error: {code}:wrong_shape: w has shape (4, 3), expected (3, 4) (the shape of w)\n",
    ),
    (
        "backward-wrong-count",
        ["func", f"{LAYERS}:affine_forward", "--vjp", "{code}:two", *_params("x=5x3", "w=3x4", "b=4")],
        "Error: {code}:two returned 2 arrays; expected 3, one per parameter (x, w, b)\n",
    ),
    (
        "jacobian-wrong-layout",
        ["func", f"{LSQ}:convection", "--jac", "{code}:flat", *_params("u=4")],
        "Error: {code}:flat: u has shape (16,); expected (4, 4) (output size, u size)\n",
    ),
    (
        "jacobian-transposed-layout",
        ["func", f"{LSQ}:residuals", "--jac", f"{LSQ}:jacobian_transposed", *_params("theta=3")],
        f"Error: {LSQ}:jacobian_transposed: theta has shape (3, 40); expected (40, 3) (output size, theta size); "
        "it looks transposed: rows are outputs, columns inputs\n",
    ),
    (
        "hessian-wrong-shape",
        ["func", f"{NEWTON}:loss", "--hess", "{code}:small", *_params("w=4")],
        "Error: {code}:small returned shape (3, 3); expected (4, 4) or (4, 4) (every parameter's entries flattened "
        "and concatenated in parameter order), or a dict of blocks\n",
    ),
    (
        "vjp-scalar-forward",
        ["func", f"{NEWTON}:loss", "--vjp", f"{NEWTON}:grad", *_params("w=4")],
        f"Error: {NEWTON}:loss returned a scalar at the starting point; --vjp checks a layer whose forward returns "
        "an array (for a scalar loss use --grad)\n",
    ),
    (
        "sparsity-wrong-shape",
        ["func", f"{LSQ}:convection", "--jac", f"{LSQ}:convection_jacobian", *_params("u=4"), "--sparsity", "{mask}"],
        "Error: Invalid value for '--sparsity': the sparsity of u has shape (3, 3); expected (4, 4) or (4, 4) "
        "(output x u, True where the entry may be non-zero)\n",
    ),
    (
        "two-kinds",
        ["func", f"{LSQ}:convection", "--jac", f"{LSQ}:convection_jacobian", "--vjp", "{code}:two", *_params("u=4")],
        "Error: Invalid value for '--jac': --vjp and --jac both given; a check holds one derivative against the "
        "function\n",
    ),
    (
        "no-kind",
        ["func", f"{LSQ}:convection", *_params("u=4")],
        "Error: Invalid value for '--grad': no derivative to check; give --grad (a loss's gradient), --vjp, --jvp, "
        "--jac, --hess, --hvp or --hessp\n",
    ),
    (
        "dout-without-vjp",
        ["func", f"{LSQ}:convection", "--jac", f"{LSQ}:convection_jacobian", *_params("u=4"), "--dout", "{mask}"],
        "Error: Invalid value for '--dout': --dout is the upstream gradient of --vjp; give it with --vjp\n",
    ),
    (
        "bad-const",
        ["func", f"{LSQ}:convection", "--jac", f"{LSQ}:convection_jacobian", *_params("u=4"), "--const", "a=[1"],
        "Error: Invalid value for '--const': the value of a ('[1') is not JSON; e.g. 2, 0.5, \"train\", "
        '{{"stride": 1, "pad": 1}}\n',
    ),
]

BAD_CODE = """
import numpy as np
def wrong_shape(dout, cache):
    x, w = cache
    return dout @ w.T, (x.T @ dout).T, dout.sum(axis=0)
def two(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout
def flat(u):
    return np.zeros(u.size * u.size)
def small(w):
    return np.eye(3)
"""


@pytest.mark.parametrize(("case", "args", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_with_exit_2(runner, tmp_path, case, args, message):
    code = tmp_path / "bad.py"
    code.write_text(BAD_CODE)
    mask = tmp_path / "mask.npz"
    np.savez(mask, u=np.ones((3, 3), bool))
    fill = {"code": str(code), "mask": str(mask)}
    result = runner.invoke(cli, [a.format(**fill) for a in args])
    assert result.exit_code == 2, result.output
    assert result.stderr == message.format(**fill)


def test_dout_from_a_file(runner, tmp_path):
    dout = tmp_path / "dout.npy"
    np.save(dout, np.ones((5, 4)))
    args = _params("x=5x3", "w=3x4", "b=4")
    code, report = _run(
        runner, f"{LAYERS}:affine_forward", "--vjp", f"{LAYERS}:affine_backward", args, "--dout", str(dout)
    )
    assert code == 0 and report["model"]["dout"] == str(dout)
    np.save(dout, np.ones((4, 5)))
    result = runner.invoke(
        cli, ["func", f"{LAYERS}:affine_forward", "--vjp", f"{LAYERS}:affine_backward", *args, "--dout", str(dout)]
    )
    assert result.exit_code == 2
    assert (
        result.stderr
        == "Error: Invalid value for '--dout': dout has shape (4, 5); it must have the output's shape (5, 4)\n"
    )


def test_ctrl_c_keeps_the_inputs_that_finished(runner, tmp_path):
    code = tmp_path / "slow.py"
    code.write_text(
        "import numpy as np\ncalls = [0]\n"
        "def f(a, b):\n    calls[0] += 1\n"
        "    if calls[0] > 12:\n        raise KeyboardInterrupt\n"
        "    return np.concatenate([a ** 2, b ** 2])\n"
        "def jac(a, b):\n    z = np.zeros((5, 3))\n"
        "    return {'a': np.vstack([np.diag(2 * a), np.zeros((2, 3))]), 'b': np.vstack([np.zeros((3, 2)), np.diag(2 * b)])}\n"
    )
    result = runner.invoke(cli, ["func", f"{code}:f", "--jac", f"{code}:jac", *_params("a=3", "b=2"), "--json"])
    assert result.exit_code == 130
    report = json.loads(result.stdout)
    assert report["status"] == "INCOMPLETE" and report["unchecked_parameters"] == ["b"]
    assert [p["name"] for p in report["parameters"]] == ["a"]


@pytest.mark.parametrize(
    ("option", "right", "wrong", "extra", "row"),
    [
        ("--jvp", f"{LAYERS}:affine_jvp", f"{LAYERS}:affine_jvp_wrong", _params("x=5x3", "w=3x4", "b=4"), "J·v[b]"),
        ("--hvp", f"{NEWTON}:hvp", f"{NEWTON}:hvp_wrong", ["--grad", f"{NEWTON}:grad", *_params("w=4")], "Hv[w,w]"),
        ("--jac", f"{LSQ}:convection_jacobian", f"{LSQ}:convection_jacobian_transposed", _params("u=6"), "u"),
    ],
)
def test_the_taylor_test_for_every_vector_kind(runner, option, right, wrong, extra, row):
    function = {"--jvp": f"{LAYERS}:affine_forward", "--hvp": f"{NEWTON}:loss", "--jac": f"{LSQ}:convection"}[option]
    code, report = _run(runner, function, option, right, extra, "--taylor")
    orders = {p["name"]: p["taylor_order"] for p in report["parameters"]}
    assert code == 0 and (orders[row] is None or orders[row] > 1.5)
    code, report = _run(runner, function, option, wrong, extra, "--taylor")
    orders = {p["name"]: p["taylor_order"] for p in report["parameters"]}
    assert code == 1 and orders[row] is not None and orders[row] < 1.5


def test_a_transposed_jacobian_is_named_with_a_sparsity_pattern_too(runner, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    least_squares = importlib.import_module("least_squares")

    pattern = tmp_path / "pattern.npz"
    np.savez(pattern, u=least_squares.convection_sparsity(12))
    function = f"{EXAMPLES}/least_squares.py:convection"
    for extra in ([], ["--sparsity", str(pattern)]):
        args = [function, "--jac", f"{EXAMPLES}/least_squares.py:convection_jacobian_transposed", "--param", "u=12"]
        result = runner.invoke(cli, ["func", *args, *extra, "--json"])
        assert result.exit_code == 1
        assert json.loads(result.stdout)["parameters"][0]["diagnosis"] == "transposed"


def test_every_check_calls_functions_as_the_command_line_does(monkeypatch):
    """The file that works with gradcheck func works with the API as written."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    written = importlib.import_module("as_written")
    rng = np.random.default_rng(0)

    def draw(**shapes):
        return {k: rng.standard_normal(s) for k, s in shapes.items()}

    lstm = draw(x=(3, 4), prev_h=(3, 5), prev_c=(3, 5), Wx=(4, 20), Wh=(5, 20), b=(20,))
    assert check_vjp(written.lstm_step_forward, written.lstm_step_backward, lstm).status == "PASS"
    affine = draw(x=(5, 4), w=(4, 3), b=(3,))
    assert check_vjp(written.affine_forward, written.affine_backward, affine).status == "PASS"
    x = {"x": np.array([1.3, 0.7, 0.8, 1.9, 1.2])}

    def square(x):
        return x**2

    def square_jacobian(x):
        return np.diag(2 * x)

    assert check_jacobian(square, square_jacobian, x).status == "PASS"
    assert check_jacobian(square, lambda x: np.diag(2 * x).T * 1.01, x).status == "FAIL"
    assert check_hessian(written.rosen, x, hvp=lambda v, x: written.rosen_hess_prod(x, v["x"])).status == "PASS"

    def scaled(x, scale):
        return scale * x**2

    def scaled_jvp(tangents, x, scale):
        return 2 * scale * x * tangents["x"]

    assert check_jvp(scaled, scaled_jvp, x, const={"scale": 3.0}).status == "PASS"


def test_a_transposed_block_of_a_two_dimensional_output_is_named():
    mixing = np.random.default_rng(0).standard_normal((6, 6))

    def mixed(X):
        return (mixing @ X.reshape(-1)).reshape(2, 3)  # a 2-D output with as many entries as its input

    X = {"X": np.ones((2, 3))}
    assert check_jacobian(mixed, lambda X: mixing.reshape(2, 3, 2, 3), X).status == "PASS"
    report = check_jacobian(mixed, lambda X: mixing.T.reshape(2, 3, 2, 3), X)
    assert (report.status, report.parameters[0].diagnosis) == ("FAIL", "transposed")
    scrambled = check_jacobian(mixed, lambda X: (mixing + 0.5).reshape(2, 3, 2, 3), X)
    assert scrambled.status == "FAIL" and scrambled.parameters[0].diagnosis != "transposed"
