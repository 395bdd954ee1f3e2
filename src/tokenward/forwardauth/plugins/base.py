"""What every plugin shares: the request it sees, the user it may find, the outcome it returns."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from tokenward.forwardauth.request_info import RequestInfo

__all__ = ["Outcome", "Plugin", "UserInfo", "VerifyRequest"]


# Not frozen (a frozen dataclass pays object.__setattr__ per field, on every /verify); never mutated.
@dataclasses.dataclass(slots=True)
class UserInfo:
    """Who the request is from, as sent in ``Remote-User`` / ``-Email`` / ``-Groups`` / ``-Name``."""

    sub: str = ""
    email: str = ""
    groups: tuple[str, ...] = ()
    name: str = ""
    claims: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.claims, "sub": self.sub, "email": self.email, "groups": list(self.groups), "name": self.name}


@dataclasses.dataclass(slots=True)
class Outcome:
    """A plugin's answer. On failure ``challenge`` becomes ``WWW-Authenticate``; ``location`` a redirect."""

    ok: bool
    user: UserInfo | None = None
    code: str = ""
    detail: str = ""
    challenge: str | None = None
    location: str | None = None
    status: int = 401

    @classmethod
    def success(cls, user: UserInfo) -> Outcome:
        return cls(ok=True, user=user)

    @classmethod
    def failure(cls, code: str, detail: str, *, challenge: str | None = None, status: int = 401) -> Outcome:
        return cls(ok=False, code=code, detail=detail, challenge=challenge, status=status)


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
