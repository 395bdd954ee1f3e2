"""The policy question ``/verify`` asks, in one place: for the hot path and for ``policy check --as-verify``.

A config token's ``policy`` block names ``(domain, object, action)`` as literals or queries over
the request; the subject is the authenticated user. By default the domain is
``$.parsedUri.host`` — the host **without its port** (``app.example.com`` for
``https://app.example.com:8443/x``) — and the action is the HTTP method. The file asked is
``userpolicy.csv`` for an e-mail subject and ``resourcepolicy.csv`` otherwise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Forbidden
from tokenward.forwardauth.plugins.base import UserInfo
from tokenward.forwardauth.queries import compile_query
from tokenward.forwardauth.request_info import RequestInfo, reconstruct
from tokenward.forwardauth.schema import PolicyBlock, ValueQuery
from tokenward.policy.questions import is_user

__all__ = ["VerifyQuestion", "request_for_url", "verify_question"]


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyQuestion:
    """``(subject, domain, object, action)`` asked of ``file``: allowed when ``action`` matches and ``deny`` not."""

    subject: str
    domain: str
    object: str
    action: str
    file: str


def verify_question(spec: PolicyBlock, user: UserInfo, info: RequestInfo) -> VerifyQuestion:
    """The question for ``user``'s request ``info`` under ``spec``; 403 ``policy_denied`` without a subject."""
    subject = user.sub or user.email
    if not subject:
        raise Forbidden("the policy check needs an authenticated user", code=ErrorCode.POLICY_DENIED)
    data = {**info.as_dict(), "userinfo": user.as_dict()}
    domain, obj, action = (
        _value(value, data, name)
        for value, name in ((spec.domain, "domain"), (spec.object, "object"), (spec.action, "action"))
    )
    file = "userpolicy.csv" if is_user(subject) else "resourcepolicy.csv"
    return VerifyQuestion(subject, domain, obj, action, file)


def request_for_url(url: str, method: str = "GET") -> RequestInfo:
    """The request ``/verify`` rebuilds when a proxy forwards ``method url`` (as ``X-Original-URL``)."""
    return reconstruct({"x-original-url": url, "x-original-method": method})


def _value(spec: str | ValueQuery, data: Any, name: str) -> str:
    if isinstance(spec, str):
        return spec
    return compile_query(spec.query_engine, spec.query).one(data, name=f"policy.{name}")
