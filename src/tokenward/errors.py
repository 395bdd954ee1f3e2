"""One exception tree for tokenward.

Every error carries a stable machine-readable ``code`` (a member of ``tokenward.errorcodes.ErrorCode``,
listed in docs/errors.md), an HTTP ``status`` and a ``detail``
sentence a person can act on. The web layer renders them as ``{"error": code, "detail": ...}``;
the CLI prints ``error: detail`` and exits non-zero. Messages never contain secrets.

    TokenwardError
    ├── ConfigError              bad settings, unreadable or unsafe files (CLI/start-up)
    │   ├── InsecureFileError    a secret file readable by group/others
    │   └── BundleError          a shared config bundle that is incomplete, altered or sealed with another key
    ├── TimeCodeError            a time code that is malformed, truncated or of another version
    ├── StorageError             a database or blob store failed
    │   └── StorageUnavailable   the database cannot be reached (HTTP 503)
    ├── NotFound                 (HTTP 404)
    ├── Conflict                 (HTTP 409)
    ├── BadRequest               (HTTP 400)
    │   └── PayloadTooLarge      (HTTP 413)
    ├── Unauthorized             (HTTP 401)
    ├── Forbidden                (HTTP 403)
    ├── MethodNotAllowed         (HTTP 405)
    ├── TooManyRequests          (HTTP 429, always with Retry-After)
    ├── ServiceUnavailable       a service tokenward depends on (e.g. SMTP) is missing or down (HTTP 503)
    └── PolicyError              a policy file or question the engine cannot handle
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from tokenward.errorcodes import ErrorCode

__all__ = [
    "BadRequest",
    "BundleError",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "InsecureFileError",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PolicyError",
    "ServiceUnavailable",
    "StorageError",
    "StorageUnavailable",
    "TimeCodeError",
    "TokenwardError",
    "TooManyRequests",
    "Unauthorized",
    "error_body",
]

_V = TypeVar("_V")


class TokenwardError(Exception):
    """Base of every tokenward error.

    ``code`` is stable and machine-readable; ``detail`` is one sentence for a person.
    Subclasses set a default ``code`` and ``status``; call sites may pass a more specific code.
    """

    code: ClassVar[ErrorCode] = ErrorCode.ERROR
    status: ClassVar[int] = 500

    def __init__(self, detail: str, *, code: ErrorCode | None = None, fields: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.error_code = code or type(self).code
        #: Extra machine-readable members of the JSON body (e.g. ``rule`` for a policy refusal).
        self.fields: dict[str, str] = dict(fields) if fields else {}

    def headers(self) -> dict[str, str]:
        """Extra HTTP response headers (e.g. ``Retry-After``); none by default."""
        return {}

    def to_dict(self) -> dict[str, str]:
        """The JSON body: :func:`error_body` of this error (the same shape, kept ``str``-typed)."""
        return {**self.fields, "error": self.error_code, "detail": self.detail}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.error_code!r}, detail={self.detail!r})"


class ConfigError(TokenwardError):
    code = ErrorCode.CONFIG_INVALID
    status = 500


class InsecureFileError(ConfigError):
    code = ErrorCode.INSECURE_FILE


class BundleError(ConfigError):
    code = ErrorCode.BUNDLE_INVALID


class TimeCodeError(TokenwardError):
    code = ErrorCode.TIMECODE_INVALID
    status = 400


class StorageError(TokenwardError):
    code = ErrorCode.STORAGE_ERROR
    status = 503


class StorageUnavailable(StorageError):
    code = ErrorCode.STORAGE_UNAVAILABLE
    status = 503


class NotFound(TokenwardError):
    code = ErrorCode.NOT_FOUND
    status = 404


class Conflict(TokenwardError):
    code = ErrorCode.CONFLICT
    status = 409


class BadRequest(TokenwardError):
    code = ErrorCode.BAD_REQUEST
    status = 400


class PayloadTooLarge(BadRequest):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    status = 413


class Unauthorized(TokenwardError):
    code = ErrorCode.UNAUTHORIZED
    status = 401


class Forbidden(TokenwardError):
    code = ErrorCode.FORBIDDEN
    status = 403


class MethodNotAllowed(TokenwardError):
    code = ErrorCode.METHOD_NOT_ALLOWED
    status = 405


class TooManyRequests(TokenwardError):
    """Refused for a while (brute-force regulation); ``retry_after`` (whole seconds) becomes ``Retry-After``.

    Every 429 carries ``Retry-After`` (RFC 6585 §4): 1 s when the wait is not known (e.g. a spent
    captcha, which a new request replaces at once).
    """

    code = ErrorCode.TOO_MANY_REQUESTS
    status = 429

    def __init__(self, detail: str, *, code: ErrorCode | None = None, retry_after: int | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = 1 if retry_after is None else max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ServiceUnavailable(TokenwardError):
    code = ErrorCode.SERVICE_UNAVAILABLE
    status = 503


class PolicyError(TokenwardError):
    code = ErrorCode.POLICY_INVALID
    status = 400


def error_body(code: ErrorCode, detail: str, **extra: _V) -> dict[str, _V | str]:
    """The one shape of an error on the wire, ``{"error": code, "detail": sentence, ...extra}``.

    For answers that are not a raised :class:`TokenwardError` (a 422 listing fields, the last-resort 500,
    ``/readyz``, a ``/verify`` refusal); a raised error renders with :meth:`TokenwardError.to_dict`.
    """
    return {**extra, "error": code, "detail": detail}
