"""Shared test configuration: Hypothesis profiles, per-dtype tolerances, thread restore.

Hypothesis: the "ci" profile (derandomized, so CI failures reproduce) is loaded
when the CI environment variable is set, otherwise "dev".  Override with
``--hypothesis-profile=NAME``.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import cnn_core

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=50, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Relative tolerance per dtype (numpy/scipy/sklearn practice).  The absolute
# tolerance is for results that are long sums (convolution, col2im, pooling
# backward, batch norm), where cancellation can leave an entry near 0 whose
# relative error is meaningless; the caller scales it to the typical magnitude
# of the result (``scale``).
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
ATOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def tolerances(dtype, long_sum=False, scale=1.0):
    """``dict(rtol=..., atol=...)`` for ``assert_allclose`` on results of ``dtype``."""
    dtype = np.dtype(dtype)
    return dict(rtol=RTOL[dtype], atol=ATOL[dtype] * scale if long_sum else 0.0)


@pytest.fixture(scope="session")
def tol():
    """The :func:`tolerances` helper, as a fixture: ``assert_allclose(a, b, **tol(dtype))``.

    Session-scoped (it is stateless) so that Hypothesis tests may use it too.
    """
    return tolerances


@pytest.fixture
def restore_num_threads():
    """Give the test a free hand with cnn_core.set_num_threads, then put the old value back."""
    previous = cnn_core.get_num_threads()
    yield
    cnn_core.set_num_threads(previous)


# Tests marked ``needs_data`` read ../shared/data; wheel tests (no data there) set
# CNN_CORE_SKIP_SHARED_DATA=1 and those tests are skipped by that explicit rule.
from _markers import apply_shared_data_rule, register_markers  # noqa: E402


def pytest_configure(config):
    register_markers(config)


def pytest_collection_modifyitems(config, items):
    apply_shared_data_rule(items)
