"""Fuzz tests (hypothesis), bounded so the folder runs in well under a minute on two cores.

`fuzz` (the default) runs a fixed, derandomised set of cases: the same ones every run, so a
failure in `make test` reproduces. `fuzz-deep` explores freely and much longer, for a
person hunting bugs: `pytest tests/fuzz --hypothesis-profile=fuzz-deep --timeout=0`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz",
    max_examples=250,
    derandomize=True,
    database=None,
    # Generous: only a case that is pathologically slow (an exponential blow-up) trips it.
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "fuzz-deep",
    max_examples=5_000,
    database=None,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_profile", None) is None:
        settings.load_profile("fuzz")
