#!/usr/bin/env bash
# Bounds-checked build: the test suite against kernels compiled with Cython's bounds checks.
#
# setup.py reads CNN_CORE_DEBUG_CYTHON=1 and compiles the kernels with boundscheck (and
# initializedcheck) on.  This script
#   1. copies the source tree to a temporary directory without build products (no stale
#      pyx/*.c from a release build can be reused, no *.so can shadow anything),
#   2. pip-installs it, with the variable set, into a fresh virtual environment there,
#   3. proves the checks are compiled in (a kernel called directly with an index outside its
#      buffer must report an IndexError; a release build would write out of bounds),
#   4. runs the test suite from a copy of tests/ outside the source tree (TMP/main/tests,
#      with TMP/shared -> the repository's ../shared so that tests/_paths.py finds the data),
#      so the installed debug build is what is tested,
#   5. fails if "IndexError" appears anywhere in the output: an index the release build
#      would not have checked.  (In a noexcept nogil helper it is reported as an unraisable
#      exception, which pytest turns into a warning and tests/_fuzz_worker.py into a failure.)
#
#   tools/debug_build.sh [--keep] [pytest arguments...]      e.g. tools/debug_build.sh -x -q
#
# Exit status: 0 all good; 3 an IndexError was reported; 4 the build is not bounds-checked;
# otherwise pytest's status.  PYTHON picks the interpreter (default python3).  Needs the
# package index (or a pip cache) for the build requirements, as `pip install .` does.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
KEEP=0
if [[ "${1:-}" == "--keep" ]]; then
    KEEP=1
    shift
fi
TMP="$(mktemp -d "${TMPDIR:-/tmp}/cnn_core_debug.XXXXXX")"
cleanup() { if [[ $KEEP == 1 ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
START=$SECONDS
cd "$TMP"          # never the checkout: its uncompiled cnn_core/ would shadow the install

echo "== 1. source copy (no build products) -> $TMP/src"
mkdir "$TMP/src"
tar -C "$REPO" -cf - --exclude=.git --exclude=build --exclude=dist --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude='*.so' --exclude='*.pyd' --exclude='pyx/*.c' \
    --exclude=.hypothesis --exclude=.pytest_cache . | tar -C "$TMP/src" -xf -

echo "== 2. fresh venv, pip install with CNN_CORE_DEBUG_CYTHON=1"
"$PYTHON" -m venv "$TMP/venv"
VPY="$TMP/venv/bin/python"
"$VPY" -m pip install -q --upgrade pip
CNN_CORE_DEBUG_CYTHON=1 "$VPY" -m pip install -q "$TMP/src[test]"
BUILT=$((SECONDS - START))

echo "== 3. the bounds checks are compiled in"
# maxpool_backward scatters dout into dx at argmax's flat indices: 10**9 is far outside a
# 2x2 plane.  (functional.maxpool2d_backward refuses such an argmax; the kernel is called
# directly here, in a child, because a release build would write out of bounds.)
set +e
PROBE="$("$VPY" - 2>&1 <<'EOF'
import sys
import numpy as np
import cnn_core
from cnn_core import _pool
assert cnn_core.__file__.startswith(sys.prefix), f"imported {cnn_core.__file__}, not the venv's"
seen = []
sys.unraisablehook = lambda info: seen.append(type(info.exc_value).__name__)
try:
    _pool.maxpool_backward(np.ones((1, 1, 1, 1)), np.full((1, 1, 1, 1), 10**9, np.intp),
                           np.zeros((1, 1, 2, 2)), 1)
except IndexError:
    seen.append("IndexError")
print("bounds check:", "ON" if "IndexError" in seen else "OFF", seen, cnn_core.__file__)
EOF
)"
PROBE_STATUS=$?
set -e
echo "$PROBE"
if [[ $PROBE_STATUS != 0 || "$PROBE" != *"bounds check: ON"* ]]; then
    echo "debug_build: FAILED: the installed build is not bounds-checked (probe status $PROBE_STATUS)"
    exit 4
fi

echo "== 4. test suite from $TMP/main/tests"
mkdir "$TMP/main"
cp -R "$REPO/tests" "$TMP/main/tests"
cp "$REPO/pyproject.toml" "$TMP/main/"          # pytest's settings (no package beside it)
for extra in examples bench; do                 # scripts some tests run, if present
    if [[ -d "$REPO/$extra" ]]; then cp -R "$REPO/$extra" "$TMP/main/$extra"; fi
done
find "$TMP/main" -name __pycache__ -prune -exec rm -rf {} +
if [[ -d "$REPO/../shared" ]]; then
    ln -s "$(cd "$REPO/../shared" && pwd)" "$TMP/shared"
else
    echo "(no $REPO/../shared: tests marked needs_data are skipped)"
    export CNN_CORE_SKIP_SHARED_DATA=1
fi
LOG="$TMP/pytest.log"
set +e
(cd "$TMP/main" && "$TMP/venv/bin/pytest" -p no:cacheprovider "$@" 2>&1) | tee "$LOG"
STATUS=${PIPESTATUS[0]}
set -e

echo "== 5. summary"
ELAPSED=$((SECONDS - START))
echo "debug_build: build ${BUILT}s, total ${ELAPSED}s, pytest exit status $STATUS"
if grep -n "IndexError" "$LOG"; then
    echo "debug_build: FAILED: IndexError reported (an out-of-bounds index in a kernel)"
    exit 3
fi
echo "debug_build: no IndexError anywhere in the output"
exit "$STATUS"
