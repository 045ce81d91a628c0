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

missing=()
"$PY" -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
"$PY" -c "import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
    || missing+=(python3-dev)
command -v cc >/dev/null || command -v gcc >/dev/null || missing+=(gcc libc6-dev)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$ROOT[test]"
"$VENV/bin/python" -c "import txframe; print('txframe', txframe.__version__, '-', txframe.implementation)"
