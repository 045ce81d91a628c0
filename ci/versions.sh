#!/usr/bin/env bash
# Every CPython 3.10+ on this machine (pyenv's /root/.pyenv/versions/3.1x.y and any
# python3.1x on PATH): build txframe compiled in a venv of its own (.venvs/<version>),
# run the tests that differ from one CPython to the next, and the speed gate
# (ci/speed_gate.py: instruction counts under callgrind, compiled ÷ Twisted).
#
# The tests run per version are those of the compiled framers and what sits on them
# (framing, settings, lines, strings, netstrings, AMP codec): the rest of the
# suite (servers, peers, Twisted's own suites) exercises Python code that ci/test.sh
# runs in full on the default interpreter, and would take several minutes per version.
# ci/test.sh calls this; it can run alone: bash ci/versions.sh [pytest args].
# EXPECTED versions missing here are reported, and fail the run under CI=true.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXPECTED="3.10 3.11 3.12 3.13"
TESTS=(tests/test_settings_reads.py tests/test_settings.py tests/test_lines_framer.py
       tests/test_basic.py tests/test_strings.py tests/test_netstrings.py
       tests/test_amp_codec.py tests/test_implementation.py)
export TXFRAME_REQUIRE_EXTENSIONS=1

declare -A found=()
for py in /root/.pyenv/versions/3.1[0-9]*/bin/python3 $(compgen -c python3.1 | grep -E '^python3\.1[0-9]+$' | sort -u); do
    py="$(command -v "$py" || true)"
    [ -n "$py" ] && [ -x "$py" ] || continue
    v="$("$py" -c 'import sys; sys.implementation.name == "cpython" and sys.version_info >= (3, 10) and print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
    if [[ "$v" =~ ^3\.[0-9]+$ ]] && [ -z "${found[$v]:-}" ]; then found[$v]="$py"; fi
done

missing=()
for v in $EXPECTED; do [ -n "${found[$v]:-}" ] || missing+=("$v"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "ci/versions.sh: MISSING CPython ${missing[*]} (expected $EXPECTED): not tested" >&2
    [ "${CI:-}" != "true" ] || exit 1
fi

# One job per version, as many at a time as there are CPUs (the speed gate counts
# instructions, which jobs running beside it do not change).
one() {
    local v="$1" py="$2" venv="$ROOT/.venvs/$1" start=$SECONDS result=ok
    local pip=("$ROOT/.venvs/$1/bin/python" -m pip install --quiet)
    echo "=== CPython $v ($py)"
    (   # one build at a time: setuptools builds in the checkout's build/
        flock 9
        if [ -x "$venv/bin/python" ]; then  # kept from an earlier run: rebuild txframe
            "${pip[@]}" "$ROOT[test]" && "${pip[@]}" --no-deps --force-reinstall --no-build-isolation "$ROOT"
        else
            "$py" -m venv "$venv" && "${pip[@]}" --upgrade pip && "${pip[@]}" "$ROOT[test]"
        fi
    ) 9>"$ROOT/.venvs/.build.lock" 2>&1 | { grep -v '^WARNING: Location' || true; } || result=FAILED
    if [ $result = ok ]; then
        (cd "$ROOT" && "$venv/bin/python" -m pytest -p no:cacheprovider --benchmark-disable \
            -q -x "${TESTS[@]}" "${ARGS[@]}" 2>&1 | tail -n 3) || result=FAILED
        (cd "$ROOT" && "$venv/bin/python" ci/speed_gate.py) || result=FAILED
    fi
    echo "CPython $v: $result ($((SECONDS - start)) s)"
    [ $result = ok ]
}

ARGS=("$@")
mkdir -p "$ROOT/.venvs"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
jobs_max="$(nproc 2>/dev/null || echo 2)"
versions=($(printf '%s\n' "${!found[@]}" | sort -V))
for v in "${versions[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
    one "$v" "${found[$v]}" > "$logs/$v" 2>&1 &
done
wait || true
status=0
for v in "${versions[@]}"; do
    cat "$logs/$v"
    grep -q "^CPython $v: ok" "$logs/$v" || status=1
done
grep -h '^CPython [0-9.]*: ' "${versions[@]/#/$logs/}"
exit $status
