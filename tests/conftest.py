"""Hypothesis profiles: ``ci`` (default; bounded, derandomized, what ``make test`` runs)
and ``thorough`` (many random examples, for long runs). Choose with CROSSCONV_PROFILE."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("CROSSCONV_PROFILE", "ci"))
