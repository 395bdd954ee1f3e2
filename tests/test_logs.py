"""Log set-up: the handler follows sys.stderr."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from tokenward.logs import REQUEST_ID, configure_logging


def test_records_go_to_the_current_stderr_even_after_it_was_swapped_and_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An in-process CLI run (CliRunner) swaps stderr and closes it afterwards; a server still running
    # in the same process must keep logging, to the stderr of the moment, without "Logging error".
    # (tests/conftest.py removes the handler configure_logging installs and restores the level.)
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    configure_logging("INFO", "text")
    token = REQUEST_ID.set("req-1")
    logging.getLogger("tokenward.test").info("first")
    REQUEST_ID.reset(token)
    assert "INFO tokenward.test [req-1] first" in swapped.getvalue()
    swapped.close()
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)
    logging.getLogger("tokenward.test").info("second")
    assert "second" in later.getvalue() and "Logging error" not in later.getvalue()


def test_configure_logging_leaves_no_handler_to_later_tests() -> None:
    # The autouse fixture in tests/conftest.py undid the previous test's configure_logging.
    assert not [h for h in logging.getLogger().handlers if type(h).__module__ == "tokenward.logs"]
