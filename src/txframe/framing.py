"""The framers, compiled or pure: the one module that chooses between them.

``TXFRAME_NO_EXTENSIONS=1`` (or any interpreter but CPython) selects pure Python;
otherwise the compiled modules are used when they were built and import cleanly.
Everything else in txframe imports framers from here, never from ``_*_c`` / ``_*_py``.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING, Any

NO_EXTENSIONS: bool = (
    os.environ.get("TXFRAME_NO_EXTENSIONS", "") not in ("", "0")
    or platform.python_implementation() != "CPython"
)

#: ``"compiled"`` when the Cython framers are in use, else ``"pure"``.
implementation = "pure"

#: The compiled ``delimiter`` / ``MAX_LENGTH`` descriptor that lets the compiled
#: framer skip re-reading them after every line; ``None`` in the pure build, where
#: plain class attributes are read as Twisted reads them.
Setting: Any = None
#: The base class of the compiled framers (``None`` in the pure build).
CompiledFramer: Any = None
#: The compiled line framer (``None`` in the pure build).
CompiledLineFramer: Any = None

if TYPE_CHECKING:
    from ._boxes_py import BoxFramer, Schema, decode_boxes, encode_box
    from ._lines_py import LineFramer, data_received
    from ._listing_py import ListFormatter
    from ._strings_py import NetstringFramer, PrefixFramer, string_data_received
elif not NO_EXTENSIONS:
    try:
        from ._framer_c import Framer as CompiledFramer
        from ._framer_c import Setting
        from ._boxes_c import BoxFramer, Schema, decode_boxes, encode_box
        from ._lines_c import LineFramer, data_received
        from ._listing_c import ListFormatter
        from ._strings_c import NetstringFramer, PrefixFramer, string_data_received
    except ImportError:  # built without a compiler: the pure twins below
        CompiledFramer = Setting = CompiledLineFramer = None
    else:
        implementation = "compiled"
        CompiledLineFramer = LineFramer

if implementation == "pure":
    from ._boxes_py import BoxFramer, Schema, decode_boxes, encode_box
    from ._lines_py import LineFramer, data_received
    from ._listing_py import ListFormatter
    from ._strings_py import NetstringFramer, PrefixFramer, string_data_received

# What the box codec shares between its two implementations: the Schema field kinds
# and its default error.
from ._boxes_py import (  # noqa: E402
    BOXES,
    BOOLEAN,
    FLOAT,
    INTEGER,
    LIST,
    METHOD,
    STRING,
    UNICODE,
    FieldTooLong,
)

__all__ = [
    "BOOLEAN",
    "BOXES",
    "BoxFramer",
    "CompiledFramer",
    "CompiledLineFramer",
    "FLOAT",
    "FieldTooLong",
    "INTEGER",
    "LIST",
    "METHOD",
    "STRING",
    "Schema",
    "UNICODE",
    "decode_boxes",
    "encode_box",
    "LineFramer",
    "ListFormatter",
    "NO_EXTENSIONS",
    "NetstringFramer",
    "PrefixFramer",
    "Setting",
    "data_received",
    "implementation",
    "string_data_received",
]
