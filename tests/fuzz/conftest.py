"""Settings for the property tests, and their tally.

``HUB_FUZZ_PROFILE=ci`` (the default, what ``make test`` and CI run) keeps the whole folder
within about half a minute on two cores; ``deep`` tries ten times as many inputs. Both derive
every input from the test itself (``derandomize``), so a run is the same run everywhere and a
failure found in CI is found again on a laptop.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from tests.fuzz.tally import TALLY

SLOW_CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large,
               HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=500, derandomize=True, deadline=None, database=None,
                          suppress_health_check=SLOW_CHECKS, print_blob=True)
settings.register_profile("deep", settings.get_profile("ci"), max_examples=5000)
settings.load_profile(os.environ.get("HUB_FUZZ_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter):
    if TALLY["inputs"]:
        terminalreporter.write_line(f"fuzz: {TALLY['inputs']} inputs tried, "
                                    f"{TALLY['server_errors']} answered 5xx")
