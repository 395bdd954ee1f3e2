"""``forward``: ask another HTTP service; a 2xx answer is success, 3xx a redirect, anything else a failure.

The service's ``Remote-User``/``-Email``/``-Groups``/``-Name`` answer headers become the user.
Timeouts are bounded by the token (≤ 30 s); an unreachable service is a 503, never a hang.
"""

from __future__ import annotations

import httpx

from tokenward.errorcodes import ErrorCode
from tokenward.forwardauth.plugins.base import Outcome, Plugin, UserInfo, VerifyRequest
from tokenward.forwardauth.schema import ForwardPlugin

__all__ = ["ForwardAuth"]


class ForwardAuth(Plugin[ForwardPlugin]):
    def __init__(self, config: ForwardPlugin, http: httpx.AsyncClient) -> None:
        super().__init__(config)
        self.http = http
        self.forward = [h.lower() for h in config.forward_headers]

    async def verify(self, request: VerifyRequest) -> Outcome:
        headers = {name: request.headers[name] for name in self.forward if name in request.headers}
        info = request.info
        headers.update(
            {
                "X-Forwarded-Method": info.method,
                "X-Forwarded-Proto": info.scheme,
                "X-Forwarded-Host": info.host if info.port in (80, 443) else f"{info.host}:{info.port}",
                "X-Forwarded-Uri": info.path + (f"?{info.query}" if info.query else ""),
            }
        )
        try:
            response = await self.http.request(
                self.config.method,
                self.config.url,
                headers=headers,
                timeout=self.config.timeout_seconds,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            return Outcome.failure(
                ErrorCode.FORWARD_UNAVAILABLE, f"the forward service failed ({type(exc).__name__})", status=503
            )
        if 200 <= response.status_code < 300:
            h = response.headers
            groups = tuple(g.strip() for g in h.get("remote-groups", "").split(",") if g.strip())
            user = UserInfo(
                sub=h.get("remote-user", ""),
                email=h.get("remote-email", ""),
                groups=groups,
                name=h.get("remote-name", ""),
            )
            return Outcome.success(user)
        if 300 <= response.status_code < 400 and "location" in response.headers:
            return Outcome(
                ok=False, code=ErrorCode.REDIRECT, detail="redirected", location=response.headers["location"]
            )
        status = response.status_code if response.status_code in (401, 403) else 401
        return Outcome.failure(
            ErrorCode.FORWARD_REFUSED,
            f"the forward service answered {response.status_code}",
            challenge=response.headers.get("www-authenticate"),
            status=status,
        )
