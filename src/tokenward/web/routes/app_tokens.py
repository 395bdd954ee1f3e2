"""App token management: the oCIS-compatible ``/auth-app/tokens`` and the REST ``/api/app-tokens``.

Both authenticate through the authenticator chain (:mod:`tokenward.web.auth`) and need the
``tokenward:manage`` scope. Acting for another user (oCIS ``userID``/``userName``, REST
``user``) is impersonation: enabled by setting, admins only, audited. Unknown or wrongly cased
query parameters (``userId``) are refused with 400 ``unknown_parameter`` rather than ignored.

The lists are hot (scripts poll them): their records come from the service's memory, and their handlers
render the JSON themselves with one pydantic serializer call (``response_model`` still documents them) and take
the service from the request rather than as a dependency: FastAPI's response validation and each dependency
cost more than the rest of the request (bench/verify.py --list-api, docs/app-tokens.md).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from tokenward.apptokens import PREFIX, AppTokenService, Caller, parse_duration
from tokenward.apptokens.access import check_scopes, resolve_target
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.storage import AppTokenRecord
from tokenward.web.auth import (
    current_request_id,
)
from tokenward.web.deps import manager
from tokenward.web.state import get_app_tokens

__all__ = ["router"]

router = APIRouter()

OCIS_LABEL = "Generated via API"
OCIS_IMPERSONATION_LABEL = "Generated via Impersonation API"


# -- models -------------------------------------------------------------------------------


class AppTokenOut(BaseModel):
    """An app token as listed: never the secret, never its hash."""

    id: str
    prefix: str = Field(description="Public start of the token, `twa_<id>`, to recognise it.")
    owner: str
    label: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    created_by: str = Field(description="Who created it; differs from owner when an admin impersonated.")


class AppTokenCreated(AppTokenOut):
    token: str = Field(description="The token itself. Shown once: store it now.")


class AppTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(default="", max_length=200)
    expires_in: str | None = Field(default=None, description="Lifetime like 72h, 30m, 1h30m, 7d; default 72h.")
    scopes: list[str] = Field(default_factory=list, max_length=32)
    user: str | None = Field(default=None, description="Create for this user (impersonation; admins only).")


class OcisToken(BaseModel):
    """The oCIS auth-app token shape. ``token`` is the full token on create, ``twa_<id>`` in lists."""

    token: str
    expiration_date: datetime
    created_date: datetime
    label: str
    id: str


def _out(record: AppTokenRecord) -> AppTokenOut:
    # model_construct: the values come from a stored record, already valid; validating them again is waste.
    return AppTokenOut.model_construct(
        id=record.id,
        prefix=PREFIX + record.id,
        owner=record.owner,
        label=record.label,
        scopes=list(record.scopes),
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
        created_by=record.created_by,
    )


def _ocis(record: AppTokenRecord, token: str | None = None) -> OcisToken:
    return OcisToken.model_construct(
        token=token or PREFIX + record.id,
        expiration_date=record.expires_at,
        created_date=record.created_at,
        label=record.label,
        id=record.id,
    )


_LIST_OUT = TypeAdapter(list[AppTokenOut])
_LIST_OCIS = TypeAdapter(list[OcisToken])


def _json_list(
    adapter: TypeAdapter[list[AppTokenOut]] | TypeAdapter[list[OcisToken]], items: Iterable[object]
) -> Response:
    """The list as JSON, exactly as ``response_model`` would render it, without validating it again."""
    return Response(adapter.dump_json(list(items)), media_type="application/json")  # type: ignore[arg-type]


# -- dependencies -------------------------------------------------------------------------


async def service(request: Request) -> AppTokenService:
    """The app token service (``async``: FastAPI runs a plain ``def`` dependency in its thread pool)."""
    return get_app_tokens(request)


def _only(*allowed: str) -> object:
    """A dependency refusing query parameters outside ``allowed`` (case matters) or given twice."""

    async def check(request: Request) -> None:  # async: a plain def would cost a thread-pool hop per request
        for name in request.query_params:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
                close = close or [a for a in allowed if a.lower() == name.lower()]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(allowed) or "none"
                raise BadRequest(
                    f"unknown parameter {name[:40]!r}{hint}; this endpoint takes: {known}",
                    code=ErrorCode.UNKNOWN_PARAMETER,
                )
            if len(request.query_params.getlist(name)) > 1:
                raise BadRequest(f"parameter {name!r} is given more than once", code=ErrorCode.DUPLICATE_PARAMETER)

    return Depends(check)


Svc = Annotated[AppTokenService, Depends(service)]
Manager = Annotated[Caller, Depends(manager)]


async def _target(
    svc: AppTokenService, caller: Caller, user_id: str | None, user_name: str | None, act: str, request: Request
) -> tuple[str, bool]:
    target = resolve_target(
        caller,
        user_id=user_id,
        user_name=user_name,
        impersonation=svc.config.impersonation,
        is_admin=svc.is_admin,
        directory=svc.directory,
    )
    impersonated = target.lower() != caller.subject.lower()
    if impersonated and act in ("list", "get"):
        await svc.record_impersonation(actor=caller.subject, target=target, act=act, request_id=current_request_id())
    return target, impersonated


# -- oCIS-compatible ----------------------------------------------------------------------

UserID = Annotated[str | None, Query(alias="userID", max_length=254, description="Impersonate this user (admins).")]
UserName = Annotated[str | None, Query(alias="userName", max_length=254, description="Impersonate this user (admins).")]


@router.post(
    "/auth-app/tokens",
    response_model=OcisToken,
    tags=["app tokens (oCIS)"],
    dependencies=[_only("expiry", "label", "userID", "userName")],  # type: ignore[list-item]
)
async def ocis_create(
    request: Request,
    svc: Svc,
    caller: Manager,
    expiry: Annotated[str | None, Query(max_length=64, description="72h, 30m, 1h30m, 45s, 7d, 2w")] = None,
    label: Annotated[str | None, Query(max_length=200)] = None,
    user_id: UserID = None,
    user_name: UserName = None,
) -> OcisToken:
    """Create a token (oCIS ``POST /auth-app/tokens?expiry=72h``); the response holds it once."""
    owner, impersonated = await _target(svc, caller, user_id, user_name, "create", request)
    default_label = OCIS_IMPERSONATION_LABEL if impersonated else OCIS_LABEL
    record, token = await svc.create(
        owner=owner,
        created_by=caller.subject,
        expiry=parse_duration(expiry) if expiry is not None else None,
        label=default_label if label is None else label,
        impersonated=impersonated,
        request_id=current_request_id(),
    )
    return _ocis(record, token)


@router.get(
    "/auth-app/tokens",
    response_model=list[OcisToken],
    tags=["app tokens (oCIS)"],
    dependencies=[_only("userID", "userName")],  # type: ignore[list-item]
)
async def ocis_list(request: Request, caller: Manager, user_id: UserID = None, user_name: UserName = None) -> Response:
    """List the caller's tokens (``token`` is the public ``twa_<id>`` prefix, never a hash)."""
    svc = get_app_tokens(request)
    owner, _ = await _target(svc, caller, user_id, user_name, "list", request)
    return _json_list(_LIST_OCIS, map(_ocis, await svc.list(owner)))


