"""gradcheck sweep: error against step, the classic V, in the terminal and as an image."""

import importlib
import json

import numpy as np
import pytest

from gradcheck_cli.checks.sweep import sweep_model
from gradcheck_cli.cli.main import cli
from gradcheck_cli.models import MLP, LinearRegression, LinRegSpec, MLPSpec

TWO_LAYER = ["examples/two_layer.py:loss", "--grad", "examples/two_layer.py:grad"]
SHAPES = ["--param", "W1=4x8", "--param", "b1=8", "--param", "W2=8x2", "--param", "b2=2"]


@pytest.fixture(scope="module")
def smooth():
    return sweep_model(MLP(MLPSpec.build([4, 8, 3], activation="tanh")))


def _curve(sweep, method):
    return next(c for c in sweep.curves if c.method == method)


def test_central_differences_draw_the_v(smooth):
    central = _curve(smooth, "central")
    best_step, best_error = central.best(smooth.steps)
    assert best_error < 1e-9
    k = int(np.argmin(central.errors))
    assert 0 < k < len(smooth.steps) - 1
    # Truncation on the large side, round-off on the small side: both far above the best.
    assert central.errors[0] > 1e3 * best_error and central.errors[-1] > 1e3 * best_error
    assert np.all(np.diff(central.errors[: k + 1]) <= 0.1 * central.errors[:k])  # falling towards the best
    assert 1e-7 < best_step < 1e-3


def test_complex_step_stays_at_round_off_for_small_steps(smooth):
    complex_step = _curve(smooth, "complex")
    small = smooth.steps <= 1e-7  # below, its h^2 truncation is itself under round-off
    assert np.all(complex_step.errors[small] < 1e-13)


def test_each_method_falls_at_its_own_order(smooth):
    # Over the large steps, where truncation rules: error ~ h (forward), h^2 (central).
    steps = smooth.steps[:4]
    for method, order in (("forward", 1), ("central", 2)):
        slope = np.polyfit(np.log(steps), np.log(_curve(smooth, method).errors[:4]), 1)[0]
        assert abs(slope - order) < 0.3, (method, slope)


def test_linreg_and_one_parameter():
    sweep = sweep_model(LinearRegression(LinRegSpec.build(m=50)), parameter="theta", points=7)
    assert sweep.parameter == "theta" and len(sweep.steps) == 7


def test_the_chart_fits_80_columns_in_a_pipe(runner):
    result = runner.invoke(cli, ["sweep", "mlp", "--layers", "4,8,3", "--points", "9"])
    assert result.exit_code == 0, result.output
    chart = result.stdout.split("\n h ")[0]
    assert "central" in chart and "┤" in chart
    assert all(len(line) <= 80 for line in chart.splitlines()[1:])  # the title line may be longer
    assert "\x1b[" not in result.stdout
    assert " best " in result.stdout and " auto " in result.stdout


def test_json_data(runner):
    result = runner.invoke(cli, ["sweep", "linreg", "--m", "40", "--points", "5", "--json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and len(data["steps"]) == 5
    assert set(data["methods"]) == {"forward", "central", "richardson", "complex"}
    assert data["methods"]["central"]["auto_step"] == pytest.approx(6.055e-6, rel=1e-3)


def test_func_against_its_gradient(runner):
    result = runner.invoke(cli, ["sweep", "func", *TWO_LAYER, *SHAPES, "--param", "W1", "--points", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["parameter"] == "W1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "mlp", "--layers", "4,3", "--param", "W9"], "'W9' is no parameter; the parameters are W1, b1"),
        (["sweep", "mlp", "--layers", "4,3", "--param", "W1=2"], "NAME=SHAPE declares a parameter of sweep func"),
        (["sweep", "mlp", "--layers", "4,3", "--points", "2"], "2 is not in the range 3<=x<=200"),
        (["sweep", "mlp", "--layers", "4,3", "--plot", "chart.gif"], "'chart.gif' is neither .png nor .svg"),
    ],
)
def test_bad_sweep_options(runner, tmp_path, args, message):
    result = runner.invoke(cli, [a if a != "chart.gif" else str(tmp_path / a) for a in args])
    assert result.exit_code == 2 and message.replace("'chart.gif'", "") in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_plot_writes_a_png_when_matplotlib_is_installed(runner, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "sweep.png"
    result = runner.invoke(cli, ["sweep", "mlp", "--layers", "3,2", "--points", "5", "--plot", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "sweep.svg"
    assert runner.invoke(cli, ["sweep", "mlp", "--layers", "3,2", "--points", "5", "--plot", str(svg)]).exit_code == 0
    assert b"<svg" in svg.read_bytes()[:500]


def test_plot_explains_when_matplotlib_is_missing(runner, tmp_path, monkeypatch):
    real = importlib.import_module

    def without_matplotlib(name, *args):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_matplotlib)
    result = runner.invoke(cli, ["sweep", "mlp", "--layers", "3,2", "--points", "5", "--plot", str(tmp_path / "a.png")])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Invalid value for '--plot': --plot needs matplotlib, an optional extra: "
        "pip install 'gradcheck-cli[plot]'\n"
    )
