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
# that need it): Postfix (postmap, and a whole Postfix for the end-to-end tests), the
# oidentd ident server, the curl and lftp FTP clients, systemd's systemd-analyze and
# systemd-socket-activate (serve-map's units and socket activation), redis-server,
# redis-sentinel and redis-cli for serve-map's Redis maps.
have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ]; }
missing=()
have postmap && have postcat || missing+=(postfix)
have systemd-analyze && have systemd-socket-activate || missing+=(systemd)
have oidentd || missing+=(oidentd)
have curl || missing+=(curl)
have lftp || missing+=(lftp)
have redis-server || missing+=(redis-server)
have redis-sentinel || missing+=(redis-sentinel)
have redis-cli || missing+=(redis-tools)
have valgrind || missing+=(valgrind)  # ci/versions.sh's speed gate (callgrind)
if [ ${#missing[@]} -gt 0 ]; then
    # A fresh postfix asks what kind of mail system to configure: none (the tests
    # configure their own instances), and nothing started system-wide.
    if [ "$(id -u)" = 0 ] && command -v debconf-set-selections >/dev/null; then
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    fi
    apt_install "${missing[@]}"
fi
cd "$ROOT"
# Both passes take the same arguments, so pytest arguments narrow both the same way
run_pytest() { "$VENV/bin/python" -m pytest -p no:cacheprovider --benchmark-disable "$@"; }
run_pytest "$@"
if [ $# -gt 0 ]; then
    TXFRAME_NO_EXTENSIONS=1 run_pytest "$@"
else
    bash "$ROOT/ci/dist.sh"
fi
[ $# -gt 0 ] || bash "$ROOT/ci/versions.sh"  # every CPython 3.10+ here, compiled
[ $# -gt 0 ] || bash "$ROOT/fuzz/smoke.sh"  # the differential fuzzers, briefly (not in narrowed runs)