@router.delete(
    "/auth-app/tokens",
    status_code=200,
    response_class=Response,
    tags=["app tokens (oCIS)"],
    dependencies=[_only("token", "userID", "userName")],  # type: ignore[list-item]
)
async def ocis_delete(
    request: Request,
    svc: Svc,
    caller: Manager,
    token: Annotated[str, Query(max_length=256, description="The token, its twa_<id> prefix, or its id.")],
    user_id: UserID = None,
    user_name: UserName = None,
) -> Response:
    """Delete a token by the token itself, its ``twa_<id>`` prefix or its id."""
    owner, impersonated = await _target(svc, caller, user_id, user_name, "delete", request)
    await svc.revoke(
        svc.resolve_reference(token),
        owner=owner,
        actor=caller.subject,
        impersonated=impersonated,
        request_id=current_request_id(),
    )
    return Response(status_code=200)


# -- REST ---------------------------------------------------------------------------------

User = Annotated[str | None, Query(max_length=254, description="Act for this user (impersonation; admins only).")]


@router.post(
    "/api/app-tokens",
    status_code=201,
    response_model=AppTokenCreated,
    tags=["app tokens"],
    dependencies=[_only()],  # type: ignore[list-item]
)
async def create_token(
    request: Request, response: Response, body: AppTokenCreate, svc: Svc, caller: Manager
) -> AppTokenCreated:
    """Create an app token. ``201`` with ``Location``; the body holds the token once."""
    owner, impersonated = await _target(svc, caller, None, body.user, "create", request)
    scopes = tuple(body.scopes)
    check_scopes(caller, scopes, is_admin=svc.is_admin)
    record, token = await svc.create(
        owner=owner,
        created_by=caller.subject,
        expiry=parse_duration(body.expires_in) if body.expires_in is not None else None,
        label=body.label,
        scopes=scopes,
        impersonated=impersonated,
        request_id=current_request_id(),
    )
    response.headers["Location"] = f"/api/app-tokens/{record.id}"
    return AppTokenCreated(**_out(record).model_dump(), token=token)


@router.get(
    "/api/app-tokens",
    response_model=list[AppTokenOut],
    tags=["app tokens"],
    dependencies=[_only("user")],  # type: ignore[list-item]
)
async def list_tokens(request: Request, caller: Manager, user: User = None) -> Response:
    """The caller's (or, impersonating, ``user``'s) unrevoked tokens, oldest first."""
    svc = get_app_tokens(request)
    owner, _ = await _target(svc, caller, None, user, "list", request)
    return _json_list(_LIST_OUT, map(_out, await svc.list(owner)))


@router.get(
    "/api/app-tokens/{token_id}",
    response_model=AppTokenOut,
    tags=["app tokens"],
    dependencies=[_only("user")],  # type: ignore[list-item]
)
async def get_token(request: Request, token_id: str, svc: Svc, caller: Manager, user: User = None) -> AppTokenOut:
    """One token; 404 ``apptoken_not_found`` when it does not exist or is not yours."""
    owner, _ = await _target(svc, caller, None, user, "get", request)
    return _out(await svc.get(token_id, owner=owner))


@router.delete(
    "/api/app-tokens/{token_id}",
    status_code=204,
    response_class=Response,
    tags=["app tokens"],
    dependencies=[_only("user")],  # type: ignore[list-item]
)
async def delete_token(request: Request, token_id: str, svc: Svc, caller: Manager, user: User = None) -> Response:
    """Delete (revoke) a token: ``204``; ``404`` when it does not exist, is not yours or is already deleted."""
    owner, impersonated = await _target(svc, caller, None, user, "delete", request)
    await svc.revoke(
        token_id,
        owner=owner,
        actor=caller.subject,
        impersonated=impersonated,
        request_id=current_request_id(),
    )
    return Response(status_code=204)
