"""Differential fuzz target: the FTP LIST formatter, compiled vs pure.

format_entry and format_lines over entries with hostile fields: names as text (lone
surrogates, non-Latin-1), bytes or other objects; sizes, link counts and times that
are huge, negative, floats, NaN or not numbers; owners that are not text;
Twisted's Permissions (read through, or with attributes of the wrong type) and other
objects whose shorthand() returns anything or raises; attrs of the wrong length.
"""

from __future__ import annotations

import time

from twisted.python import filepath

from twins import TWINS, Boom, Script, compare, main, outcome


class Odd:
    """Permissions that are not Twisted's: shorthand() says anything, or raises."""

    def __init__(self, said):
        self.said = said

    def shorthand(self):
        if isinstance(self.said, Exception):
            raise self.said
        return self.said


def permissions(mode, twist):
    made = filepath.Permissions(mode)
    if twist == 1:
        made.user = filepath.RWX(1, 0, 1)  # ints where booleans are expected
    elif twist == 2:
        made.group.read = "yes"
    elif twist == 3:
        made.other = None
    return made


NOW = int(time.time())
NAMES = ["file.txt", "\udcff\udc80", "caf\u00e9", "\u65e5\u672c", b"raw\xff", b"", "",
         bytearray(b"ba"), 7, None, "a b\r\n"]
NUMBERS = [0, 1, 4096, -1, 2**63, 2**70, -(2**70), 1.5, float("nan"), float("inf"), True,
           "12", None, 10**15, 2**31 - 1]
TIMES = [0, NOW, NOW - 86400 * 400, -1, 1e11, -1e11, 2**63, float("nan"), float("inf"),
         1.5, "0", NOW + 86400 * 365, 253402300799, 253402300800]  # (None: now)
OWNERS = ["alice", "averyveryverylongname", "", "\u00e9l\u00e8ve", "\u65e5\u672c\u8a9e",
          b"bytes", None, 5, "x" * 9]
SAID = ["rwxr-xr-x", "", "r" * 20, b"rwx", None, 7, "\u00e9", Boom("shorthand")]


def entry(s):
    kind = s.byte()
    if kind < 200:
        perms = permissions(s.fdp.ConsumeIntInRange(0, 0o7777), s.byte() % 8)
    else:
        perms = Odd(s.pick(SAID))
    attrs = [s.pick(NUMBERS), s.pick([True, False, 0, 1, "", "d", None]), perms,
             s.pick(NUMBERS), s.pick(TIMES), s.pick(OWNERS), s.pick(OWNERS)]
    if kind % 17 == 0:
        attrs = attrs[: s.byte() % 7]  # too few (Twisted's call raises TypeError)
    elif kind % 19 == 0:
        attrs = tuple(attrs) + (None,)
    elif kind & 1:
        attrs = tuple(attrs)
    return s.pick(NAMES), attrs


def play(twin, script):
    entries, start, limit = script
    formatter = twin["listing"].ListFormatter(filepath.Permissions, filepath.RWX)
    events = []
    for name, attrs in entries:
        if len(attrs) == 7:
            events.append(("entry", outcome(formatter.format_entry, name, *attrs)))
    events.append(("lines", outcome(formatter.format_lines, entries, start, limit)))
    return events


def read(data):
    s = Script(data)
    entries = [entry(s) for _ in range(s.fdp.ConsumeIntInRange(0, 6))]
    return entries, s.fdp.ConsumeIntInRange(0, 7), s.pick([0, 1, 60, 100, 10**6])


def test_one_input(data):
    script = read(data)
    compare("listing", {name: play(twin, script) for name, twin in TWINS})


if __name__ == "__main__":
    main(test_one_input)
