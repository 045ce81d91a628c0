"""The rule for what the tests need from the machine: a real peer (postmap, oidentd,
curl, lftp) or facility (IPv6 loopback, a user to run as) that is missing skips the
tests that need it, except under ``CI=true`` (as CI systems set it), where it fails
them: a CI run must not go green on tests it did not run."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRED = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(why: str) -> NoReturn:
    """Skip the test for *why*; under ``CI=true``, fail it."""
    if REQUIRED:
        pytest.fail(f"{why} (required under CI=true)")
    pytest.skip(why)
