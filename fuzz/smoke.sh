#!/usr/bin/env bash
# CI's smoke run of the differential fuzzers: build the instrumented environment
# (fuzz/build.sh), then run every target for FUZZ_SMOKE_SECONDS (default 15) from
# the committed seeds. A divergence or a crash fails. If a build fails, CI=true
# fails; elsewhere it is skipped with a warning (clang may be missing).
#
# Twice, when the machine has a CPython 3.12+ besides python3 (on PATH or pyenv's,
# 3.13 first): the compiled framers read their settings every call before 3.12 and
# learn of class changes from type watchers from 3.12 on, and both paths ship. The
# second build lives in fuzz/.venv-watchers. PYTHON=... fuzzes on that one only.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=$(date +%s)

version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

smoke() {  # smoke PYTHON VENV
    echo "fuzz/smoke.sh: fuzzing on CPython $(version "$1") ($1)"
    if ! PYTHON="$1" FUZZ_VENV="$2" bash "$HERE/build.sh"; then
        if [ "${CI:-}" = "true" ]; then
            echo "fuzz/smoke.sh: building the fuzzing environment failed (CI=true: failing)" >&2
            return 1
        fi
        echo "fuzz/smoke.sh: WARNING: building the fuzzing environment failed: smoke run skipped" >&2
        return 0
    fi
    FUZZ_VENV="$2" bash "$HERE/run.sh" "${FUZZ_SMOKE_SECONDS:-15}"
}

status=0
if [ -n "${PYTHON:-}" ]; then
    smoke "$PYTHON" "$HERE/.venv" || status=1
else
    smoke python3 "$HERE/.venv" || status=1
    pyenv="${PYENV_ROOT:-$HOME/.pyenv}/versions"
    for candidate in python3.13 "$pyenv"/3.13*/bin/python3 python3.12 \
                     "$pyenv"/3.12*/bin/python3; do
        v="$(version "$candidate")"
        if [ -n "$v" ] && [ "$v" != "$(version python3)" ]; then
            smoke "$candidate" "$HERE/.venv-watchers" || status=1
            break
        fi
    done
fi
echo "fuzz/smoke.sh: builds and smoke runs took $(( $(date +%s) - started )) s"
exit "$status"
