#!/usr/bin/env bash
# The whole test suite on both implementations (README's test command; .ci/run calls it).
# Pass 1: the installed package as users get it (compiled framers, and the pure ones
#         side by side through the `impl` fixture); benchmarks run once each as tests.
# Then the pure configuration (txframe's defaults pure, as a pure install has them):
#   - a full run: ci/dist.sh, which tests the sdist, the manylinux wheel and the pure
#     wheel as users install them (its pure-wheel suite is this configuration);
#   - a run narrowed by pytest arguments (bash ci/test.sh -k LineOnly): pass 2, the
#     same tests from the checkout with TXFRAME_NO_EXTENSIONS=1.
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
if [ $# -gt 0 ]; then
    TXFRAME_NO_EXTENSIONS=1 "$VENV/bin/python" -m pytest -p no:cacheprovider tests -q "$@"
else
    bash "$ROOT/ci/dist.sh"
fi
[ $# -gt 0 ] || bash "$ROOT/fuzz/smoke.sh"  # the differential fuzzers, briefly (not in narrowed runs)
