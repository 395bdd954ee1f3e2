"""``app_token``: HTTP Basic ``user:twa_…`` (or ``Bearer twa_…``) checked by :class:`AppTokenService`.

The service's warm path is one keyed hash (~2 µs), so no credential cache is needed here; the
successful outcome is kept per record object, so a warm request builds no user info.
"""

from __future__ import annotations

from tokenward.apptokens import AppTokenService
from tokenward.errorcodes import ErrorCode
from tokenward.errors import TokenwardError, Unauthorized
from tokenward.forwardauth.plugins.base import Outcome, Plugin, UserInfo, VerifyRequest
from tokenward.forwardauth.plugins.basic import basic_challenge, basic_credentials, bearer_token
from tokenward.forwardauth.schema import AppTokenPlugin
from tokenward.storage.apptokens import AppTokenRecord

__all__ = ["AppTokenAuth"]

MAX_CACHED_OUTCOMES = 10_000


class AppTokenAuth(Plugin[AppTokenPlugin]):
    def __init__(self, config: AppTokenPlugin, service: AppTokenService | None) -> None:
        super().__init__(config)
        self.service = service
        self.challenge = basic_challenge(config.realm)
        self._outcomes: dict[str, tuple[AppTokenRecord, Outcome]] = {}

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
            record = await self.service.verify(user, token, client_ip=request.client_ip, request_id=request.request_id)
        except TokenwardError as exc:
            if exc.status == 401:
                return Outcome.failure(exc.error_code, exc.detail, challenge=self.challenge)
            return Outcome.refused(exc)
        cached = self._outcomes.get(record.id)
        if cached is not None and cached[0] is record:  # the service hands out one object until it re-reads
            return cached[1]
        missing = [s for s in self.config.scopes if s not in record.scopes]
        if missing:
            return Outcome.failure(ErrorCode.SCOPE_MISSING, f"the app token lacks scope {missing[0]}", status=403)
        email = record.owner if "@" in record.owner else ""
        outcome = Outcome.success(UserInfo(sub=record.owner, email=email, claims={"token_id": record.id}))
        if len(self._outcomes) >= MAX_CACHED_OUTCOMES:
            self._outcomes.clear()
        self._outcomes[record.id] = (record, outcome)
        return outcome
