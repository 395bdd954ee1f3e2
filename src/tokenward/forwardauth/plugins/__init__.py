"""Authentication plugins for ``/verify``: one class per ``type``, built by :func:`build_plugin`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import httpx

from tokenward.apptokens import AppTokenService
from tokenward.apptokens.regulation import Regulator
from tokenward.forwardauth.plugins.app_token import AppTokenAuth
from tokenward.forwardauth.plugins.base import Outcome, Plugin, UserInfo, VerifyRequest
from tokenward.forwardauth.plugins.forward import ForwardAuth
from tokenward.forwardauth.plugins.htpasswd import HtpasswdAuth
from tokenward.forwardauth.plugins.jwt import JwtAuth
from tokenward.forwardauth.plugins.ldap import LdapAuth
from tokenward.forwardauth.plugins.oidc import OidcAuth
from tokenward.forwardauth.plugins.regulated import PasswordRegulation
from tokenward.forwardauth.plugins.simple import NoopAuth, RequestHeaderAuth, RequestParamAuth
from tokenward.forwardauth.plugins.source_identifier import SessionCheck, SourceIdentifierAuth
from tokenward.forwardauth.schema import (
    AppTokenPlugin,
    ForwardPlugin,
    HtpasswdPlugin,
    JwtPlugin,
    LdapPlugin,
    NoopPlugin,
    OidcPlugin,
    RequestHeaderPlugin,
    RequestParamPlugin,
    SourceIdentifierPlugin,
)
from tokenward.keys import Keyring

__all__ = [
    "AppTokenAuth",
    "ForwardAuth",
    "HtpasswdAuth",
    "JwtAuth",
    "LdapAuth",
    "NoopAuth",
    "OidcAuth",
    "Outcome",
    "PasswordRegulation",
    "Plugin",
    "PluginDeps",
    "RequestHeaderAuth",
    "RequestParamAuth",
    "SessionCheck",
    "SourceIdentifierAuth",
    "UserInfo",
    "VerifyRequest",
    "build_plugin",
]


@dataclasses.dataclass
class PluginDeps:
    """What plugins may need from the server."""

    app_tokens: AppTokenService | None = None
    sessions: SessionCheck | None = None
    http: httpx.AsyncClient | None = None
    #: The time-code keys (the ``oidc`` plugin seals its session cookies with them).
    keyring: Callable[[], Keyring] | None = None
    clock: Callable[[], float] = time.time
    #: Brute-force regulation for password plugins (``htpasswd``, ``ldap``); the app-token service has its own.
    regulator: Regulator | None = None
    #: How late a password plugin's failures answer while their user name is over the soft limit.
    account_failure_delay: float = 1.0

    def password_regulation(self) -> PasswordRegulation:
        return PasswordRegulation(self.regulator, self.clock, account_delay=self.account_failure_delay)


def build_plugin(config: Any, deps: PluginDeps) -> Plugin[Any]:
    """The plugin for one validated plugin config."""
    if isinstance(config, AppTokenPlugin):
        return AppTokenAuth(config, deps.app_tokens)
    if isinstance(config, HtpasswdPlugin):
        return HtpasswdAuth(config, regulation=deps.password_regulation())
    if isinstance(config, JwtPlugin):
        return JwtAuth(config, deps.http)
    if isinstance(config, RequestHeaderPlugin):
        return RequestHeaderAuth(config)
    if isinstance(config, RequestParamPlugin):
        return RequestParamAuth(config)
    if isinstance(config, NoopPlugin):
        return NoopAuth(config)
    if isinstance(config, ForwardPlugin):
        if deps.http is None:
            raise RuntimeError("the forward plugin needs an HTTP client")
        return ForwardAuth(config, deps.http)
    if isinstance(config, LdapPlugin):
        return LdapAuth(config, regulation=deps.password_regulation())
    if isinstance(config, OidcPlugin):
        if deps.http is None or deps.keyring is None:
            raise RuntimeError("the oidc plugin needs an HTTP client and the keyring")
        return OidcAuth(config, deps.http, deps.keyring, clock=deps.clock)
    if isinstance(config, SourceIdentifierPlugin):
        return SourceIdentifierAuth(config, lambda: deps.sessions)
    raise TypeError(f"unknown plugin config {type(config).__name__}")
