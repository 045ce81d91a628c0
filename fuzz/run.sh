#!/usr/bin/env bash
# Run the differential fuzz targets for SECONDS each and print executions/second and
# totals. Build first: bash fuzz/build.sh.
#
#   bash fuzz/run.sh SECONDS [TARGET ...]     targets: lines strings boxes listing
#                                             (default: all, one after the other)
#   FUZZ_PARALLEL=1 bash fuzz/run.sh ...      all targets at once (one process each)
#
# Inputs that find new coverage go to fuzz/.work/corpus/TARGET (not committed; the
# committed seeds are fuzz/corpus/TARGET); a crash or divergence is written to
# fuzz/.work/artifacts/ and fails the run (exit status 1). Extra libFuzzer flags:
# FUZZ_FLAGS="-jobs=..." etc.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/env.sh"
[ $# -ge 1 ] || { echo "usage: fuzz/run.sh SECONDS [TARGET ...]" >&2; exit 2; }
SECONDS_EACH="$1"
shift
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(lines strings boxes listing)
WORK="$HERE/.work"
mkdir -p "$WORK/artifacts" "$WORK/logs"

run_target() {
    local target="$1"
    mkdir -p "$WORK/corpus/$target"
    # -max_len keeps the scripts short (they are plans, not payloads); -timeout and
    # -rss_limit_mb turn a hang or a memory blow-up into a failure (the timeout is
    # generous: on a busy machine a niced run may stall for seconds).
    (cd "$HERE" && "$FUZZ_PY" "fuzz_$target.py" -max_total_time="$SECONDS_EACH" \
        -max_len=512 -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$WORK/artifacts/$target-" ${FUZZ_FLAGS:-} \
        "$WORK/corpus/$target" $(ls -d "$HERE/corpus/$target" 2>/dev/null)) \
        >"$WORK/logs/$target.log" 2>&1
}

report() {
    local target="$1" status="$2" log="$WORK/logs/$1.log" runs rate
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    printf '%-8s %12s executions %8s exec/s  %s\n' "$target" "${runs:-?}" "${rate:-?}" \
        "$([ "$status" = 0 ] && echo ok || echo "FAILED (see $log)")"
    TOTAL=$((TOTAL + ${runs:-0}))
}

TOTAL=0
FAILED=0
declare -A STATUS
if [ "${FUZZ_PARALLEL:-0}" != 0 ]; then
    declare -A PIDS
    for t in "${TARGETS[@]}"; do run_target "$t" & PIDS[$t]=$!; done
    for t in "${TARGETS[@]}"; do wait "${PIDS[$t]}"; STATUS[$t]=$?; done
else
    for t in "${TARGETS[@]}"; do run_target "$t"; STATUS[$t]=$?; done
fi
for t in "${TARGETS[@]}"; do
    report "$t" "${STATUS[$t]}"
    if [ "${STATUS[$t]}" != 0 ]; then
        FAILED=1
        grep -v '^    #' "$WORK/logs/$t.log" | grep -A12 -m1 -E 'Divergence|ERROR|Uncaught' >&2
    fi
done
printf '%-8s %12s executions\n' total "$TOTAL"
exit "$FAILED"
