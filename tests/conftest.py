import numpy as np
import pytest
from click.testing import CliRunner


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# Property tests draw the same examples on every run: a verdict in CI never depends on
# luck.  GRADCHECK_PROFILE=stress explores many more, freshly drawn, examples.
import os  # noqa: E402

from hypothesis import settings  # noqa: E402

settings.register_profile("reproducible", max_examples=60, derandomize=True, database=None)
settings.register_profile("stress", max_examples=1500, database=None)
settings.load_profile(os.environ.get("GRADCHECK_PROFILE", "reproducible"))
