"""The incremental engine gives the loop's numbers, verdicts and kink flags, in any chunking."""

import io
import itertools
import json

import numpy as np
import pytest
from rich.console import Console

from gradcheck_cli import check_model
from gradcheck_cli.cli.main import cli
from gradcheck_cli.core.methods import METHODS
from gradcheck_cli.models import ACTIVATIONS, LOSSES, MLP, MLPSpec
from gradcheck_cli.numerics.steps import complex_step_noise
from gradcheck_cli.probes import cost as cost_module
from gradcheck_cli.probes.engine import IncrementalProbe, _reaching
from gradcheck_cli.probes.loop import LoopProbe, Planned
from gradcheck_cli.render.report import RichProgress

from mistakes import MISTAKES

CASES = [
    (depth, act, loss, bias)
    for depth, act, loss, bias in itertools.product([1, 2, 3, 4], ACTIVATIONS, LOSSES, [True, False])
]


def _model(depth, act, loss, bias, m=9, seed=0):
    layers = [3, 4, 5, 3, 4][: depth + 1]
    if loss == "softmax-ce":
        layers[-1] = max(2, layers[-1])
    return MLP(MLPSpec.build(layers, act, None, loss, bias, m, seed=seed))


@pytest.mark.parametrize("depth, act, loss, bias", CASES)
def test_loss_changes_match_the_loop(depth, act, loss, bias, seed):
    model = _model(depth, act, loss, bias, seed=seed)
    params = model.initial_parameters()
    loop = LoopProbe(model.loss, params, model.kink_pattern if model.has_kinks else None)
    # Tiny memory: many chunks, and no room for the precomputed series of the layers
    # above; the default: room for them.
    for engine in (IncrementalProbe(model, params, max_memory=4096), IncrementalProbe(model, params)):
        _same_changes(loop, engine, params)


def _same_changes(loop, engine, params):
    for name, x in params.items():
        flat = np.arange(x.size)
        # Constant, spread out, and across every order of the rank-one series and its reach.
        for steps in (np.full(x.size, 1e-3), np.linspace(1e-4, 0.3, x.size), np.geomspace(1e-9, 0.1, x.size)):
            a, b = loop.entries(name, flat, steps), engine.entries(name, flat, steps)
            # The engine's changes equal the loop's within the loop's own round-off bound.
            assert np.all(np.abs(b.change - a.change) <= a.roundoff)
            if a.crossed is not None:
                np.testing.assert_array_equal(b.crossed, a.crossed)
            part = engine.entries(name, flat[1::2], steps[1::2])  # the gathered (non-grid) path
            assert np.all(np.abs(part.change - b.change[1::2]) <= b.roundoff[1::2])
        imaginary = 1j * np.full(x.size, 1e-20)
        a, b = loop.entries(name, flat, imaginary), engine.entries(name, flat, imaginary)
        slope_a, slope_b = a.change.imag / 1e-20, b.change.imag / 1e-20
        # Two complex-step evaluators: each carries its own round-off bound.
        assert np.all(np.abs(slope_b - slope_a) <= complex_step_noise(slope_a) + complex_step_noise(slope_b))


@pytest.mark.parametrize("per_row", [True, False])
def test_elements_reaching_a_kink_are_found_exactly(per_row, rng):
    # The pruned search for grid elements whose change reaches a kink finds exactly
    # the brute-force set, ties (change == distance) and zero distances included.
    margin = rng.exponential(size=(7, 11))
    margin[2, 3] = 0.0
    size = rng.exponential(0.2, size=(5, 1 if per_row else 7, 11))
    margin[4, 6] = size[1, 0, 6]  # a tie
    expected = np.nonzero(np.broadcast_to(size, (5, 7, 11)) >= margin)
    found = _reaching(size, margin)
    assert sorted(zip(*found, strict=True)) == sorted(zip(*expected, strict=True))
    assert 0 < len(found[0]) < 5 * 7 * 11


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "depth, act, loss", [(d, a, l) for d, a, l in itertools.product([1, 2, 4], ["tanh", "relu", "softplus"], LOSSES)]
)
def test_numerical_gradients_match_the_loop_for_every_method(depth, act, loss, method, seed):
    model = _model(depth, act, loss, True, m=12, seed=seed)
    fast = check_model(model, engine="incremental", method=method)
    slow = check_model(model, engine="loop", method=method)
    assert fast.engine == "incremental" and slow.engine == "loop"
    for f, s in zip(fast.parameters, slow.parameters, strict=False):
        assert np.all(np.abs(f.numerical - s.numerical) <= f.noise + s.noise), f.name
        assert (f.status == "FAIL") == (s.status == "FAIL")


