"""System login for PAM hosts over HTTP (docs/system-login.md). Thin: parse, call the service, render.

The host authenticates with the source identifier of its Ed25519 resource login
(``Authorization: Bearer tw1si.…`` of a ``resource`` session, docs/protocol.md §8); the host's
name is that session's subject. ``POST /api/system-login/user-captcha`` is public, like
``POST /api/captcha``: only the user's enrolled authenticator can read what it returns.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Forbidden, ServiceUnavailable
from tokenward.identity.source import SourceIdentity
from tokenward.identity.system_login import SystemCaptcha, SystemLoginService
from tokenward.web.deps import current_session
from tokenward.web.state import get_runtime, request_client_ip

__all__ = ["router"]

router = APIRouter(tags=["system login"])


async def get_system_login(request: Request) -> SystemLoginService:
    # async: FastAPI runs a plain def dependency in its thread pool, a hop on every request.
    service = get_runtime(request).system_login
    if service is None:
        raise ServiceUnavailable(
            "system login is not available on this server", code=ErrorCode.SYSTEM_LOGIN_UNAVAILABLE
        )
    return service


async def host_session(identity: Annotated[SourceIdentity, Depends(current_session)]) -> SourceIdentity:
    """The calling host: a resource session (a user's session is refused)."""
    if identity.kind != "resource":
        raise Forbidden(
            "system login is asked by a host: log in with the host's resource key", code=ErrorCode.HOST_SESSION_REQUIRED
        )
    return identity


Service = Annotated[SystemLoginService, Depends(get_system_login)]
Host = Annotated[SourceIdentity, Depends(host_session)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=320)


class HostCaptchaIn(_In):
    user: str = Field(max_length=254, description="The e-mail address the unix user maps to.")
    remote: str | None = Field(
        default=None, max_length=255, description="Where the login comes from (PAM_RHOST): regulated per remote."
    )


class UserCaptchaIn(_In):
    email: str = Field(max_length=254)
    host: str = Field(max_length=253, description="The host (its resource name) to log in to.")


class SystemCaptchaOut(BaseModel):
    captcha_id: str
    captcha: str = Field(description="The HPKE-sealed payload `TWC1.…`/`TWC2.…`, also the QR text.")
    expires_at: int


class VerifyIn(_In):
    user: str = Field(max_length=254)
    code: str = Field(max_length=64, description="What the user typed.")
    captcha_id: str | None = Field(
        default=None, max_length=43, description="The captcha the host showed; omitted when the user made it."
    )
    remote: str | None = Field(default=None, max_length=255)


class VerifyOut(BaseModel):
    status: str = Field(description="Always `allowed`: every refusal is an error answer.")
    user: str
    host: str


def _out(issued: SystemCaptcha) -> SystemCaptchaOut:
    return SystemCaptchaOut(captcha_id=issued.captcha_id, captcha=issued.payload, expires_at=issued.expires_at)


@router.post("/api/system-login/captcha", summary="Host: a captcha for a user logging in to this host")
async def host_captcha(body: HostCaptchaIn, host: Host, service: Service) -> SystemCaptchaOut:
    return _out(
        await service.host_captcha(
            host=host.subject, client_id=host.client_id, user=body.user, now=time.time(), remote=body.remote
        )
    )


@router.post("/api/system-login/user-captcha", summary="Authenticator: a captcha for logging in to a host")
async def user_captcha(body: UserCaptchaIn, service: Service, request: Request) -> SystemCaptchaOut:
    return _out(
        await service.user_captcha(
            host=body.host, user=body.email, now=time.time(), client_ip=request_client_ip(request)
        )
    )


@router.post("/api/system-login/verify", summary="Host: check the code a user typed (once)")
async def verify(body: VerifyIn, host: Host, service: Service) -> VerifyOut:
    granted = await service.verify(
        host=host.subject,
        user=body.user,
        code=body.code,
        captcha_id=body.captcha_id,
        now=time.time(),
        remote=body.remote,
    )
    return VerifyOut(status="allowed", user=granted.user, host=granted.host)
