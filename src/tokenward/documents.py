"""Reading config token documents from text (JSON or YAML), with size caps."""

from __future__ import annotations

import json
from typing import Any

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest

__all__ = ["MAX_DOCUMENT_BYTES", "load_text"]

MAX_DOCUMENT_BYTES = 1_048_576


def load_text(text: str, *, what: str = "document") -> Any:
    """Parse JSON, or YAML (safe loader) when it is not JSON. 400 ``document_invalid`` naming the problem."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise BadRequest(f"the {what} is larger than {MAX_DOCUMENT_BYTES} bytes", code=ErrorCode.DOCUMENT_TOO_LARGE)
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml  # here: most documents are JSON, and PyYAML costs a tenth of a second to import

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise BadRequest(f"the {what} is neither JSON nor YAML{where}", code=ErrorCode.DOCUMENT_INVALID) from None