@pytest.mark.parametrize("mode", ["sample", "directional"])
def test_modes_agree_between_engines(mode, seed):
    model = _model(2, "tanh", "mse", True, m=20, seed=seed)
    fast = check_model(model, engine="incremental", mode=mode, samples=5, directions=3, taylor=True)
    slow = check_model(model, engine="loop", mode=mode, samples=5, directions=3, taylor=True)
    for f, s in zip(fast.parameters, slow.parameters, strict=False):
        np.testing.assert_array_equal(f.positions, s.positions)
        assert np.all(np.abs(f.numerical - s.numerical) <= f.noise + s.noise), f.name
        assert f.taylor.order == pytest.approx(s.taylor.order, abs=0.05)


@pytest.mark.parametrize("mistake", [m for m in MISTAKES if m.name != "linreg 2/m"], ids=lambda m: m.name)
def test_same_verdicts_on_the_mistake_catalogue(mistake):
    model = mistake.build()
    fast, slow = check_model(model, engine="incremental"), check_model(model, engine="loop")
    assert [p.status for p in fast.parameters] == [p.status for p in slow.parameters]
    assert fast.exit_code == slow.exit_code == 1


def test_tiny_memory_bound_forces_many_chunks_and_changes_nothing():
    model = MLP(MLPSpec.build([20, 16, 8, 3], activation="relu", m=10))
    params = model.initial_parameters()
    big = IncrementalProbe(model, params)
    small = IncrementalProbe(model, params, max_memory=1)
    for name, x in params.items():
        flat, steps = np.arange(x.size), np.full(x.size, 1e-4)
        # Same arithmetic per entry; only numpy's summation order may differ with the block shape.
        reference = big.entries(name, flat, steps)
        assert np.all(np.abs(small.entries(name, flat, steps).change - reference.change) <= reference.roundoff)
    assert small.peak_chunk_bytes < big.peak_chunk_bytes
    tiny, default = check_model(model, max_memory=1e-6), check_model(model)  # MiB: about one byte
    assert [p.status for p in tiny.parameters] == [p.status for p in default.parameters] == ["PASS"] * 6
    for p, q in zip(tiny.parameters, default.parameters, strict=False):
        assert np.all(np.abs(p.numerical - q.numerical) <= p.noise + q.noise)


def test_peak_chunk_respects_the_memory_bound():
    model = MLP(MLPSpec.build([64, 32, 16, 4], m=32))
    probe = IncrementalProbe(model, model.initial_parameters(), max_memory=2**20)
    for name, x in model.initial_parameters().items():
        probe.entries(name, np.arange(x.size), np.full(x.size, 1e-5))
    assert 0 < probe.peak_chunk_bytes <= 2**20


def test_engine_is_independent_of_the_backward_pass():
    """A wrong backward pass cannot leak into the numerical side."""
    wrong = MISTAKES[0].build()
    right = MLP(wrong.spec)
    a = check_model(wrong)
    b = check_model(right)
    for p, q in zip(a.parameters, b.parameters, strict=False):
        np.testing.assert_array_equal(p.numerical, q.numerical)


def test_progress_bar_appears_in_a_terminal_for_a_long_check():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    sink = RichProgress(console, delay=0.0)
    check_model(MLP(MLPSpec.build([30, 20, 5], m=16)), engine="loop", progress=sink)
    assert sink.shown
    out = buffer.getvalue()
    assert "W1" in out and "evals/s" in out


def test_no_progress_bar_for_a_short_check():
    buffer = io.StringIO()
    sink = RichProgress(Console(file=buffer, force_terminal=True), delay=60.0)
    check_model(MLP(MLPSpec.build([3, 4, 2])), progress=sink)
    assert not sink.shown and buffer.getvalue() == ""


def test_no_progress_bar_with_json(runner, monkeypatch):
    monkeypatch.setattr(
        "gradcheck_cli.render.report.RichProgress.advance", lambda *a: pytest.fail("progress with --json")
    )
    monkeypatch.setattr("rich.console.Console.is_terminal", property(lambda self: True))
    result = runner.invoke(cli, ["mlp", "--layers", "4,8,3", "--json"])
    assert result.exit_code == 0
    json.loads(result.stdout)


