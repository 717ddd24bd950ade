"""The explicit rule that skips tests needing ``../shared/data`` where it is absent by design.

Wheel tests (cibuildwheel runs them in a temporary directory, with only ``tests/``
copied there) have no ``../shared/data``.  They set ``CNN_CORE_SKIP_SHARED_DATA=1``,
and every test marked ``@pytest.mark.needs_data`` is then skipped with the reason
below, shown in pytest's ``-ra`` summary.  Without the variable a missing data
directory still fails the tests, as it should on a developer's machine or in CI.

Hooked into ``tests/conftest.py`` by::

    from _markers import register_markers, apply_shared_data_rule

    def pytest_configure(config):
        register_markers(config)

    def pytest_collection_modifyitems(config, items):
        apply_shared_data_rule(items)
"""
import os

import pytest

SKIP_SHARED_DATA_ENV = "CNN_CORE_SKIP_SHARED_DATA"
NEEDS_DATA_MARKER = "needs_data"
NEEDS_DATA_HELP = (
    f"{NEEDS_DATA_MARKER}: the test reads ../shared/data; skipped when {SKIP_SHARED_DATA_ENV}=1"
)


def shared_data_skipped():
    """True when this run declares that ``../shared/data`` is not available (wheel tests)."""
    return os.environ.get(SKIP_SHARED_DATA_ENV) == "1"


requires_shared_data = pytest.mark.skipif(
    shared_data_skipped(),
    reason=f"{SKIP_SHARED_DATA_ENV}=1: no ../shared/data in this run (wheel test); "
           f"tests marked '{NEEDS_DATA_MARKER}' are skipped by rule",
)


def register_markers(config):
    """Register the ``needs_data`` marker (also for runs without the project's pyproject.toml)."""
    config.addinivalue_line("markers", NEEDS_DATA_HELP)


def apply_shared_data_rule(items):
    """Add :data:`requires_shared_data` to every collected test marked ``needs_data``."""
    for item in items:
        if item.get_closest_marker(NEEDS_DATA_MARKER) is not None:
            item.add_marker(requires_shared_data)
