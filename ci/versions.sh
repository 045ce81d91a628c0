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
for py in /root/.pyenv/versions/3.1[0-9]*/bin/python3 $(compgen -c python3.1 | sort -u); do
    py="$(command -v "$py" || true)"
    [ -n "$py" ] && [ -x "$py" ] || continue
    v="$("$py" -c 'import sys; sys.implementation.name == "cpython" and sys.version_info >= (3, 10) and print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
    if [ -n "$v" ] && [ -z "${found[$v]:-}" ]; then found[$v]="$py"; fi
done

missing=()
for v in $EXPECTED; do [ -n "${found[$v]:-}" ] || missing+=("$v"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "ci/versions.sh: MISSING CPython ${missing[*]} (expected $EXPECTED): not tested" >&2
    [ "${CI:-}" != "true" ] || exit 1
fi

status=0
summary=()
for v in $(printf '%s\n' "${!found[@]}" | sort -V); do
    py="${found[$v]}"
    venv="$ROOT/.venvs/$v"
    start=$SECONDS
    echo "=== CPython $v ($py)"
    pip=("$venv/bin/python" -m pip install --quiet)
    if [ -x "$venv/bin/python" ]; then  # kept from an earlier run: rebuild txframe
        "${pip[@]}" "$ROOT[test]"
        "${pip[@]}" --no-deps --force-reinstall --no-build-isolation "$ROOT"
    else
        "$py" -m venv "$venv"
        "${pip[@]}" --upgrade pip
        "${pip[@]}" "$ROOT[test]"
    fi 2>&1 | { grep -v '^WARNING: Location' || true; }
    result=ok
    (cd "$ROOT" && "$venv/bin/python" -m pytest -p no:cacheprovider --benchmark-disable -q \
        -x "${TESTS[@]}" "$@" | tail -n 3) || result=FAILED
    (cd "$ROOT" && "$venv/bin/python" ci/speed_gate.py) || result=FAILED
    [ $result = ok ] || status=1
    summary+=("CPython $v: $result ($((SECONDS - start)) s)")
done
printf '%s\n' "${summary[@]}"
exit $status
