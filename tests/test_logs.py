"""Log set-up: the handler follows sys.stderr."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

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


async def test_debug_logs_hold_no_sql_parameters_nor_signed_s3_headers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 15 #10: at DEBUG, the database driver wrote statement parameters (hashes, MACs, e-mails) and
    botocore the signed headers of S3 requests; those third-party records stay out of the log."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError
    from sqlalchemy import text

    from tokenward.storage import Database

    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging("DEBUG", "text")
    database = Database.connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with database.engine.connect() as connection:
        assert (await connection.execute(text("select :p"), {"p": "SECRET-PARAM-1"})).scalar() == "SECRET-PARAM-1"
    await database.close()
    s3 = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens, the request is signed and logged first
        aws_access_key_id="AKIDLOGTEST",
        aws_secret_access_key="not-a-real-secret",
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    with pytest.raises(EndpointConnectionError):
        s3.list_buckets()
    logging.getLogger("tokenward.test").debug("our own debug line")
    # Even with a level lowered again by someone else, tokenward's handler drops them below WARNING.
    monkeypatch.setattr(logging.getLogger("botocore"), "level", logging.DEBUG)
    logging.getLogger("botocore.endpoint").debug("headers AKIDLOGTEST")
    logging.getLogger("botocore.endpoint").warning("a botocore warning still shows")
    logged = out.getvalue()
    assert "a botocore warning still shows" in logged
    assert "our own debug line" in logged
    assert "SECRET-PARAM-1" not in logged
    assert "AKIDLOGTEST" not in logged and "Signature=" not in logged
