#!/usr/bin/env bash
# CI's smoke run of the differential fuzzers: build the instrumented environment
# (fuzz/build.sh), then run every target for FUZZ_SMOKE_SECONDS (default 15) from
# the committed seeds. A divergence or a crash fails. If the build fails, CI=true
# fails; elsewhere it is skipped with a warning (clang may be missing).
# The interpreter: PYTHON, else a CPython 3.13 or 3.12 (on PATH or pyenv's), else
# python3. 3.12+ if there is one: there the compiled framers learn of class changes
# from CPython's type watchers instead of reading their settings every call.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=$(date +%s)
if [ -z "${PYTHON:-}" ]; then
    pyenv="${PYENV_ROOT:-$HOME/.pyenv}/versions"
    for candidate in python3.13 "$pyenv"/3.13*/bin/python3 python3.12 \
                     "$pyenv"/3.12*/bin/python3 python3; do
        if "$candidate" -c '' 2>/dev/null; then
            export PYTHON="$candidate"
            break
        fi
    done
fi
echo "fuzz/smoke.sh: fuzzing with $("${PYTHON:-python3}" -c 'import sys; print(sys.version.split()[0])')"
if ! bash "$HERE/build.sh"; then
    if [ "${CI:-}" = "true" ]; then
        echo "fuzz/smoke.sh: building the fuzzing environment failed (CI=true: failing)" >&2
        exit 1
    fi
    echo "fuzz/smoke.sh: WARNING: building the fuzzing environment failed: smoke run skipped" >&2
    exit 0
fi
bash "$HERE/run.sh" "${FUZZ_SMOKE_SECONDS:-15}"
status=$?
echo "fuzz/smoke.sh: build and smoke run took $(( $(date +%s) - started )) s"
exit "$status"
