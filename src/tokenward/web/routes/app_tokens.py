"""App token management: the oCIS-compatible ``/auth-app/tokens`` and the REST ``/api/app-tokens``.

Both authenticate through the authenticator chain (:mod:`tokenward.web.auth`) and need the
``tokenward:manage`` scope. Acting for another user (oCIS ``userID``/``userName``, REST
``user``) is impersonation: enabled by setting, admins only, audited. Unknown or wrongly cased
query parameters (``userId``) are refused with 400 ``unknown_parameter`` rather than ignored.

The lists (``GET /api/app-tokens``, ``GET /auth-app/tokens``) are hot: scripts poll them. Their records and
the caller's token come from the service's memory, and the app's hot path
(:class:`~tokenward.web.middleware.HotPath`, as for ``/verify``) answers them ahead of FastAPI's routing,
dependencies and response validation, which cost several times the rest of the request (bench/verify.py
--list-api, docs/app-tokens.md). :class:`HotList` keeps what those gave: the same parameter checks in the same
order, the same authenticator chain and scope, the same JSON (plain dicts through pydantic's serializer, checked
against the response models by the tests) and the same error bodies. The FastAPI routes stay for the OpenAPI
document and for callers that reach them through the router.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

import pydantic_core
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse
from starlette.types import Scope

from tokenward.apptokens import PREFIX, AppTokenService, Caller, parse_duration
from tokenward.apptokens.access import check_scopes, resolve_target
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, StorageUnavailable, TokenwardError, error_body
from tokenward.runtime import Runtime
from tokenward.storage import AppTokenRecord
from tokenward.web import middleware
from tokenward.web.auth import Authenticator, authenticate, current_request_id, require_scope
from tokenward.web.deps import chain_of, manager
from tokenward.web.errors import EXCEPTION_HANDLERS
from tokenward.web.state import AppState, get_app_tokens

__all__ = ["HotList", "hot_paths", "router"]


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


def _out_item(record: AppTokenRecord) -> dict[str, Any]:
    """:class:`AppTokenOut`'s fields as a plain dict, in its order (tests/web compare the two renderings)."""
    return {
        "id": record.id,
        "prefix": PREFIX + record.id,
        "owner": record.owner,
        "label": record.label,
        "scopes": record.scopes,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "last_used_at": record.last_used_at,
        "created_by": record.created_by,
    }


def _ocis_item(record: AppTokenRecord) -> dict[str, Any]:
    """:class:`OcisToken`'s fields of a listed token as a plain dict, in its order."""
    return {
        "token": PREFIX + record.id,
        "expiration_date": record.expires_at,
        "created_date": record.created_at,
        "label": record.label,
        "id": record.id,
    }


def render_list(item: Callable[[AppTokenRecord], dict[str, Any]], records: Iterable[AppTokenRecord]) -> bytes:
    """The list as JSON, byte for byte what ``response_model`` would send, at a third of the cost of building the
    models (``model_construct``) and dumping them: pydantic's serializer renders dicts, datetimes and tuples alike."""
    return pydantic_core.to_json([item(r) for r in records])


# -- dependencies -------------------------------------------------------------------------


async def service(request: Request) -> AppTokenService:
    """The app token service (``async``: FastAPI runs a plain ``def`` dependency in its thread pool)."""
    return get_app_tokens(request)


