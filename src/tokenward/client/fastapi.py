"""FastAPI dependencies for the caller :class:`~tokenward.client.middleware.TokenwardMiddleware` verified.

@app.get("/reports")
async def reports(caller: VerifiedCaller) -> ...: ...

@app.delete("/reports/{id}", dependencies=[Depends(require_scopes("ADMIN"))])
async def delete(...): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from tokenward.client.middleware import CALLER_SCOPE_KEY
from tokenward.client.verifier import Caller
from tokenward.errorcodes import ErrorCode
from tokenward.errors import Forbidden, Unauthorized

__all__ = ["VerifiedCaller", "get_caller", "require_scopes"]


def get_caller(request: Request) -> Caller:
    """The verified caller; 401 ``client_token_missing`` on a route the middleware does not guard."""
    caller = request.scope.get(CALLER_SCOPE_KEY)
    if not isinstance(caller, Caller):
        raise Unauthorized(
            "this route needs a client token, but TokenwardMiddleware did not check one (exempt path?)",
            code=ErrorCode.CLIENT_TOKEN_MISSING,
        )
    return caller


VerifiedCaller = Annotated[Caller, Depends(get_caller)]


def require_scopes(*scopes: str) -> Callable[[Request], Caller]:
    """A dependency that refuses (403 ``scope_missing``) a caller without every one of ``scopes``."""
    needed = frozenset(scopes)

    def dependency(request: Request) -> Caller:
        caller = get_caller(request)
        if not needed <= caller.scopes:
            missing = ", ".join(sorted(needed - caller.scopes))
            raise Forbidden(f"this route needs the scope(s) {missing}", code=ErrorCode.SCOPE_MISSING)
        return caller

    return dependency
