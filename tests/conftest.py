"""Shared test configuration."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    # data_too_large: the model-based state machines draw many steps, some with small batches of
    # keys and values; a long run can overrun hypothesis's buffer (seen with hypothesis 6.90, the
    # floor), which says nothing about the store under test.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
