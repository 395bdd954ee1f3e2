"""Log set-up: text or JSON lines, with the request id of the request being served."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Literal, TextIO

__all__ = ["QUIET_LOGGERS", "REQUEST_ID", "JsonFormatter", "ThirdPartyFilter", "configure_logging"]

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("tokenward_request_id", default="-")

QUIET_LOGGERS = (
    "aiosqlite",  # every statement with its parameters (token hashes, MACs, e-mails)
    "asyncmy",
    "aiomysql",
    "psycopg",
    "asyncpg",
    "sqlalchemy",  # SQL and parameters, result rows (the engine hides parameters in errors only)
    "botocore",  # signed request headers (Authorization: AWS4-HMAC-SHA256 Credential=…)
    "boto3",
    "s3transfer",
    "urllib3",
    "redis",
)
"""Third-party loggers whose records below WARNING can carry secrets: kept at WARNING even when
``TOKENWARD_LOG_LEVEL=DEBUG``, and filtered out of tokenward's handler below WARNING in case
something lowers their level again. tokenward's own DEBUG records never hold a secret."""


def _quiet(name: str) -> bool:
    return any(name == quiet or name.startswith(quiet + ".") for quiet in QUIET_LOGGERS)


class ThirdPartyFilter(logging.Filter):
    """Drops records below WARNING from :data:`QUIET_LOGGERS` (and their children)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not _quiet(record.name)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id and any ``extra`` fields."""

    _RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "request_id", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in vars(record).items():
            if key not in self._RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class _Handler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of each record (as logging's last-resort
    handler does), not the stream of the moment it was made: a CLI call run in-process (tests,
    typer's CliRunner) swaps stderr and closes it afterwards. Marks the handler tokenward installed,
    so a second configure replaces it."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always sys.stderr


def configure_logging(level: str, fmt: Literal["text", "json"]) -> None:
    """Configure the root logger once for the process (idempotent)."""
    handler = _Handler()
    handler.addFilter(ThirdPartyFilter())
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _Handler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's own access log would duplicate ours (and print query strings that may hold tokens).
    logging.getLogger("uvicorn.access").disabled = True
    # Nor is the work of formatting them done: their records would be dropped anyway.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Migration chatter only when debugging; `tokenward db upgrade` prints the revision itself.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
