"""Kinks: correct relu/leaky_relu networks never fail because of one; a wrong subgradient does."""

import numpy as np
import pytest

from gradcheck_cli import check_model
from gradcheck_cli.core.methods import METHODS
from gradcheck_cli.core.text import report_as_text as report_to_text
from gradcheck_cli.models import MLP, MLPSpec


def _on_kinks(cls=MLP, activation="relu", zero_rows=3):
    """A network whose first rows of X are zero and whose b1 is zero: those rows'
    first-layer pre-activations are exactly 0, so every b1 step starts on a kink.

    (Zeros in two layers at once would make the composition's one-sided slopes
    products of both layers' branches; the chain rule with a convention at each
    node need not land between them, for any checker.)"""
    model = cls(MLPSpec.build([3, 4, 4, 2], activation=activation, m=12, seed=3))
    model.X[:zero_rows] = 0.0
    model._params["b1"][:] = 0.0
    return model


class WrongSubgradient(MLP):
    """Uses sigma'(0) = 2 for relu: outside the one-sided interval [0, 1]."""

    value_at_zero = 2.0

    def _hidden_delta(self, l, G, cache):
        if l == self.depth:
            return super()._hidden_delta(l, G, cache)
        a = cache.A[l]
        return G * np.where(a > 0, 1.0, np.where(a == 0, self.value_at_zero, 0.0))


class HalfSubgradient(WrongSubgradient):
    value_at_zero = 0.5


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("method", METHODS)
def test_correct_network_on_kinks_passes(activation, method):
    report = check_model(_on_kinks(activation=activation), method=method)
    assert report.passed, report_to_text(report)
    if method != "complex":
        assert sum(int(p.kinks.sum()) for p in report.parameters) > 0


def test_kink_entries_are_counted_in_the_report():
    report = check_model(_on_kinks())
    counts = report.to_dict()["parameters"]
    assert counts[1]["name"] == "b1" and counts[1]["kink_entries"] == 4


def test_any_valid_subgradient_passes():
    assert check_model(_on_kinks(HalfSubgradient)).passed


@pytest.mark.parametrize("method", ["central", "forward", "richardson"])
def test_wrong_subgradient_fails(method):
    # One zero row: each b1 step crosses a single kink, whose one-sided slopes bound
    # exactly the valid values; sigma'(0) = 2 lies outside them.
    report = check_model(_on_kinks(WrongSubgradient, zero_rows=1), method=method)
    assert not report.passed
    failing = {p.name for p in report.parameters if p.status == "FAIL"}
    assert "b1" in failing


@pytest.mark.parametrize("method", ["central", "forward", "richardson"])
def test_a_wrong_subgradient_on_several_kinks_at_once_never_passes(method):
    # Three zero rows: each b1 step crosses three kinks at once.  A chain rule may pick
    # any subgradient at each, so the valid set can be wider than the one-sided
    # slopes, and a value outside them is UNRESOLVED, with the reason, not PASS.
    report = check_model(_on_kinks(WrongSubgradient, zero_rows=3), method=method)
    statuses = {p.name: p.status for p in report.parameters}
    assert statuses["b1"] in ("FAIL", "UNRESOLVED") and report.exit_code in (1, 3)
    b1 = next(p for p in report.parameters if p.name == "b1")
    if b1.status == "UNRESOLVED":
        assert any("several kinks at once" in r for r in b1.reasons)


def test_relu_network_at_zero_initialisation_never_fails():
    # Every first-layer pre-activation exactly 0 and relu'(0) = 0, as every framework
    # computes: each W1 step crosses m kinks at once, in both directions.  A valid
    # chain-rule gradient: never FAIL (the mechanism that once failed it).
    model = MLP(MLPSpec.build([3, 4, 2], activation="relu", m=16, seed=5))
    model._params["W1"][:] = 0.0
    model._params["b1"][:] = 0.0
    for method in ("central", "richardson", "forward"):
        report = check_model(model, method=method)
        assert all(p.status != "FAIL" for p in report.parameters), report_to_text(report)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu"])
def test_random_kinked_networks_pass_with_large_steps(activation, seed):
    # Richardson's large step makes crossings common: each must be settled, not failed.
    spec = MLPSpec.build([4, 6, 6, 3], activation=activation, m=60, seed=seed)
    report = check_model(MLP(spec), method="richardson")
    assert report.passed, report_to_text(report)
    assert sum(int(p.kinks.sum()) for p in report.parameters) == 0  # all settled by smaller steps
