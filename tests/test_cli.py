import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradcheck_cli import __version__
from gradcheck_cli.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent


def test_mlp_passes_with_exit_0_and_a_table(runner):
    result = runner.invoke(cli, ["mlp", "--layers", "4,8,3"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    for name in ("W1", "b1", "W2", "b2"):
        assert any(row[:1] == [name] and row[-1] == "PASS" for row in rows)
    assert "PASS  4 parameters, 0 failed" in result.output
    assert "FAIL" not in result.output


def test_linreg_passes_with_exit_0(runner):
    result = runner.invoke(cli, ["linreg", "--m", "100"])
    assert result.exit_code == 0, result.output
    assert "theta" in result.output and "4x1" in result.output


WRONG_TWO_LAYER = [
    "func",
    "examples/two_layer.py:loss",
    "--grad",
    "examples/two_layer.py:grad_wrong",
    "--param",
    "W1=4x8",
    "--param",
    "b1=8",
    "--param",
    "W2=8x2",
    "--param",
    "b2=2",
]


def test_exit_code_1_when_a_parameter_fails(runner, monkeypatch):
    # tanh' applied to the output instead of the pre-activation: W1 and b1 fail.
    monkeypatch.chdir(ROOT)
    result = runner.invoke(cli, WRONG_TWO_LAYER)
    assert result.exit_code == 1
    assert "FAIL" in result.output


def test_a_huge_forward_step_does_not_fail_a_correct_gradient(runner):
    # Its truncation (h f''/2 on a quadratic) is measured and allowed for; the
    # resolution says how little such a step can see.
    data = json.loads(runner.invoke(cli, ["linreg", "--method", "forward", "--eps", "0.1", "--json"]).stdout)
    assert data["exit_code"] == 0 and data["parameters"][0]["status"] == "PASS"
    assert data["parameters"][0]["resolution"] > 1e-3


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["mlp", "--layers", "4"],
            "Error: Invalid value for '--layers': '4' has one size; give at least two (input,...,output), e.g. 4,8,3",
        ),
        (
            ["mlp", "--layers", "4,,3"],
            "Error: Invalid value for '--layers': size 2 of '4,,3' is empty; give comma-separated whole numbers, e.g. 4,8,3",
        ),
        (
            ["mlp", "--layers", "4,0,3"],
            "Error: Invalid value for '--layers': size 2 is 0; every layer needs at least 1 unit, e.g. 4,8,3",
        ),
        (
            ["mlp", "--layers", "a,b"],
            "Error: Invalid value for '--layers': 'a' is not a whole number; give comma-separated layer sizes, e.g. 4,8,3",
        ),
        (
            ["mlp", "--layers", "-1,3"],
            "Error: Invalid value for '--layers': size 1 is -1; every layer needs at least 1 unit, e.g. 4,8,3",
        ),
        (["mlp", "--layers", "4,3", "--m", "0"], "Error: Invalid value for '--m': '0' is not a whole number >= 1"),
        (["mlp", "--layers", "4,3", "--m", "-5"], "Error: Invalid value for '--m': '-5' is not a whole number >= 1"),
        (
            ["mlp", "--layers", "4,3", "--activation", "swish"],
            "Error: Invalid value for '--activation': 'swish' is not one of identity, sigmoid, tanh, relu, "
            "leaky_relu, softplus, elu",
        ),
        (
            ["mlp", "--layers", "4,3", "--loss", "hinge"],
            "Error: Invalid value for '--loss': 'hinge' is not one of mse, bce, softmax-ce",
        ),
        (
            ["mlp", "--layers", "4,8,3", "--activations", "relu"],
            "Error: Invalid value for '--activations': need one per layer, 2 for layers 4,8,3; got 1",
        ),
        (
            ["mlp", "--layers", "4,8,3", "--activations", "relu,swish"],
            "Error: Invalid value for '--activations': 'swish' is not one of identity, sigmoid, tanh, relu, leaky_relu, "
            "softplus, elu, softmax",
        ),
        (
            ["mlp", "--layers", "4,8,3", "--rtol", "-1"],
            "Error: Invalid value for '--rtol': '-1' is not a finite number >= 0; e.g. 1e-6",
        ),
        (
            ["mlp", "--layers", "4,8,3", "--rtol", "abc"],
            "Error: Invalid value for '--rtol': 'abc' is not a number; give a finite number >= 0, e.g. 1e-6",
        ),
        (
            ["mlp", "--layers", "4,8,3", "--atol", "-1e-3"],
            "Error: Invalid value for '--atol': '-1e-3' is not a finite number >= 0; e.g. 1e-6",
        ),
        (
            ["mlp", "--layers", "4,8,3", "--atol", "x"],
            "Error: Invalid value for '--atol': 'x' is not a number; give a finite number >= 0, e.g. 1e-6",
        ),
        (["linreg", "--n", "0"], "Error: Invalid value for '--n': '0' is not a whole number >= 1"),
        (["linreg", "--l2", "-1"], "Error: Invalid value for '--l2': '-1' is not a finite number >= 0; e.g. 0.1"),
        (
            ["linreg", "--eps", "zero"],
            "Error: Invalid value for '--eps': 'zero' is neither 'auto' nor a number; e.g. auto or 1e-6",
        ),
        (
            ["mlp", "--layers", "4,8,1", "--loss", "softmax-ce"],
            "Error: Invalid value for '--layers': loss softmax-ce needs an output width of at least 2; got 1",
        ),
        (
            ["mlp", "--layers", "4,8,3", "--loss", "bce", "--activations", "tanh,tanh"],
            "Error: Invalid value for '--activations': loss bce computes its sigmoid output from the logits, "
            "so the last activation must be 'sigmoid'; got 'tanh'",
        ),
        (["mlp"], "Error: Missing option '--layers'."),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_exit_2(runner, args, message):
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == message + "\n"
    assert "Traceback" not in result.output


def test_json_parses_and_matches_the_table(runner):
    table = runner.invoke(cli, ["mlp", "--layers", "4,8,3", "--seed", "3"])
    result = runner.invoke(cli, ["mlp", "--layers", "4,8,3", "--seed", "3", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["status"] == "PASS" and data["exit_code"] == 0 and data["passed"] is True
    assert [p["name"] for p in data["parameters"]] == ["W1", "b1", "W2", "b2"]
    assert data["model"]["layers"] == [4, 8, 3] and data["settings"]["method"] == "central"
    names = [p["name"] for p in data["parameters"]]
    rows = {
        line.split()[0]: line for line in table.output.splitlines() if line.split()[:1] and line.split()[0] in names
    }
    for p in data["parameters"]:
        row = rows[p["name"]]
        assert (f"all {p['size']}" if p["checked"] == p["size"] else f"{p['checked']}/{p['size']}") in row
        assert row.split()[-1] == p["status"]
        assert f"{p['max_rel_error']:.1e}" in row
        assert f"{p['resolution']:.1e}" in row


def test_json_reports_failure(runner, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = runner.invoke(cli, [*WRONG_TWO_LAYER, "--json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and data["exit_code"] == 1
    assert [p["status"] for p in data["parameters"]] == ["FAIL", "FAIL", "PASS", "PASS"]


@pytest.mark.parametrize("command", [[], ["mlp"], ["linreg"]])
def test_help(runner, command):
    result = runner.invoke(cli, command + ["--help"])
    assert result.exit_code == 0
    assert "Example: gradcheck" in result.output


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_every_option_reaches_the_report(runner):
    result = runner.invoke(
        cli,
        [
            "mlp",
            "--layers",
            "3,4,2",
            "--activations",
            "relu,identity",
            "--no-bias",
            "--m",
            "7",
            "--method",
            "richardson",
            "--mode",
            "sample",
            "--samples",
            "2",
            "--dtype",
            "float32",
            "--rtol",
            "1e-2",
            "--atol",
            "1e-5",
            "--eps",
            "1e-3",
            "--seed",
            "5",
            "--taylor",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == {
        "model": "mlp",
        "layers": [3, 4, 2],
        "activations": ["relu", "identity"],
        "loss": "mse",
        "bias": False,
        "m": 7,
        "seed": 5,
    }
    assert data["settings"] == {
        "method": "richardson",
        "mode": "sample",
        "dtype": "float32",
        "eps": 1e-3,
        "rtol": 1e-2,
        "atol": 1e-5,
        "samples": 2,
        "directions": 8,
        "taylor": True,
        "seed": 5,
        "allow_unresolved": False,
    }
    assert [p["checked"] for p in data["parameters"]] == [2, 2]
    assert all(p["taylor_order"] is not None for p in data["parameters"])


def test_python_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "gradcheck_cli", "linreg", "--m", "20"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "theta" in out.stdout


def test_installed_console_script():
    # The script pip installed beside this interpreter (a venv need not be on PATH).
    beside = Path(sys.executable).with_name("gradcheck")
    exe = str(beside) if beside.is_file() else shutil.which("gradcheck")
    assert exe, "the gradcheck console script is not installed (pip install -e .)"
    ok = subprocess.run([exe, "mlp", "--layers", "4,8,3"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "PASS" in ok.stdout
    bad = subprocess.run([exe, "mlp", "--layers", "4,0,3"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "Error: Invalid value for '--layers': size 2 is 0; every layer needs at least 1 unit, e.g. 4,8,3"
    ]
