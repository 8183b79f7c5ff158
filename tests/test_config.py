"""Config suites: shipped configs run; errors name file, line and key; JUnit and JSON for CI."""

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gradcheck_cli.cli.main import cli
from gradcheck_cli.cli.suites import ConfigError, load_suite

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml"))


def test_the_four_promised_configs_ship():
    assert {p.name for p in CONFIGS} >= {"seed-mlp.toml", "mlp-relu-softmax.toml", "linreg.toml", "ci.toml"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_runs_and_passes(runner, config):
    result = runner.invoke(cli, ["run", str(config), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] and data["failed_checks"] == []
    assert [c["name"] for c in data["checks"]] == [c.name for c in load_suite(config)]


def test_seed_config_is_the_seeds_exact_model():
    (check,) = load_suite(CONFIGS[[p.name for p in CONFIGS].index("seed-mlp.toml")])
    assert check.spec.bias is False and set(check.spec.activations) == {"sigmoid"}


def _suite(tmp_path, body):
    path = tmp_path / "suite.toml"
    path.write_text(
        textwrap.dedent(body).lstrip().replace("EXAMPLES", str(Path(__file__).resolve().parent.parent / "examples"))
    )
    return path


FAILING = """
[[check]]
name = "good"
model = "linreg"

[[check]]
name = "wrong-two-layer"
model = "func"
loss = "EXAMPLES/two_layer.py:loss"
grad = "EXAMPLES/two_layer.py:grad_wrong"
params = { W1 = "4x8", b1 = "8", W2 = "8x2", b2 = "2" }
"""


def test_a_suite_with_one_failing_check_exits_1_and_names_it(runner, tmp_path):
    path = _suite(tmp_path, FAILING)
    result = runner.invoke(cli, ["run", str(path)])
    assert result.exit_code == 1
    summary = result.output[result.output.index("suite summary") :]
    assert "wrong-two-layer" in summary and "FAIL" in summary
    data = json.loads(runner.invoke(cli, ["run", str(path), "--json"]).stdout)
    assert data["failed_checks"] == ["wrong-two-layer"] and data["exit_code"] == 1


def test_junit_counts_tests_and_failures(runner, tmp_path):
    path = _suite(
        tmp_path,
        FAILING
        + """
[[check]]
name = "mlp"
model = "mlp"
layers = [3, 4, 2]
""",
    )
    junit = tmp_path / "out.xml"
    result = runner.invoke(cli, ["run", str(path), "--junit", str(junit), "--quiet"])
    assert result.exit_code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert root.get("tests") == "9" and root.get("failures") == "2"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["good", "wrong-two-layer", "mlp"]
    assert [s.get("tests") for s in suites] == ["1", "4", "4"]
    failure = suites[1].find("testcase/failure")
    assert failure is not None and "W1" in failure.get("message") and "worst at [" in failure.get("message")


def test_junit_path_in_a_missing_folder_is_refused_before_any_work(runner, tmp_path):
    target = tmp_path / "missing" / "out.xml"
    result = runner.invoke(cli, ["linreg", "--junit", str(target)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"Error: Invalid value for '--junit': folder '{target.parent}' does not exist; "
        f"give a path in an existing folder\n"
    )


def test_junit_for_a_single_command(runner, tmp_path):
    junit = tmp_path / "one.xml"
    result = runner.invoke(cli, ["mlp", "--layers", "4,8,3", "--junit", str(junit)])
    assert result.exit_code == 0
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "4" and root.get("failures") == "0"
    assert [c.get("name") for c in root.iter("testcase")] == ["W1", "b1", "W2", "b2"]


@pytest.mark.parametrize(
    "body, message",
    [
        ('[[check]]\nname = "a"\nmodel = "mlp"\nlayers = [4, 8, 3\n', "{path}:4: not valid TOML: Unclosed array"),
        ('[[check]]\nname = "a"\nm = = 3\nmodel = "linreg"\n', "{path}:3: not valid TOML: Invalid value"),
        (
            '[[check]]\nname = "a"\nmodel = "mlp"\nlayers = [4, 8, 3]\nlyers = 3\n',
            "{path}:5: unknown key 'lyers' in check 'a' (model mlp); valid keys: name, model, method, mode, dtype, eps, "
            "rtol, atol, samples, directions, taylor, seed, allow_unresolved, engine, max_memory, workers, dask, checkpoint, "
            "timeout, max_seconds, force, layers, activation, activations, loss, "
            "bias, m",
        ),
        (
            '[[check]]\nname = "a"\nmodel = "linreg"\n\nm = "ten"\n',
            "{path}:5: key 'm' in check 'a': 'ten' is not a whole number >= 1",
        ),
        (
            '[[check]]\nname = "a"\nmodel = "linreg"\ntaylor = 1\n',
            "{path}:4: key 'taylor' in check 'a': 1 is not true or false",
        ),
        (
            '[[check]]\nname = "a"\nmodel = "mlp"\nlayers = [4, 0, 3]\n',
            "{path}:4: key 'layers' in check 'a': size 2 is 0; every layer needs at least 1 unit, e.g. 4,8,3",
        ),
        ('[[check]]\nname = "a"\nmodel = "mlp"\n', "{path}:1: check 'a' (model mlp) needs the key 'layers'"),
        (
            '[[check]]\nname = "a"\nmodel = "cnn"\n',
            "{path}:3: key 'model' in check 'a': 'cnn' is not one of mlp, linreg, func",
        ),
        (
            '[[check]]\nmodel = "linreg"\n',
            "{path}:1: check 1 has no 'name'; every check needs name and model (mlp, linreg, func, expr)",
        ),
        ('title = "x"\n', "{path}:1: unknown top-level key 'title'; a suite holds only [[check]] tables"),
        (
            '[[check]]\nname = "a"\nmodel = "linreg"\n[[check]]\nname = "a"\nmodel = "linreg"\n',
            "{path}:5: check name 'a' is used twice; give every check its own name",
        ),
        (
            '[[check]]\nname = "a"\nmodel = "linreg"\nmethod = "secant"\n',
            "{path}:4: key 'method' in check 'a': 'secant' is not one of central, forward, richardson, complex",
        ),
    ],
)
def test_config_errors_name_file_line_and_key(runner, tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    expected = message.format(path=path)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert str(info.value).startswith(expected)
    result = runner.invoke(cli, ["run", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: " + expected) and result.stderr.count("\n") == 1


def test_missing_config_file(runner, tmp_path):
    result = runner.invoke(cli, ["run", str(tmp_path / "none.toml")])
    assert result.exit_code == 2
    assert (
        result.stderr == f"Error: {tmp_path / 'none.toml'}: cannot read the config file (No such file or "
        f"directory); give a TOML file\n"
    )


def test_func_paths_are_relative_to_the_config(tmp_path, runner):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.py").write_text(
        "import numpy as np\ndef loss(w):\n    return float(np.sum(w**2))\ndef grad(w):\n    return {'w': 2*w}\n"
    )
    path = _suite(
        tmp_path,
        """
    [[check]]
    name = "mine"
    model = "func"
    loss = "sub/f.py:loss"
    grad = "sub/f.py:grad"
    params = { w = "3x2" }
    """,
    )
    result = runner.invoke(cli, ["run", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checks"][0]["parameters"][0]["shape"] == [3, 2]
