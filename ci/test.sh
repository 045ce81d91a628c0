#!/usr/bin/env bash
# The whole test suite on both implementations (README's test command; .ci/run calls it).
# Pass 1: the installed package as users get it (compiled framers, and the pure ones
#         side by side through the `impl` fixture); benchmarks run once each as tests.
# Pass 2: TXFRAME_NO_EXTENSIONS=1, the configuration of a pure install.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# The real peers the tests talk to (under CI=true the absence of one fails the tests
# that need it): Postfix's postmap, the oidentd ident server, the curl and lftp FTP
# clients.
have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ]; }
missing=()
have postmap || missing+=(postfix)
have oidentd || missing+=(oidentd)
have curl || missing+=(curl)
have lftp || missing+=(lftp)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
cd "$ROOT"
"$VENV/bin/python" -m pytest -p no:cacheprovider --benchmark-disable "$@"
TXFRAME_NO_EXTENSIONS=1 "$VENV/bin/python" -m pytest -p no:cacheprovider tests -q "$@"
# The distribution artifacts, built and tested as users install them (sdist, manylinux
# wheel, pure wheel; the suite run from outside the checkout; stubtest and mypy). Not
# when pytest arguments narrow the run (bash ci/test.sh -k LineOnly).
[ $# -gt 0 ] || bash "$ROOT/ci/dist.sh"
