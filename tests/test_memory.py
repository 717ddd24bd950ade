"""Freed memory kept between training steps (glibc): no page faults in steady state."""
import os
import platform
import resource
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import cnn_core
from cnn_core._memory import keep_freed_memory
from cnn_core.optim import Adam

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_state_is_reported():
    state = keep_freed_memory()
    if os.environ.get("CNN_CORE_KEEP_MEMORY") == "0":
        assert state.startswith("off")
    elif GLIBC:
        assert state.startswith("on")
    else:
        assert state.startswith("not applicable")


def test_env_var_turns_it_off():
    env = dict(os.environ, CNN_CORE_KEEP_MEMORY="0")
    out = subprocess.run([sys.executable, "-c", "import cnn_core._memory as m, cnn_core; "
                          "print(m.keep_freed_memory())"], env=env, capture_output=True,
                         text=True, timeout=120, cwd=tempfile.gettempdir())
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("off")


@pytest.mark.skipif(not GLIBC, reason="page-fault counts are a glibc heap property")
def test_training_steps_do_not_fault_pages_in():
    """Measured ~950 minor faults per SimpleConvNet step before (freed heap went back to
    the kernel after every step and was faulted in again)."""
    if keep_freed_memory().startswith("off"):
        pytest.skip("CNN_CORE_KEEP_MEMORY=0 in this environment")
    net = cnn_core.SimpleConvNet(seed=0)
    opt = Adam()
    rng = np.random.default_rng(0)
    x = rng.random((100, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 100)
    for _ in range(3):
        opt.update(net.params, net.gradient(x, t))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        opt.update(net.params, net.gradient(x, t))
    per_step = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
    assert per_step < 100, per_step