def check_parameters(names: Sequence[str], allowed: Sequence[str]) -> None:
    """Refuse query parameter ``names`` (in the order sent) outside ``allowed`` (case matters) or given twice."""
    for name in dict.fromkeys(names):
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
            close = close or [a for a in allowed if a.lower() == name.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(allowed) or "none"
            raise BadRequest(
                f"unknown parameter {name[:40]!r}{hint}; this endpoint takes: {known}",
                code=ErrorCode.UNKNOWN_PARAMETER,
            )
        if names.count(name) > 1:
            raise BadRequest(f"parameter {name!r} is given more than once", code=ErrorCode.DUPLICATE_PARAMETER)


def _only(*allowed: str) -> object:
    """A dependency refusing query parameters outside ``allowed`` (case matters) or given twice."""

    async def check(request: Request) -> None:  # async: a plain def would cost a thread-pool hop per request
        check_parameters([name for name, _ in request.query_params.multi_items()], allowed)

    return Depends(check)


Svc = Annotated[AppTokenService, Depends(service)]
Manager = Annotated[Caller, Depends(manager)]


async def _target(
    svc: AppTokenService, caller: Caller, user_id: str | None, user_name: str | None, act: str
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
    owner, impersonated = await _target(svc, caller, user_id, user_name, "create")
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
    owner, _ = await _target(svc, caller, user_id, user_name, "list")
    return Response(render_list(_ocis_item, await svc.list(owner)), media_type="application/json")


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
    owner, impersonated = await _target(svc, caller, user_id, user_name, "delete")
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
    owner, impersonated = await _target(svc, caller, None, body.user, "create")
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
    owner, _ = await _target(svc, caller, None, user, "list")
    return Response(render_list(_out_item, await svc.list(owner)), media_type="application/json")


@router.get(
    "/api/app-tokens/{token_id}",
    response_model=AppTokenOut,
    tags=["app tokens"],
    dependencies=[_only("user")],  # type: ignore[list-item]
)
async def get_token(request: Request, token_id: str, svc: Svc, caller: Manager, user: User = None) -> AppTokenOut:
    """One token; 404 ``apptoken_not_found`` when it does not exist or is not yours."""
    owner, _ = await _target(svc, caller, None, user, "get")
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
    owner, impersonated = await _target(svc, caller, None, user, "delete")
    await svc.revoke(
        token_id,
        owner=owner,
        actor=caller.subject,
        impersonated=impersonated,
        request_id=current_request_id(),
    )
    return Response(status_code=204)


# -- the hot lists ------------------------------------------------------------------------

#: The query parameters each hot list takes, as in its route's ``_only`` (the ones naming a user to act for).
_LIST_PARAMETERS = {"/api/app-tokens": ("user",), "/auth-app/tokens": ("userID", "userName")}
_MAX_USER = 254  # the routes' Query(max_length=254)
_JSON = (b"content-type", b"application/json")


class HotList:
    """``GET /api/app-tokens`` or ``GET /auth-app/tokens`` as a hot endpoint (a ``middleware.HotEndpoint``).

    The same answer as the FastAPI route of that path, checked in the same order: unknown or repeated query
    parameters (400), the caller (401/429 by the authenticator chain, 403 ``scope_missing``), a too-long user
    parameter (422 ``invalid_request`` listing it, FastAPI's shape), the target (impersonation: 403/404/400,
    audited), then the list. The chain is built once per runtime, not per request.
    """

    def __init__(self, state: AppState, path: str) -> None:
        self.state = state
        self.parameters = _LIST_PARAMETERS[path]
        self.item = _out_item if path == "/api/app-tokens" else _ocis_item
        self._chain: tuple[Runtime, tuple[Authenticator, ...]] | None = None

    def _runtime_chain(self) -> tuple[Runtime, tuple[Authenticator, ...]]:
        runtime = self.state.runtime
        if runtime is None:
            raise StorageUnavailable(
                "the server is still starting or lost its configuration; retry shortly", code=ErrorCode.NOT_READY
            )
        held = self._chain
        if held is None or held[0] is not runtime:
            held = self._chain = (runtime, chain_of(runtime))
        return held

    async def __call__(self, scope: Scope, headers: dict[str, str]) -> middleware.Response:
        try:
            query: bytes = scope["query_string"]
            given: Mapping[str, str] = {}
            if query:
                pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                check_parameters([name for name, _ in pairs], self.parameters)
                given = dict(pairs)
            runtime, chain = self._runtime_chain()
            client = scope.get("client")
            caller = require_scope(await authenticate(headers, client[0] if client else None, chain))
            too_long = [name for name in self.parameters if len(given.get(name, "")) > _MAX_USER]
            if too_long:
                return _invalid(too_long)
            if self.parameters == ("user",):
                user_id, user_name = None, given.get("user")
            else:
                user_id, user_name = given.get("userID"), given.get("userName")
            svc = runtime.app_tokens
            owner, _ = await _target(svc, caller, user_id, user_name, "list")
            body = render_list(self.item, await svc.list(owner))
        except TokenwardError as exc:
            return await _api_error(scope, exc)
        response_headers = [_JSON]
        if "x-request-id" not in headers:
            # Every API response names its request id; the hot path itself adds it to refusals and echoes a given one.
            response_headers.append((b"x-request-id", (current_request_id() or "").encode("ascii")))
        return 200, response_headers, body


async def _api_error(scope: Scope, exc: TokenwardError) -> middleware.Response:
    """``exc`` rendered by the API's own handler (web/errors.py): the same JSON, the same headers, the same log
    line for a 5xx, and the HTML page a browser gets on a path outside ``/api/``."""
    return _whole(await EXCEPTION_HANDLERS[TokenwardError](Request(scope), exc))


def _invalid(names: Sequence[str]) -> middleware.Response:
    """FastAPI's 422 for a user parameter over its ``max_length``, as web/errors.py renders it."""
    message = f"String should have at most {_MAX_USER} characters"
    fields = [{"field": name, "message": message} for name in names]
    body = error_body(ErrorCode.INVALID_REQUEST, f"{names[0]}: {message}", fields=fields)
    return _whole(JSONResponse(body, status_code=422))


def _whole(response: Response) -> middleware.Response:
    """A rendered Starlette response as the hot path sends it (which adds content-length itself)."""
    return response.status_code, [h for h in response.raw_headers if h[0] != b"content-length"], bytes(response.body)


def hot_paths(state: AppState, log_: middleware.RequestLog) -> tuple[middleware.HotPath, ...]:
    """The hot paths of the two lists, over this module's GET routes of those paths (the app mounts them)."""
    paths = []
    for path in _LIST_PARAMETERS:
        routes = [r for r in router.routes if isinstance(r, APIRoute) and r.path == path and "GET" in (r.methods or ())]
        paths.append(middleware.HotPath(log=log_, routes=routes, prefix=path, endpoint=HotList(state, path)))
    return tuple(paths)
