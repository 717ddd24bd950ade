#!/usr/bin/env bash
# AddressSanitizer run: the kernels compiled with -fsanitize=address, the kernel, layer,
# network and fuzz tests run against them.  Raw-pointer loops (im2col/col2im fast paths,
# pooling, the elementwise kernels) are invisible to Cython's bounds checks
# (tools/debug_build.sh); ASan sees every byte they read or write outside an allocation.
#
#   tools/asan_check.sh [pytest arguments...]
#
# GCC only (libasan preloaded into the interpreter).  The build is serial: the OpenMP probe
# does not link with the sanitizer flags, and the kernels run the same code per thread.
# Skipped on purpose: test_memory.py (ASan replaces malloc), and the fuzz test that crashes
# a child on purpose.  The fuzz worker's address-space limit is lifted (ASan reserves
# terabytes of shadow memory).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/cnn_core_asan.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
mkdir "$TMP/main"
tar -C "$REPO" -cf - --exclude=.git --exclude=build --exclude='*.so' --exclude='pyx/*.c' \
    --exclude='*.egg-info' . | tar -C "$TMP/main" -xf -
ln -s "$REPO/../shared" "$TMP/shared"
cd "$TMP/main"
sed -i 's/^    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))/    pass  # ASan: no RLIMIT_AS/' \
    tests/_fuzz_worker.py
CFLAGS="-fsanitize=address -fno-omit-frame-pointer" LDFLAGS="-fsanitize=address" \
    "$PYTHON" setup.py -q build_ext --inplace
LD_PRELOAD="$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 PYTHONPATH="$TMP/main" \
    "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_elementwise.py tests/test_winograd.py \
    tests/test_layers.py tests/test_network.py tests/test_fuzz.py tests/test_optim.py \
    tests/test_trainer.py --deselect tests/test_fuzz.py::test_a_crashing_child_is_reported_not_fatal \
    "$@"
