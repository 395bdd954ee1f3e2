"""Time codes: the cluster secret shared by every instance of one server name.

Format (version 1), one printable string::

    tw1.<label>.<secret>.<check>

* ``label``  — decimal Unix minutes aligned down to a multiple of 15 (the original's "KGT"
  time code), public; it says when the code was made.
* ``secret`` — 32 random bytes (256 bits), base64url without padding (43 characters).
* ``check``  — first 6 base64url characters of SHA-256 over ``tw1.<label>.<secret>``; it
  catches truncation and typos before anything is stored.

See docs/keys.md. Parsing is pure; randomness and the clock are passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field

from tokenward.errorcodes import ErrorCode
from tokenward.errors import TimeCodeError
from tokenward.keys.secret import Secret

__all__ = ["SECRET_BYTES", "VERSION", "TimeCode", "align_label"]

VERSION = "tw1"
SECRET_BYTES = 32
WINDOW_MINUTES = 15
_SHAPE = re.compile(r"^([A-Za-z0-9]+)\.(\d{1,12})\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$")
_EXAMPLE = "tw1.29614685.<43 characters>.<6 characters>"


def align_label(unix_seconds: float) -> int:
    """Unix minutes aligned down to the 15-minute window containing ``unix_seconds``."""
    minutes = int(unix_seconds // 60)
    return minutes - minutes % WINDOW_MINUTES


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _check(label: int, secret_text: str) -> str:
    return _b64(hashlib.sha256(f"{VERSION}.{label}.{secret_text}".encode("ascii")).digest())[:6]


@dataclass(frozen=True)
class TimeCode:
    """A parsed time code. ``secret`` is masked in reprs; ``label`` is public."""

    label: int
    secret: Secret = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret.reveal()) != SECRET_BYTES:
            raise TimeCodeError(f"a time code secret must be {SECRET_BYTES} bytes", code=ErrorCode.TIMECODE_MALFORMED)
        if self.label < 0 or self.label % WINDOW_MINUTES:
            raise TimeCodeError(
                f"time code label {self.label} is not a 15-minute-aligned Unix minute",
                code=ErrorCode.TIMECODE_MALFORMED,
            )

    @classmethod
    def generate(cls, *, now: float, random_bytes: bytes) -> TimeCode:
        """A new time code labelled with the window of ``now``; ``random_bytes`` from ``secrets.token_bytes(32)``."""
        return cls(label=align_label(now), secret=Secret(random_bytes))

    @classmethod
    def parse(cls, text: str) -> TimeCode:
        """Parse ``tw1.<label>.<secret>.<check>``; raise TimeCodeError with a specific code if it is not one."""
        text = text.strip()
        match = _SHAPE.match(text)
        if match is None:
            if text.isdigit():
                raise TimeCodeError(
                    "this looks like a time code of the original server (digits only); tokenward needs a "
                    f"version 1 code like {_EXAMPLE} — run `tokenward timecode generate`",
                    code=ErrorCode.TIMECODE_VERSION,
                )
            raise TimeCodeError(
                f"not a time code: expected four dot-separated parts like {_EXAMPLE}", code=ErrorCode.TIMECODE_MALFORMED
            )
        version, label_text, secret_text, check = match.groups()
        if version != VERSION:
            raise TimeCodeError(
                f"unsupported time code version {version!r}; this tokenward reads {VERSION!r}",
                code=ErrorCode.TIMECODE_VERSION,
            )
        if len(secret_text) != 43 or len(check) != 6:
            raise TimeCodeError(
                "time code is truncated or has extra characters (the secret part must be 43 characters, the check 6)",
                code=ErrorCode.TIMECODE_TRUNCATED,
            )
        if not hmac.compare_digest(_check(int(label_text), secret_text), check):
            raise TimeCodeError("time code check failed: it was mistyped or altered", code=ErrorCode.TIMECODE_CHECKSUM)
        try:
            raw = base64.urlsafe_b64decode(secret_text + "=")
        except (binascii.Error, ValueError):
            raise TimeCodeError("time code secret is not base64url", code=ErrorCode.TIMECODE_MALFORMED) from None
        return cls(label=int(label_text), secret=Secret(raw))

    def format(self) -> str:
        """The printable form. It contains the secret: show it only to the operator who asked."""
        secret_text = _b64(self.secret.reveal())
        return f"{VERSION}.{self.label}.{secret_text}.{_check(self.label, secret_text)}"

    @property
    def key_id(self) -> str:
        """Public identifier ``<label>-<8 hex>``; tokens name the code that made them by it."""
        digest = hmac.new(self.secret.reveal(), b"tokenward/v1/key-id", hashlib.sha256).hexdigest()
        return f"{self.label}-{digest[:8]}"

    def __str__(self) -> str:
        return f"TimeCode(label={self.label}, key_id={self.key_id})"
