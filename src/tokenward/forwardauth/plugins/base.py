"""What every plugin shares: the request it sees, the user it may find, the outcome it returns."""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, TokenwardError
from tokenward.forwardauth.request_info import RequestInfo

__all__ = ["Outcome", "Plugin", "UserInfo", "VerifyRequest", "check_header_value"]

_CTL = re.compile(r"[\r\n\0]")


def check_header_value(value: str) -> None:
    """Refuse a response header value holding CR, LF or NUL (header injection)."""
    if _CTL.search(value):
        raise BadRequest("a response header value would hold CR, LF or NUL", code=ErrorCode.HEADER_VALUE_INVALID)


# Not frozen (a frozen dataclass pays object.__setattr__ per field, on every /verify); never mutated.
@dataclasses.dataclass(slots=True)
class UserInfo:
    """Who the request is from, as sent in ``Remote-User`` / ``-Email`` / ``-Groups`` / ``-Name``."""

    sub: str = ""
    email: str = ""
    groups: tuple[str, ...] = ()
    name: str = ""
    claims: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    _rendered: tuple[tuple[bytes, bytes], ...] | None = dataclasses.field(default=None, repr=False, compare=False)

    def remote_headers(self) -> list[tuple[bytes, bytes]]:
        """``Remote-User``, ``-Email``, ``-Groups``, ``-Name`` for ASGI: a fresh list, checked and encoded once."""
        rendered = self._rendered
        if rendered is None:
            sub, email, groups, name = self.sub, self.email, ",".join(self.groups), self.name
            check_header_value(sub + email + groups + name)  # one search: a CR, LF or NUL in any of them
            rendered = self._rendered = (
                (b"remote-user", sub.encode()),
                (b"remote-email", email.encode()),
                (b"remote-groups", groups.encode()),
                (b"remote-name", name.encode()),
            )
        return list(rendered)

    def as_dict(self) -> dict[str, Any]:
        return {**self.claims, "sub": self.sub, "email": self.email, "groups": list(self.groups), "name": self.name}


@dataclasses.dataclass(slots=True)
class Outcome:
    """A plugin's answer. On failure ``challenge`` becomes ``WWW-Authenticate``; ``location`` a redirect.

    ``headers`` go out with the answer whatever it is (a plugin's ``Set-Cookie``); a ``final``
    failure ends the chain and is the answer (a sign-in callback no other plugin should handle).
    """

    ok: bool
    user: UserInfo | None = None
    code: ErrorCode | Literal[""] = ""
    detail: str = ""
    challenge: str | None = None
    location: str | None = None
    status: int = 401
    headers: tuple[tuple[str, str], ...] = ()
    final: bool = False

    @classmethod
    def success(cls, user: UserInfo) -> Outcome:
        return cls(ok=True, user=user)

    @classmethod
    def failure(
        cls,
        code: ErrorCode,
        detail: str,
        *,
        challenge: str | None = None,
        status: int = 401,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Outcome:
        return cls(ok=False, code=code, detail=detail, challenge=challenge, status=status, headers=headers)

    @classmethod
    def refused(cls, exc: TokenwardError) -> Outcome:
        """A failure carrying ``exc``'s code, detail, status and headers (``Retry-After``…)."""
        return cls.failure(exc.error_code, exc.detail, status=exc.status, headers=tuple(exc.headers().items()))


@dataclasses.dataclass(slots=True)
class VerifyRequest:
    """One ``/verify`` call: the proxy's headers (lower-case names), the rebuilt request, the client."""

    headers: Mapping[str, str]
    info: RequestInfo
    client_ip: str | None
    request_id: str | None


C = TypeVar("C")


class Plugin(ABC, Generic[C]):
    """One authentication method, built once per config token and reused while the token is cached."""

    def __init__(self, config: C) -> None:
        self.config = config

    @abstractmethod
    async def verify(self, request: VerifyRequest) -> Outcome:
        """Authenticate ``request``; never raise for a bad credential (return a failure)."""

    async def aclose(self) -> None:
        """Release resources (HTTP clients)."""
