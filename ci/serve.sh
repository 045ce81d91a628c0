#!/usr/bin/env bash
# The README's main job: txframe serve-map on the bundled example map, with the postmap
# commands that query it. Ctrl-C (or SIGTERM) stops it. txframe is installed into
# .venv (without the test extra) only when the checkout's sources changed since the
# last install: a second start takes about a second.
SETUP_INSTALL=if-changed
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
command -v postmap >/dev/null || [ -x /usr/sbin/postmap ] || apt_install postfix
PATH="$PATH:/usr/sbin"
cd "$ROOT"
# postmap reads main.cf before it answers: where Postfix is not configured, point it at
# the minimal one in examples/postfix.
[ -e /etc/postfix/main.cf ] && postmap="postmap" || postmap="postmap -c examples/postfix"
cat >&2 <<USAGE
Serving examples/example.map as "example": tcp_table on 127.0.0.1:10027, socketmap on
127.0.0.1:10028, metrics on 127.0.0.1:10029. From another shell (in $ROOT):

    $postmap -q alice@example.com tcp:127.0.0.1:10027
    $postmap -q spammer@example.biz socketmap:inet:127.0.0.1:10028:example
    $postmap -q 'John Doe' tcp:127.0.0.1:10027
    $postmap -q nobody@example.com tcp:127.0.0.1:10027; echo \$?     # 1: not found
    printf 'alice@example.com\\nexample.net\\n' | $postmap -q - tcp:127.0.0.1:10027
    curl -s http://127.0.0.1:10029/metrics
    kill -HUP <pid>      # reload (also automatic within a second of a file change)

USAGE
exec "$VENV/bin/txframe" serve-map --tcp 127.0.0.1:10027 --socketmap 127.0.0.1:10028 \
    --metrics 127.0.0.1:10029 "$@" examples/example.map
