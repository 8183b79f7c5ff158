import numpy as np
import pytest
from click.testing import CliRunner


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
