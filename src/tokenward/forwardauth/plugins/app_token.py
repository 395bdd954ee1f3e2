"""``app_token``: HTTP Basic ``user:twa_…`` (or ``Bearer twa_…``) checked by :class:`AppTokenService`.

The service's warm path is one keyed hash (~2 µs), so no credential cache is needed here. Nor is the
successful outcome kept: it is built per request (~1 µs) and dies young. A cache of outcomes beside the
service's 100,000 records either churned (every outcome built survived long enough to reach the oldest
generation, so full garbage collections ran every second or so, 100+ ms each) or held 100,000 tracked
objects that every full collection walks.
"""

from __future__ import annotations

from tokenward.apptokens import AppTokenService
from tokenward.errorcodes import ErrorCode
from tokenward.errors import TokenwardError, Unauthorized
from tokenward.forwardauth.plugins.base import Outcome, Plugin, UserInfo, VerifyRequest
from tokenward.forwardauth.plugins.basic import basic_challenge, basic_credentials, bearer_token
from tokenward.forwardauth.schema import AppTokenPlugin

__all__ = ["AppTokenAuth"]


class AppTokenAuth(Plugin[AppTokenPlugin]):
    def __init__(self, config: AppTokenPlugin, service: AppTokenService | None) -> None:
        super().__init__(config)
        self.service = service
        self.challenge = basic_challenge(config.realm)

    async def verify(self, request: VerifyRequest) -> Outcome:
        creds = basic_credentials(request.headers)
        if isinstance(creds, Unauthorized):
            return Outcome.failure(creds.error_code, creds.detail, challenge=self.challenge)
        if creds is None:
            token = bearer_token(request.headers)
            if token is None or not token.startswith("twa_"):
                return Outcome.failure(ErrorCode.CREDENTIALS_MISSING, "no app token given", challenge=self.challenge)
            user: str | None = None
        else:
            user, token = creds
        if self.service is None:
            return Outcome.failure(ErrorCode.APP_TOKENS_UNAVAILABLE, "app tokens are not available", status=503)
        try:
            verified = await self.service.verify(
                user, token, client_ip=request.client_ip, request_id=request.request_id
            )
        except TokenwardError as exc:
            if exc.status == 401:
                return Outcome.failure(exc.error_code, exc.detail, challenge=self.challenge)
            return Outcome.refused(exc)
        scopes = self.config.scopes
        if scopes:
            missing = [s for s in scopes if s not in verified.scopes]
            if missing:
                return Outcome.failure(ErrorCode.SCOPE_MISSING, f"the app token lacks scope {missing[0]}", status=403)
        owner = verified.owner
        return Outcome(
            ok=True, user=UserInfo(sub=owner, email=owner if "@" in owner else "", claims={"token_id": verified.id})
        )
