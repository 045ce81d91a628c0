# Sourced by ci/test.sh and ci/bench.sh: make .venv with txframe installed from this
# checkout (compiled), with the test extra, installing what a fresh Debian lacks when
# we are root. ci/serve.sh sources it with SETUP_INSTALL=if-changed: then txframe is
# installed without extras, and only when .venv does not already hold this
# checkout's build (see build_stamp).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
if [ "${CI:-}" = "true" ]; then
    export TXFRAME_REQUIRE_EXTENSIONS=1
fi

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "ci/setup.sh: installing Debian packages: $*" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    else
        echo "ci/setup.sh: missing $* and not root: install them yourself" >&2
    fi
}

# What building txframe needs: venv/ensurepip, the Python headers and a C compiler
# that can compile against libc. On a fresh Debian all are missing; install them
# together (with --no-install-recommends, gcc alone would come without libc6-dev).
build_prerequisites() {
    "$PY" -c "import ensurepip" 2>/dev/null \
        && "$PY" -c "import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
        && printf '#include <string.h>\nint main(void){return 0;}\n' | cc -x c - -o /dev/null 2>/dev/null \
        || apt_install python3-venv python3-dev gcc libc6-dev
}

# What .venv's txframe was built from: the hashes of the files a build reads (those
# git tracks or would track under src/ and the build configuration), the build
# switches, and the installed package's RECORD (so another install into .venv, or
# none, does not match).
build_stamp() {
    (
        cd "$ROOT"
        if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
            git ls-files -z --cached --others --exclude-standard -- \
                src setup.py pyproject.toml MANIFEST.in
        else
            find src setup.py pyproject.toml MANIFEST.in -type f ! -path '*/__pycache__/*' \
                ! -path '*.egg-info/*' -print0 2>/dev/null
        fi | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
            | sort -z | xargs -0 -r sha256sum || true  # (a file missing: just no match)
        echo "switches: ${TXFRAME_NO_EXTENSIONS:-} ${TXFRAME_REQUIRE_EXTENSIONS:-}"
        cat "$VENV"/lib/python*/site-packages/txframe-*.dist-info/RECORD 2>/dev/null || true
    ) | sha256sum | cut -d' ' -f1
}
STAMP="$VENV/.txframe-build-stamp"

install_txframe() {  # install_txframe [EXTRAS]: txframe from this checkout into .venv
    build_prerequisites
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet "$ROOT${1:-}"
    build_stamp > "$STAMP"
    "$VENV/bin/python" -c "import txframe; print('txframe', txframe.__version__, '-', txframe.implementation)"
}

case "${SETUP_INSTALL:-always}" in
    always) install_txframe "[test]" ;;
    if-changed)
        if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(build_stamp)" ]; then
            echo "ci/setup.sh: .venv holds this checkout's build" >&2
        else
            install_txframe
        fi ;;
    *) echo "ci/setup.sh: SETUP_INSTALL must be always or if-changed" >&2; exit 2 ;;
esac
