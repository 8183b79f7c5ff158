"""One definition per option: the command line, config suites, Settings and the API
all take their names, defaults and validation from ``options.py``."""

import inspect
import textwrap

import click
import numpy as np
import pytest

from gradcheck_cli import (
    GradcheckError,
    InputError,
    Settings,
    assert_gradients,
    assert_hessian,
    assert_jacobian,
    assert_jvp,
    assert_vjp,
    check_gradients,
    check_hessian,
    check_jacobian,
    check_jvp,
    check_model,
    check_vjp,
)
from gradcheck_cli.checks.option_sets import CHECK_OPTIONS, ENGINE_OPTIONS, MODEL_OPTIONS, options_for
from gradcheck_cli.cli.main import cli
from gradcheck_cli.cli.suites import ConfigError, load_suite
from gradcheck_cli.core.options import EXECUTION_OPTIONS, SETTINGS_OPTIONS, Execution
from gradcheck_cli.models import MLP, LinearRegression, LinRegSpec, MLPSpec
from gradcheck_cli.probes.engine import DEFAULT_MAX_MEMORY

SETTING_NAMES = [o.name for o in SETTINGS_OPTIONS]


def _loss(p):
    return float(np.sum(p["w"] ** 2))


def _grad(p):
    return {"w": 2 * p["w"]}


def test_settings_fields_are_the_settings_options():
    assert list(Settings.__dataclass_fields__) == SETTING_NAMES
    defaults = Settings()
    for option in SETTINGS_OPTIONS:
        assert getattr(defaults, option.name) == option.default


CHECKS = [check_gradients, check_model, assert_gradients, check_vjp, check_jvp, check_jacobian, check_hessian]
CHECKS += [assert_vjp, assert_jvp, assert_jacobian, assert_hessian]


@pytest.mark.parametrize("function", CHECKS, ids=lambda f: f.__name__)
def test_every_check_takes_its_options_one_way(function):
    # One signature style: the check's own keywords explicitly, every setting and
    # execution option through **options, validated against the option table.
    parameters = inspect.signature(function).parameters
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name in [*SETTING_NAMES, *(o.name for o in EXECUTION_OPTIONS)]:
        assert name not in parameters, name


@pytest.mark.parametrize("function", [check_gradients, check_model, check_jacobian, check_hessian, check_vjp])
def test_an_unknown_keyword_lists_the_public_ones(function):
    with pytest.raises(InputError) as info:
        function(None, None, None, metod="central")
    text = str(info.value)
    assert text.startswith("unknown option 'metod'; valid: method, mode, dtype, eps, rtol, atol")
    assert "max_seconds" in text and "execution" in text and "_runner" not in text and "_sources" not in text


def test_execution_is_the_execution_options():
    # and the folder its relative paths are taken from, fixed when it is made
    assert list(Execution.__dataclass_fields__) == [*(o.name for o in EXECUTION_OPTIONS), "folder"]
    defaults = Execution()
    for option in EXECUTION_OPTIONS:
        assert getattr(defaults, option.name) == option.default


@pytest.mark.parametrize("command", ["mlp", "linreg", "func"])
def test_click_options_come_from_the_tables(command):
    params = {p.name: p for p in cli.commands[command].params}
    for option in CHECK_OPTIONS[command] + MODEL_OPTIONS[command]:
        assert option.name in params, option.name
        param = params[option.name]
        if option.default is not None and not isinstance(param, click.Argument):
            assert param.default == option.default, option.name


def test_suite_keys_are_the_option_names():
    for model in ("mlp", "linreg", "func"):
        assert set(options_for(model)) == {o.name for o in CHECK_OPTIONS[model] + MODEL_OPTIONS[model]}
    assert ENGINE_OPTIONS[1].default == DEFAULT_MAX_MEMORY / 2**20


