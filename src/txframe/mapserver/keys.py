"""The key rules: how a key is folded before it is stored and before it is looked up.

Postfix folds the keys of its file tables (hash:, texthash:, lmdb:, ...) to lower
case when postmap builds them and when they are queried (postmap(1) ``-f`` turns that
off), but sends tcp_table and socketmap keys as given: a server that wants to answer
as the table it replaces must fold them itself. With ``smtputf8_enable = yes`` (the
default from compatibility level 3.0) Postfix folds UTF-8 with ICU's full Unicode case
folding (``Straße`` -> ``strasse``, final sigma -> sigma), else ASCII only.

``utf8`` (the default) folds as Postfix does with SMTPUTF8: full case folding for a key
that is valid UTF-8 (Python's ``str.casefold``, the same Unicode rule), ASCII folding
for one that is not (Postfix would not look it up at all); ``ascii`` folds as Postfix
does without SMTPUTF8; ``none`` keeps keys as they are.

Every source and both protocols use :func:`folding` (one rule per server). Every rule
but ``none`` is ``bytes.lower`` on an ASCII key: the protocols call that inline, and
the rule's function only for other keys.
"""

from __future__ import annotations

from typing import Callable, Optional

Fold = Optional[Callable[[bytes], bytes]]

#: The names of the key rules, the default first.
RULES = ("utf8", "ascii", "none")


def fold_utf8(key: bytes) -> bytes:
    """*key* folded as Postfix folds it with ``smtputf8_enable = yes``."""
    if key.isascii():
        return key.lower()
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return key.lower()
    return text.casefold().encode("utf-8")


def fold_ascii(key: bytes) -> bytes:
    """*key* with ASCII letters lowered, as Postfix folds it without SMTPUTF8."""
    return key.lower()


def folding(rule: str) -> Fold:
    """The fold function of key rule *rule* (one of :data:`RULES`); None for ``none``."""
    if rule == "utf8":
        return fold_utf8
    if rule == "ascii":
        return fold_ascii
    if rule == "none":
        return None
    raise ValueError(f"unknown key rule {rule!r} (one of {', '.join(RULES)})")
