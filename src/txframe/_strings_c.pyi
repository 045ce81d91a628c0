from typing import Any, final

from ._framer_c import Framer

TOO_LONG: str
MISSING_LENGTH: str
MISSING_COMMA: str

class StringFramer(Framer):
    def feed(self, sink: Any, data: Any) -> None: ...
    def disregard(self) -> None: ...
    def reset(self) -> None: ...

@final
class PrefixFramer(StringFramer): ...

@final
class NetstringFramer(StringFramer): ...

def string_data_received(self: Any, data: Any) -> None: ...
