"""--explain: the derivation with the model's real shapes, the cache with its real
size, where the seed's shortcut holds; readable in 80 columns without colour."""

import numpy as np
import pytest

from gradcheck_cli.cli.main import cli
from gradcheck_cli.insight.explain import FROM_OUTPUT, explain_mlp
from gradcheck_cli.models import ACTIVATIONS, MLP, MLPSpec


def _explain(runner, *args):
    result = runner.invoke(cli, [*args, "--explain"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_layer_of_a_small_net_with_its_shapes(runner):
    out = _explain(runner, "mlp", "--layers", "4,8,3", "--m", "32")
    for line in [
        "A1 = Z0 (32×4) · W1 (4×8) + b1 (8) → (32×8), Z1 = tanh(A1)",
        "G2     = (Z2 (32×3) - Y (32×3)) / m → (32×3)",
        "D2     = G2 (32×3) ⊙ σ'(A2) (32×3) → (32×3)",
        "dJ/dW2 = Z1ᵀ (8×32) · D2 (32×3) → (8×3)",
        "dJ/db2 = 1ᵀ (1×32) · D2 (32×3) → (3)",
        "G1     = D2 (32×3) · W2ᵀ (3×8) → (32×8)",
        "D1     = G1 (32×8) ⊙ σ'(A1) (32×8) → (32×8)",
        "dJ/dW1 = Z0ᵀ (4×32) · D1 (32×8) → (4×8)",
        "dJ/db1 = 1ᵀ (1×32) · D1 (32×8) → (8)",
        "as scalars: dJ/dW = dJ/dA * dA/dW = D * Z",
        "tanh: σ'(A) = 1 - Z^2: the seed's shortcut σ'(Z) holds",
    ]:
        assert line in out, line
    derivation = out[: out.index("param")]
    assert all(len(line) <= 80 for line in derivation.splitlines())
    assert "\x1b[" not in out  # no colour in a pipe


def test_a_deeper_net_with_a_fused_loss(runner):
    out = _explain(runner, "mlp", "--layers", "5,7,6,4", "--m", "10", "--activation", "relu", "--loss", "softmax-ce")
    assert "D3     = (softmax(A3) (10×4) - Y (10×4)) / m → (10×4)" in out
    assert "G2     = D3 (10×4) · W3ᵀ (4×6) → (10×6)" in out
    assert "dJ/dW1 = Z0ᵀ (5×10) · D1 (10×7) → (5×7)" in out
    (cached,) = [line for line in out.splitlines() if "for the loss's gradient (the logits)" in line]
    assert cached.split()[:2] == ["A3", "(10×4)"]


def test_linreg(runner):
    out = _explain(runner, "linreg", "--m", "50", "--n", "2", "--l2", "0.5")
    assert "dJ/dθ   = Xᵀ (3×50) · r (50×1) / m → (3×1)" in out
    assert "+ ridge = λ/m [0; θ[1:]] (3×1) → (3×1)" in out


@pytest.mark.parametrize(("layers", "loss"), [([4, 8, 3], "mse"), ([5, 7, 6, 4], "softmax-ce"), ([3, 2, 1], "bce")])
def test_cache_sizes_are_the_real_arrays_nbytes(layers, loss):
    spec = MLPSpec.build(layers, loss=loss, m=17)
    model = MLP(spec)
    cache = model.forward(model.initial_parameters())
    actual = {f"Z{l}": cache.Z[l].nbytes for l in range(len(layers))} | {
        f"A{l}": cache.A[l].nbytes for l in range(1, len(layers))
    }
    explained = explain_mlp(spec)
    for c in explained.cache:
        assert c.nbytes == actual[c.name.split()[0]], c.name
    assert explain_mlp(spec, itemsize=4).cache_bytes * 2 == explained.cache_bytes


def test_the_shortcut_table_covers_every_activation_and_the_code_agrees():
    assert set(FROM_OUTPUT) == set(ACTIVATIONS)
    a = np.linspace(-3, 3, 61)
    a = a[a != 0]
    for activation in ACTIVATIONS.values():
        z = activation.forward(a)
        np.testing.assert_allclose(activation.derivative_from_output(z), activation.derivative(a), rtol=1e-12, atol=0)


def test_explain_stays_out_of_json_and_quiet(runner):
    for flag in ("--json", "--quiet"):
        result = runner.invoke(cli, ["mlp", "--layers", "3,2", "--explain", flag])
        assert result.exit_code == 0 and "as scalars" not in result.stdout
