"""The server-side state of a captcha or resource login challenge (``identity.captcha`` checks it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Challenge"]


@dataclass(frozen=True, slots=True)
class Challenge:
    """Server-side state of one captcha (or one resource login challenge, ``kind="resource"``)."""

    id: str
    kind: str
    subject: str
    client_id: str
    app_hash: str
    code_challenge: str
    code_mac: str
    key_id: str
    created_at: float
    expires_at: float
    attempts: int = 0
    consumed_at: float | None = None
