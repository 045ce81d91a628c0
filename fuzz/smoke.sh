#!/usr/bin/env bash
# CI's smoke run of the differential fuzzers: build the instrumented environment
# (fuzz/build.sh), then run every target for FUZZ_SMOKE_SECONDS (default 15) from
# the committed seeds. A divergence or a crash fails. If the build fails, CI=true
# fails; elsewhere it is skipped with a warning (clang may be missing).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=$(date +%s)
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
