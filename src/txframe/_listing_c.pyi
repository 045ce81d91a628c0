from collections.abc import Sequence
from typing import Any, final

@final
class ListFormatter:
    @property
    def permissions_type(self) -> Any: ...
    @property
    def rwx_type(self) -> Any: ...
    def __init__(self, permissions_type: Any = None, rwx_type: Any = None) -> None: ...
    def format_entry(
        self,
        name: Any,
        size: Any,
        directory: Any,
        permissions: Any,
        hardlinks: Any,
        modified: Any,
        owner: Any,
        group: Any,
    ) -> bytes: ...
    def format_lines(
        self, entries: Sequence[Any], start: int, limit: int
    ) -> tuple[bytes, int]: ...

def current_year() -> int: ...
