#!/usr/bin/env bash
# Build the fuzzing environment: fuzz/.venv with atheris, Twisted and txframe compiled
# by clang with libFuzzer's coverage instrumentation and AddressSanitizer.
#
#   bash fuzz/build.sh            (re)build; fast when nothing changed
#
# Needs clang and its sanitizer runtimes (Debian: clang, libclang-rt-dev; installed when
# root and missing). PYTHON picks the interpreter (default python3), FUZZ_VENV the
# environment (default fuzz/.venv; made again if another interpreter made it).
# fuzz/run.sh sources
# fuzz/env.sh for the runtime settings (the ASan runtime preloaded into python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="${FUZZ_VENV:-$ROOT/fuzz/.venv}"

if ! command -v clang >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "fuzz/build.sh: installing clang" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            clang libclang-rt-dev >/dev/null
    else
        echo "fuzz/build.sh: clang is missing and we are not root: install clang" >&2
        exit 1
    fi
fi

version() { "$1" -c 'import sys; print(sys.version)'; }
if [ -x "$VENV/bin/python" ] && [ "$(version "$VENV/bin/python")" != "$(version "$PY")" ]; then
    rm -rf "$VENV"  # made with another interpreter than PYTHON's
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# atheris comes as a binary wheel with its own libFuzzer + ASan runtime for the
# common interpreters; elsewhere pip compiles it, which needs clang (CLANG_BIN).
CLANG_BIN="$(command -v clang)" "$VENV/bin/python" -m pip install --quiet \
    atheris twisted "Cython>=3.1" "setuptools>=77" wheel

# txframe, compiled by clang with coverage counters and ASan (no libFuzzer main: the
# runtime comes from atheris, preloaded). Fresh build dir: no object from another
# compiler is reused.
FLAGS="-fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer -g -O1"
rm -rf "$ROOT/build"
CC=clang LDSHARED="clang -shared" CFLAGS="$FLAGS" LDFLAGS="$FLAGS" \
    TXFRAME_REQUIRE_EXTENSIONS=1 \
    "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation \
    --force-reinstall "$ROOT"
rm -rf "$ROOT/build"

# Check: the compiled framers load (under the ASan runtime) and are instrumented.
source "$ROOT/fuzz/env.sh"
"$VENV/bin/python" - <<'PY'
import glob, os, txframe.framing as f
assert f.implementation == "compiled", f.implementation
for so in glob.glob(os.path.join(os.path.dirname(f.__file__), "_*_c*.so")):
    symbols = open(so, "rb").read()
    assert b"__asan_" in symbols and b"__sanitizer_cov" in symbols, f"{so}: not instrumented"
print("fuzz/build.sh: txframe compiled with ASan + coverage in", os.path.dirname(f.__file__))
PY