@pytest.mark.parametrize(
    "given, message",
    [
        ({"method": "secant"}, "method: 'secant' is not one of central, forward, richardson, complex"),
        ({"dtype": "float16"}, "dtype: 'float16' is not one of float64, float32"),
        ({"rtol": float("inf")}, "rtol: inf is not a finite number >= 0; e.g. 1e-6"),
        ({"eps": 0.0}, "eps: 0.0 is not a relative step in (0, 1]; e.g. auto or 1e-6"),
        ({"eps": 1e300}, "eps: 1e+300 is not a relative step in (0, 1]; e.g. auto or 1e-6"),
        ({"samples": 2.5}, "samples: 2.5 is not a whole number >= 1"),
        ({"seed": -1}, "seed: -1 is not a whole number >= 0"),
        ({"taylor": "yes"}, "taylor: 'yes' is not true or false"),
    ],
)
def test_the_library_validates_with_the_same_words(given, message):
    with pytest.raises(InputError) as info:
        check_gradients(_loss, _grad, {"w": np.ones(3)}, **given)
    assert str(info.value) == message
    assert isinstance(info.value, GradcheckError)
    with pytest.raises(InputError, match="^" + message.split(": ", 1)[0]):
        Settings(**given)


def test_the_api_accepts_auto_and_numpy_dtypes():
    report = check_gradients(_loss, _grad, {"w": np.ones(3)}, eps="auto", dtype=np.float32)
    assert report.settings.dtype == "float32" and report.passed


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("rtol", "inf", "key 'rtol' in check 'a': inf is not a finite number >= 0; e.g. 1e-6"),
        ("eps", "inf", "key 'eps' in check 'a': inf is not a relative step in (0, 1]; e.g. auto or 1e-6"),
        ("eps", "1e300", "key 'eps' in check 'a': 1e+300 is not a relative step in (0, 1]; e.g. auto or 1e-6"),
        ("max_memory", "0", "key 'max_memory' in check 'a': 0 is not a finite number > 0; e.g. 512"),
        ("seed", "-1", "key 'seed' in check 'a': -1 is not a whole number >= 0"),
    ],
)
def test_suites_refuse_what_the_command_line_refuses_with_file_and_line(tmp_path, runner, key, value, message):
    path = tmp_path / "s.toml"
    path.write_text(
        textwrap.dedent(f"""\
        [[check]]
        name = "a"
        model = "mlp"
        layers = [2, 2]
        {key} = {value}
        """)
    )
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert str(info.value) == f"{path}:5: {message}"
    flag = "--" + key.replace("_", "-")
    result = runner.invoke(cli, ["mlp", "--layers", "2,2", flag, value])
    assert result.exit_code == 2
    # The command line received text, so its message quotes the value.
    shown = message.split(": ", 1)[1].split(" is not")[0]
    cli_message = message.split(": ", 1)[1].replace(f"{shown} is not", f"{value!r} is not")
    assert result.stderr == f"Error: Invalid value for '{flag}': {cli_message}\n"


def test_library_messages_name_parameters_not_flags():
    with pytest.raises(InputError) as info:
        check_model(LinearRegression(LinRegSpec.build()), engine="incremental")
    assert info.value.option == "engine" and "--" not in str(info.value)
    assert str(info.value) == "engine: 'incremental' is not offered by this model; valid: auto, loop"


def test_the_cli_maps_a_library_error_to_its_flag(runner):
    result = runner.invoke(cli, ["mlp", "--layers", "4,8,3", "--activation", "relu", "--activations", "relu,identity"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Invalid value for '--activations': give activation (every hidden layer) or "
        "activations (one per layer), not both\n"
    )


def test_max_memory_is_in_mib_everywhere():
    model = MLP(MLPSpec.build([20, 16, 3], m=10))
    report = check_model(model, max_memory=1e-6)  # about one byte: one perturbation per chunk
    assert report.passed and report.engine == "incremental"
    with pytest.raises(InputError, match=r"^max_memory: 0 is not a finite number > 0"):
        check_model(model, max_memory=0)
