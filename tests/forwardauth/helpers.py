"""Builders for forward-auth tests."""

from __future__ import annotations

import secrets
import time

from tokenward.keys import Keyring, TimeCode


def keyring(now: float | None = None) -> Keyring:
    code = TimeCode.generate(now=now or time.time(), random_bytes=secrets.token_bytes(32))
    return Keyring(code)


NOOP = {"tokenward": {"plugins": [{"type": "noop"}]}}
