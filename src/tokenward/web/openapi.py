"""The OpenAPI document at ``/openapi.json``, made to say what the API really answers.

FastAPI's generated document describes a 422 body (``{"detail": [...]}``) that tokenward never
sends, and none of the other errors. :func:`build_openapi` takes FastAPI's document and

- describes every error as tokenward sends it: ``{"error": code, "detail": sentence, ...}``
  (the ``Error`` schema; a 422 adds ``fields``, one entry per problem);
- declares, for each operation, the error statuses it can answer (:data:`OPERATION_ERRORS`),
  plus those every operation shares: 413 when it takes a body (the body limit), 422 when it takes
  parameters or a body, 503 (the database or another service is down, or the instance is not
  ready). A 405 is not per operation: it carries ``Allow`` (RFC 9110 §15.5.6).

``tests/web/test_schemathesis.py`` drives the API from this document and fails on any answer
the document does not describe, so a route that learns a new status must be listed here (a new
route in a known area inherits the area's statuses, :data:`AREA_ERRORS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["AREA_ERRORS", "ERROR_SCHEMA", "OPERATION_ERRORS", "build_openapi", "operation_errors"]

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every error answer. Other members may join (e.g. `rule` for a policy refusal).",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "Stable machine-readable code, e.g. `apptoken_not_found`."},
        "detail": {"type": "string", "description": "One sentence a person can act on."},
        "fields": {
            "type": "array",
            "description": "422 only: each part of the request that does not match this document.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

_DESCRIPTIONS: Mapping[int, str] = {
    400: "Bad request: a value is malformed or refused (the code says which), or an unknown or repeated parameter.",
    401: "No credential, or one that does not verify (`WWW-Authenticate` says which scheme).",
    403: "The credential is good but the policy or its scopes do not allow this.",
    404: "Nothing of that name, or not yours.",
    409: "In conflict with the current state (already used, already exists, a limit reached).",
    413: "The body is larger than `TOKENWARD_MAX_BODY_BYTES`.",
    422: "The request does not match this document (code `invalid_request`; `fields` lists each problem).",
    429: "Too many attempts: refused for a while (`Retry-After` in seconds when known).",
    503: "A service tokenward needs (database, SMTP, ...) is down or not configured, or this instance is not ready.",
}

_MANAGE = (400, 401, 403, 429)  # an app token (or session) with tokenward:manage; regulation on failures
_SESSION = (400, 401, 403, 404, 429)  # a source identifier (Bearer or the portal's cookie)
_LOGIN = (400, 401, 403, 404, 409, 429)  # captcha and machine-login flows

#: Error statuses per operation, beside the shared 413/422/503 (see the module docstring).
OPERATION_ERRORS: Mapping[tuple[str, str], tuple[int, ...]] = {
    ("post", "/auth-app/tokens"): (*_MANAGE, 404, 409),
    ("get", "/auth-app/tokens"): (*_MANAGE, 404),
    ("delete", "/auth-app/tokens"): (*_MANAGE, 404),
    ("post", "/api/app-tokens"): (*_MANAGE, 404, 409),
    ("get", "/api/app-tokens"): (*_MANAGE, 404),
    ("get", "/api/app-tokens/{token_id}"): (*_MANAGE, 404),
    ("delete", "/api/app-tokens/{token_id}"): (*_MANAGE, 404),
    ("get", "/api/policy"): _MANAGE,
    ("post", "/api/policy/check"): _MANAGE,
    ("get", "/api/policy/lint"): _MANAGE,
    ("post", "/api/enroll"): _LOGIN,
    ("post", "/api/enroll/email"): (400, 429),
    ("post", "/api/enroll/codes"): (*_MANAGE, 409),
    ("post", "/api/captcha"): _LOGIN,
    ("get", "/api/captcha/qr.png"): (400,),
    ("post", "/api/captcha/verify"): _LOGIN,
    ("get", "/api/scopes"): (400, 403, 404),
    ("post", "/api/client-token"): _SESSION,
    ("get", "/api/poke"): _SESSION,
    ("delete", "/api/session"): _SESSION,
    ("post", "/api/resource/challenge"): _LOGIN,
    ("post", "/api/resource/login"): _LOGIN,
    ("get", "/.well-known/jwks.json"): (),
    ("post", "/api/system-login/captcha"): _LOGIN,
    ("post", "/api/system-login/user-captcha"): _LOGIN,
    ("post", "/api/system-login/verify"): _LOGIN,
    ("post", "/api/policy/diff"): _MANAGE,
    ("get", "/api/policy/decisions"): (*_MANAGE, 404),
}

#: Operations not listed above take the errors of the area they belong to (longest prefix first).
AREA_ERRORS: Mapping[str, tuple[int, ...]] = {
    "/api/policy": (*_MANAGE, 404),
    "/api/app-tokens": (*_MANAGE, 404, 409),
    "/auth-app/": (*_MANAGE, 404, 409),
    "/api/enroll": _LOGIN,
    "/api/system-login/": _LOGIN,
    "/api/resource/": _LOGIN,
    "/api/captcha": _LOGIN,
}


def operation_errors(method: str, path: str) -> tuple[int, ...] | None:
    """Error statuses an operation declares beside the shared ones; None if neither listed nor in an area."""
    listed = OPERATION_ERRORS.get((method, path))
    if listed is not None:
        return listed
    for prefix in sorted(AREA_ERRORS, key=len, reverse=True):
        if path.startswith(prefix):
            return AREA_ERRORS[prefix]
    return None


_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _error_response(status: int) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS[status], "content": {"application/json": {"schema": _ERROR_REF}}}


def _fix_operation(method: str, path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = set(operation_errors(method, path) or ())
    statuses.add(503)
    if "requestBody" in operation:
        statuses.update((413, 422))
    if operation.get("parameters"):
        statuses.add(422)
    responses.pop("422", None)  # FastAPI's HTTPValidationError: not what we send
    for status in sorted(statuses):
        responses[str(status)] = _error_response(status)
    operation["responses"] = dict(sorted(responses.items()))


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document, built once per app (FastAPI's, with the errors described as they are sent)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if isinstance(operation, dict) and method in ("get", "put", "post", "delete", "patch"):
                _fix_operation(method, path, operation)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    app.openapi_schema = document
    return document
