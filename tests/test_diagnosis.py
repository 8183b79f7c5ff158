"""Every FAIL says what the mistake looks like: each diagnosis is made on a mistake
that has it, and a random error gets no confident label."""

import json
from dataclasses import replace

import numpy as np
import pytest

from gradcheck_cli import check_gradients, check_model
from gradcheck_cli.checks.zoo_check import ZOO_LAYERS, check_zoo
from gradcheck_cli.cli.main import cli
from gradcheck_cli.insight import zoo
from gradcheck_cli.models import MLP, MLPSpec

from mistakes import MISTAKES


def _loss(p):
    return float(np.sum(np.sin(p["W"]) * p["V"]) + np.sum(p["V"] ** 3) / 3)


def _grad(p):
    return {"W": np.cos(p["W"]) * p["V"], "V": np.sin(p["W"]) + p["V"] ** 2}


def _check(bend, seed=0):
    rng = np.random.default_rng(seed)
    params = {"W": rng.standard_normal((4, 4)), "V": rng.standard_normal((4, 4))}
    return check_gradients(_loss, lambda p: bend(_grad(p)), params)


def _labels(report):
    return {p.name: p.diagnosis for p in report.parameters if p.status == "FAIL"}


CASES = [
    ("sign", lambda g: {**g, "W": -g["W"]}, {"W": "sign"}),
    ("factor 2", lambda g: {**g, "W": 2 * g["W"]}, {"W": "factor"}),
    ("factor 1/2", lambda g: {**g, "V": g["V"] / 2}, {"V": "factor"}),
    ("any constant", lambda g: {**g, "W": 3.7 * g["W"]}, {"W": "factor"}),
    ("zero", lambda g: {**g, "W": 0 * g["W"]}, {"W": "zero"}),
    ("transposed", lambda g: {**g, "W": g["W"].T}, {"W": "transposed"}),
    ("swapped", lambda g: {"W": g["V"], "V": g["W"]}, {"W": "swapped", "V": "swapped"}),
    ("one entry", lambda g: {**g, "W": g["W"] + np.eye(4)[0] * np.eye(4)[:, [2]] * 0.3}, {"W": "entry"}),
    ("one row", lambda g: {**g, "W": g["W"] + np.outer(np.eye(4)[1], [0.5, -0.2, 0.3, 0.9])}, {"W": "row"}),
    ("one column", lambda g: {**g, "W": g["W"] + np.outer([0.5, -0.2, 0.3, 0.9], np.eye(4)[3])}, {"W": "column"}),
]


@pytest.mark.parametrize(("case", "bend", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_diagnosis_is_made_on_a_mistake_that_has_it(case, bend, expected):
    report = _check(bend)
    assert _labels(report) == expected
    for p in report.parameters:
        if p.diagnosis:
            assert p.notes and p.to_dict()["diagnosis"] == p.diagnosis


def test_named_factors_say_which():
    report = _check(lambda g: {**g, "W": 2 * g["W"]})
    assert any("matches 2 times the numerical values" in n for n in report.parameters[0].notes)
    model = zoo.inject(zoo.MISTAKES[0], MLPSpec.build([3, 4, 2], m=16))  # missing 1/m
    notes = check_model(model).parameters[0].notes
    assert any("matches m = 16 times the numerical values" in n for n in notes)


@pytest.mark.parametrize("seed", range(8))
def test_a_random_error_gets_no_confident_label(seed):
    noise = np.random.default_rng(100 + seed)
    report = _check(lambda g: {**g, "W": g["W"] + 0.1 * noise.standard_normal((4, 4))}, seed)
    assert _labels(report) == {"W": None}
    assert not any(n for n in report.parameters[0].notes)


def test_errors_only_at_kinks_are_named():
    w = np.array([0.0, 1.5, 0.0, -2.0, 0.7])
    report = check_gradients(
        lambda p: float(np.sum(np.abs(p["w"]))), lambda p: {"w": np.where(p["w"] == 0, 2.0, np.sign(p["w"]))}, {"w": w}
    )
    assert _labels(report) == {"w": "kinks"}


@pytest.mark.parametrize("mistake", [m for m in MISTAKES if m.name != "linreg 2/m"], ids=lambda m: m.name)
def test_a_built_in_model_names_its_zoo_mistake(mistake):
    report = check_model(mistake.build())
    failing = [p for p in report.parameters if p.status == "FAIL"]
    assert failing
    for p in failing:
        assert p.diagnosis is not None
        assert any(mistake.name in note for note in p.notes) or p.diagnosis in (
            "factor",
            "sign",
            "transposed",
            "swapped",
            "entry",
        )


def test_the_correct_model_gets_no_diagnosis():
    report = check_model(MLP(MLPSpec.build([3, 5, 5, 2])))
    assert report.passed and all(p.diagnosis is None and not p.notes for p in report.parameters)


# ---- the zoo -------------------------------------------------------------------------------


def test_zoo_exits_0_and_lists_every_mistake_as_caught(runner):
    result = runner.invoke(cli, ["zoo", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] and all(data["correct_passes"].values())
    rows = {r["name"]: r for r in data["mistakes"]}
    assert set(rows) == {m.name for m in zoo.MISTAKES}
    assert rows["softmax without the one-hot"]["status"] == "n/a"  # the default model is mse
    assert all(r["status"] == "caught" for n, r in rows.items() if n != "softmax without the one-hot")
    assert rows["square weight transposed"]["failed"] == ["W2"]
    assert rows["square weight transposed"]["diagnosis"] == "transposed"


def test_zoo_on_a_softmax_relu_model(runner):
    result = runner.invoke(cli, ["zoo", "--loss", "softmax-ce", "--activation", "relu", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r["status"] for r in json.loads(result.stdout)["mistakes"]}
    assert rows["softmax without the one-hot"] == "caught"
    assert rows["sigma' of the output"] == "n/a"  # relu's sigma' is the same on Z and A


def test_a_mistake_whose_detection_is_disabled_makes_the_zoo_fail():
    # Through the seam: the mistake's wrong helper returns the right value, so the
    # checker has nothing to find; the zoo must say the mistake was missed, exit 1.
    index = next(i for i, m in enumerate(zoo.MISTAKES) if m.name == "sign flip")
    disabled = replace(zoo.MISTAKES[index], wrong=lambda model, correct, *args: correct(*args))
    mistakes = (*zoo.MISTAKES[:index], disabled, *zoo.MISTAKES[index + 1 :])
    report = check_zoo(MLPSpec.build(list(ZOO_LAYERS)), mistakes)
    statuses = {r.name: r.status for r in report.rows}
    assert statuses["sign flip"] == "MISSED" and report.exit_code == 1
    assert check_zoo(MLPSpec.build(list(ZOO_LAYERS))).exit_code == 0


def test_zoo_table_renders(runner):
    result = runner.invoke(cli, ["zoo", "--layers", "3,4,2"])
    assert result.exit_code == 0
    assert "needs a square weight" in result.stdout and "caught" in result.stdout
    assert "the correct gradient passes every check" in result.stdout
