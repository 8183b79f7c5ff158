"""Fixtures, and the two test profiles.

Seeded numeric tests take the ``seed`` fixture (or ``rng``, drawn from it).  The
default profile runs each with one seed and hypothesis with a fixed set of
examples, so a verdict in CI never depends on luck.  ``GRADCHECK_PROFILE=stress``
reruns every seeded test over ``STRESS_SEEDS`` seeds and explores many more,
freshly drawn, hypothesis examples: a numeric assertion that holds on one seed
only is found there.
"""

import os

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import settings

PROFILE = os.environ.get("GRADCHECK_PROFILE", "reproducible")
STRESS_SEEDS = int(os.environ.get("GRADCHECK_STRESS_SEEDS", "300"))
SEEDS = list(range(STRESS_SEEDS)) if PROFILE == "stress" else [12345]

settings.register_profile("reproducible", max_examples=60, derandomize=True, database=None)
settings.register_profile("stress", max_examples=1500, database=None)
settings.load_profile(PROFILE)


@pytest.fixture(params=SEEDS, ids=lambda s: f"seed{s}")
def seed(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