def test_progress_bar_is_used_in_a_terminal(runner, monkeypatch):
    calls = []
    monkeypatch.setattr("gradcheck_cli.render.report.RichProgress.advance", lambda self, n: calls.append(n))
    monkeypatch.setattr("rich.console.Console.is_terminal", property(lambda self: True))
    result = runner.invoke(cli, ["mlp", "--layers", "4,8,3"])
    assert result.exit_code == 0 and sum(calls) > 0
    calls.clear()
    runner.invoke(cli, ["mlp", "--layers", "4,8,3", "--quiet"])
    assert calls == []


# ---- the engine's cost model and the time guard ----------------------------------------------


class _Plans:
    """A progress sink that keeps the time guard's text."""

    def __init__(self):
        self.text = ""

    def plan(self, text):
        self.text = text

    def start(self, *args):
        pass

    def advance(self, count):
        pass

    def stop(self):
        pass


def test_the_guard_refuses_an_engine_check_over_budget_with_its_forecast(runner):
    args = ["mlp", "--layers", "64,32,10", "--max-seconds", "1e-9"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("Error: the check would take about ")
    assert "on the incremental engine (this process) (" in line
    # central differences: two moves per entry, and a sample's truncation measured at h/4
    entries = 64 * 32 + 32 + 32 * 10 + 10
    moves = 2 * entries + 2 * (64 + 32 + 64 + 10)
    assert f"({moves:,} moves, costed from the engine's arithmetic at this machine's measured pace)" in line
    assert line.endswith(
        "more than 1e-09 s; check a part (--mode sample or --mode directional), raise --max-seconds, or give --force"
    )
    # The engine runs here: spreading the work is not offered for it.
    assert "--workers" not in line and "--dask" not in line
    assert runner.invoke(cli, [*args, "--force"]).exit_code == 0


def test_the_progress_bar_shows_the_engine_forecast():
    sink = _Plans()
    check_model(MLP(MLPSpec.build([4, 8, 3])), progress=sink)
    assert sink.text.startswith("about ") and sink.text.endswith(" on the incremental engine (this process)")
    loop = _Plans()
    check_model(MLP(MLPSpec.build([4, 8, 3])), engine="loop", progress=loop)
    assert loop.text.endswith(" on 1 process")


@pytest.fixture
def fixed_pace(monkeypatch):
    """The cost model's measured pace replaced by fixed numbers: forecasts are then
    functions of the engine's paths alone."""
    monkeypatch.setattr(cost_module, "measured_rates", lambda m=64: cost_module.Rates(1e9, 1e10, 1e-6))
    monkeypatch.setattr(cost_module, "_activation_seconds", lambda name: 2e-8)
    monkeypatch.setattr(cost_module, "_loss_seconds", lambda name, outputs: 1e-8)


def _forecast(model, plan, **kwargs):
    return IncrementalProbe(model, model.initial_parameters(), **kwargs).forecast(plan).seconds


def test_the_forecast_follows_the_engine_paths(fixed_pace):
    model = MLP(MLPSpec.build([64, 32, 32, 10], m=16))
    sizes = {k: v.size for k, v in model.initial_parameters().items()}
    whole = [Planned(name, size, 2 * size, 6e-6) for name, size in sizes.items()]
    # The same number of moves, one entry short of whole weights: column by column,
    # each move an exact activation change instead of a series on the grid.
    short = [Planned(p.name, p.entries - 1, p.moves, p.step) for p in whole]
    assert _forecast(model, short) > _forecast(model, whole)
    # Without room for the series above (and chunks of one perturbation), far more.
    assert _forecast(model, whole, max_memory=4096) > 5 * _forecast(model, whole)
    # Twice the moves, about twice the time (the fixed costs aside).
    doubled = [Planned(p.name, p.entries, 2 * p.moves, p.step) for p in whole]
    assert 1.5 < _forecast(model, doubled) / _forecast(model, whole) <= 2.0
    # Directions are forward passes at the measured time of one.
    along = [Planned(name, 8, 16, 6e-6, along=True) for name in sizes]
    probe = IncrementalProbe(model, model.initial_parameters())
    assert probe.forecast(along).seconds >= 64 * probe._loop.runner.seconds
