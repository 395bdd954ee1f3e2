"""Plugins that need no secrets store: ``noop``, ``request_header``, ``request_param``."""

from __future__ import annotations

from tokenward.errorcodes import ErrorCode
from tokenward.forwardauth.assertions import check_rule
from tokenward.forwardauth.plugins.base import Outcome, Plugin, UserInfo, VerifyRequest
from tokenward.forwardauth.schema import NoopPlugin, RequestHeaderPlugin, RequestParamPlugin

__all__ = ["NoopAuth", "RequestHeaderAuth", "RequestParamAuth"]

_ANONYMOUS = Outcome.success(UserInfo())


class NoopAuth(Plugin[NoopPlugin]):
    async def verify(self, request: VerifyRequest) -> Outcome:
        return _ANONYMOUS


class RequestHeaderAuth(Plugin[RequestHeaderPlugin]):
    async def verify(self, request: VerifyRequest) -> Outcome:
        value = request.headers.get(self.config.header.lower())
        if check_rule(self.config.rule, [] if value is None else [value]):
            return _ANONYMOUS
        return Outcome.failure(
            ErrorCode.REQUEST_HEADER_REJECTED, f"the {self.config.header} header does not satisfy the rule"
        )


class RequestParamAuth(Plugin[RequestParamPlugin]):
    async def verify(self, request: VerifyRequest) -> Outcome:
        values = request.info.query_params.get(self.config.param, [])
        if check_rule(self.config.rule, values):
            return _ANONYMOUS
        return Outcome.failure(
            ErrorCode.REQUEST_PARAM_REJECTED, f"the {self.config.param} parameter does not satisfy the rule"
        )
