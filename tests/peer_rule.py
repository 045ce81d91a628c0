"""The rule for what the tests need from the machine: a real peer (postmap, oidentd,
curl, lftp) or facility (IPv6 loopback, a user to run as) that is missing skips the
tests that need it, except under ``CI=true`` (as CI systems set it), where it fails
them: a CI run must not go green on tests it did not run. Likewise txframe's compiled
extension: missing, its tests skip, except under ``TXFRAME_REQUIRE_EXTENSIONS=1``."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRED = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")

#: TXFRAME_REQUIRE_EXTENSIONS=1 (CI, the compiled wheel's tests): a compiled module that
#: does not import is an error, never a skip.
EXTENSIONS_REQUIRED = os.environ.get("TXFRAME_REQUIRE_EXTENSIONS", "") not in ("", "0")


def unavailable(why: str) -> NoReturn:
    """Skip the test for *why*; under ``CI=true``, fail it."""
    if REQUIRED:
        pytest.fail(f"{why} (required under CI=true)")
    pytest.skip(why)
