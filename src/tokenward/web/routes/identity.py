"""Sessions and client tokens over HTTP (docs/protocol.md). Thin: parse, call the service, render.

The :class:`~tokenward.identity.service.IdentityService` is built with the runtime
(:func:`tokenward.runtime.build_identity`, a facade over the flows in
:mod:`tokenward.identity`); handlers reach it through :mod:`tokenward.web.state`.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tokenward.apptokens import Caller
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.identity.client_tokens import jwks
from tokenward.identity.service import ENROLLMENT_CODE_TTL, IdentityService, key_fingerprint, normalize_email
from tokenward.identity.source import SourceIdentity
from tokenward.web.deps import (
    MANAGE_SESSION_SCOPE,
    SourceIdentifierAuthenticator,
    admin,
    current_session,
    identity_service,
    manager,
)
from tokenward.web.state import get_runtime, request_client_ip

__all__ = ["MANAGE_SESSION_SCOPE", "SourceIdentifierAuthenticator", "router"]

router = APIRouter(tags=["sessions"])

Service = Annotated[IdentityService, Depends(identity_service)]


Session = Annotated[SourceIdentity, Depends(current_session)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class EnrollIn(_In):
    email: str
    code: str = Field(max_length=64)
    public_key: str = Field(max_length=64, description="b64u X25519 public key of the authenticator.")
    aead: Literal["chacha20poly1305", "aes256gcm"] = Field(
        default="chacha20poly1305",
        description="HPKE AEAD of this authenticator's captchas; `aes256gcm` for WebCrypto (browser) authenticators.",
    )


class EnrollEmailIn(_In):
    email: str = Field(max_length=254)


class EnrollmentCodeIn(_In):
    email: str = Field(max_length=254, description="The address the code enrols (case-insensitive).")


class EnrollmentCodeOut(BaseModel):
    email: str = Field(description="The address, normalised (trimmed, lower-cased).")
    code: str = Field(description="The one-time enrolment code. Shown once: hand it to the user now.")
    expires_at: datetime = Field(description="When the code stops working (UTC).")


class CaptchaIn(_In):
    email: str = Field(max_length=254)
    client_id: str = Field(max_length=40)
    origin: str | None = Field(default=None, max_length=300)
    app_hash: str | None = Field(default=None, max_length=128)
    code_challenge: str = Field(max_length=43, description="RFC 7636 S256 challenge.")
    device: str | None = Field(
        default=None,
        max_length=200,
        description="The `device` token an earlier sign-in as this e-mail returned: exempts from the per-account "
        "limit on wrong answers (docs/regulation.md).",
    )


class CaptchaOut(BaseModel):
    captcha_id: str
    captcha: str = Field(
        description="The HPKE-sealed payload `TWC1.<id>.<data>` or `TWC2.<aead>.<id>.<data>`, also the QR text."
    )
    qr_svg: str
    expires_at: int


class VerifyIn(_In):
    captcha_id: str = Field(max_length=43)
    code: str = Field(max_length=16)
    code_verifier: str = Field(max_length=128)
    session_key: str = Field(max_length=64, description="b64u X25519 public key of this session.")
    scopes: list[str] = Field(default_factory=list, max_length=32)
    device: str | None = Field(
        default=None,
        max_length=200,
        description="The `device` token an earlier sign-in as this e-mail returned: exempts from the per-account "
        "limit on wrong answers (docs/regulation.md).",
    )


class SessionOut(BaseModel):
    source_identifier: str
    subject: str
    client_id: str
    scopes: list[str]
    expires_at: int
    device: str | None = Field(
        default=None,
        description="After a captcha sign-in: keep it and send it as `device` with later captcha requests and "
        "answers for this e-mail (docs/regulation.md).",
    )


class ClientTokenIn(_In):
    destination: str = Field(max_length=320)


class ResourceChallengeIn(_In):
    resource: str = Field(max_length=253)
    client_id: str = Field(max_length=40)


class ResourceLoginIn(_In):
    challenge_id: str = Field(max_length=43)
    challenge: str = Field(max_length=64)
    signature: str = Field(max_length=100)
    session_key: str = Field(max_length=64)


def _session_out(issued: Any) -> SessionOut:
    i = issued.identity
    return SessionOut(
        source_identifier=issued.source_identifier,
        subject=i.subject,
        client_id=i.client_id,
        scopes=list(i.scopes),
        expires_at=i.expires_at,
    )


@router.post("/api/enroll", summary="Bind an authenticator key to an e-mail address with a one-time code")
async def enroll(body: EnrollIn, service: Service, request: Request) -> dict[str, str]:
    enrollment = await service.enroll(
        email=body.email,
        code=body.code,
        public_key=body.public_key,
        now=time.time(),
        client_ip=request_client_ip(request),
        aead=body.aead,
    )
    return {"email": enrollment.email, "status": "enrolled", "fingerprint": key_fingerprint(enrollment.public_key)}


@router.post(
    "/api/enroll/email",
    status_code=202,
    summary="E-mail a one-time enrolment code (same answer whether or not the address may enrol)",
)
async def enroll_by_email(body: EnrollEmailIn, service: Service, request: Request) -> dict[str, str]:
    await service.email_enrollment_code(body.email, now=time.time(), client_ip=request_client_ip(request))
    return {"status": "accepted", "detail": "if this address may enrol, an enrolment code is on its way"}


async def enrollment_admin(request: Request) -> Caller:
    """The caller, if it holds ``tokenward:manage`` and the policy makes it an admin of this server.

    The same rule as the admin policy API (docs/policies.md): 401 without a credential, 403
    ``scope_missing`` without the management scope, 403 ``not_admin`` without the policy's
    ``p, <subject>, <server>, TOKENWARD, admin`` row.
    """
    return await admin(request, await manager(request))


@router.post(
    "/api/enroll/codes",
    status_code=201,
    summary="Admin: issue a one-time enrolment code for an e-mail address (like `tokenward user enroll`)",
)
async def issue_enrollment_code(
    body: EnrollmentCodeIn,
    service: Service,
    request: Request,
    response: Response,
    caller: Annotated[Caller, Depends(enrollment_admin)],
) -> EnrollmentCodeOut:
    """``201`` with the code, which is shown once: it is stored only as a hash and never logged.

    The enrolment made with it records ``admin-code``; the audit event ``enrollment.code_issued``
    names the calling admin as its actor.
    """
    if request.query_params:
        name = next(iter(request.query_params))
        raise BadRequest(
            f"unknown parameter {name[:40]!r}; this endpoint takes none (send a JSON body)",
            code=ErrorCode.UNKNOWN_PARAMETER,
        )
    email = normalize_email(body.email)
    now = time.time()
    code = await service.issue_enrollment_code(email, now=now, actor=caller.subject, method="admin-code")
    response.headers["Cache-Control"] = "no-store"
    # Never later than the stored expiry (now + TTL): whole seconds, rounded down.
    expires_at = datetime.fromtimestamp(int(now + ENROLLMENT_CODE_TTL), UTC)
    return EnrollmentCodeOut(email=email, code=code, expires_at=expires_at)


@router.post("/api/captcha", summary="Request an encrypted captcha for a login")
async def request_captcha(body: CaptchaIn, service: Service, request: Request) -> CaptchaOut:
    issued = await service.request_captcha(
        email=body.email,
        client_id=body.client_id,
        origin=body.origin,
        app_hash=body.app_hash,
        code_challenge=body.code_challenge,
        now=time.time(),
        client_ip=request_client_ip(request),
        device=body.device,
    )
    svg = segno.make(issued.payload, error="m").svg_inline(scale=4)
    return CaptchaOut(captcha_id=issued.captcha_id, captcha=issued.payload, qr_svg=svg, expires_at=issued.expires_at)


@router.get(
    "/api/captcha/qr.png",
    summary="Render a captcha payload as a PNG QR code",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The QR code."}},
)
async def captcha_png(captcha: Annotated[str, Query(max_length=1024, pattern=r"^TWC[12]\.")]) -> Response:
    buffer = io.BytesIO()
    segno.make(captcha, error="m").save(buffer, kind="png", scale=6)
    return Response(buffer.getvalue(), media_type="image/png")


@router.post("/api/captcha/verify", summary="Answer a captcha; returns a source identifier")
async def verify_captcha(body: VerifyIn, service: Service, request: Request) -> SessionOut:
    issued = await service.verify_captcha(
        captcha_id=body.captcha_id,
        code=body.code,
        code_verifier=body.code_verifier,
        session_key=body.session_key,
        scopes=body.scopes,
        now=time.time(),
        client_ip=request_client_ip(request),
        device=body.device,
    )
    out = _session_out(issued)
    out.device = service.device_token(issued.identity.subject, now=time.time())
    return out


@router.get("/api/scopes", summary="Scopes a user may pick for a client app (LOGIN AS)")
async def scopes(
    service: Service,
    email: Annotated[str, Query(max_length=254)],
    client_id: Annotated[str, Query(max_length=40)],
    app_hash: Annotated[str, Query(max_length=128)],
) -> dict[str, list[str]]:
    return {"scopes": service.scopes_for(email=email, client_id=client_id, app_hash=app_hash)}


@router.post("/api/client-token", summary="A signed client token for talking to a destination")
async def client_token(body: ClientTokenIn, session: Session, service: Service) -> dict[str, str]:
    return {"client_token": await service.client_token(session, body.destination, now=time.time())}


@router.get("/api/poke", summary="What a peer may know about a subject")
async def poke(session: Session, service: Service, subject: Annotated[str, Query(max_length=320)]) -> dict[str, object]:
    return await service.poke(session, subject, now=time.time())


@router.delete("/api/session", status_code=204, summary="End this session (every instance refuses it at once)")
async def logout(session: Session, service: Service) -> Response:
    await service.logout(session, now=time.time())
    return Response(status_code=204)


@router.post("/api/resource/challenge", summary="A challenge for resource machine login")
async def resource_challenge(body: ResourceChallengeIn, service: Service) -> dict[str, object]:
    cid, challenge, expires = await service.resource_challenge(
        resource=body.resource, client_id=body.client_id, now=time.time()
    )
    return {"challenge_id": cid, "challenge": challenge, "expires_at": expires}


@router.post("/api/resource/login", summary="Resource machine login with an Ed25519 signature")
async def resource_login(body: ResourceLoginIn, service: Service) -> SessionOut:
    issued = await service.resource_login(
        challenge_id=body.challenge_id,
        challenge=body.challenge,
        signature=body.signature,
        session_key=body.session_key,
        now=time.time(),
    )
    return _session_out(issued)


@router.get("/.well-known/jwks.json", summary="Public keys that sign client tokens")
async def well_known_jwks(request: Request) -> dict[str, Any]:
    return jwks(get_runtime(request).keyring, now=time.time())
