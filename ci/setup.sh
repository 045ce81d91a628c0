# Sourced by ci/test.sh and ci/bench.sh: make .venv with txframe installed from this
# checkout (compiled), installing what a fresh Debian lacks when we are root.
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
"$PY" -c "import ensurepip" 2>/dev/null \
    && "$PY" -c "import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
    && printf '#include <string.h>\nint main(void){return 0;}\n' | cc -x c - -o /dev/null 2>/dev/null \
    || apt_install python3-venv python3-dev gcc libc6-dev

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$ROOT[test]"
"$VENV/bin/python" -c "import txframe; print('txframe', txframe.__version__, '-', txframe.implementation)"
