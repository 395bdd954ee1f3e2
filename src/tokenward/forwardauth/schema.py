"""The config token document, validated by pydantic: a bad field is refused with its path.

Shape (JSON or YAML)::

    {aud?, jti?, exp?, iat?,
     tokenward: {plugins: [...], policy?, custom_service_headers?, custom_error_headers?}}

A *pointer* token carries ``tokenward: {config_token_store_id, config_token_id}`` instead of plugins
(docs/forward-auth.md, "token specified via pointer token").
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.forwardauth.queries import compile_query

__all__ = [
    "AppTokenPlugin",
    "Assertion",
    "ConfigDocument",
    "ForwardPlugin",
    "HeaderSpec",
    "HtpasswdPlugin",
    "JwtPlugin",
    "LdapPlugin",
    "NoopPlugin",
    "OidcPlugin",
    "Pcb",
    "PluginConfig",
    "PolicyBlock",
    "RequestHeaderPlugin",
    "RequestParamPlugin",
    "Rule",
    "SourceIdentifierPlugin",
    "TokenwardBlock",
    "ValueQuery",
    "key_type",
    "parse_document",
]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_RESERVED_HEADERS = frozenset({"remote-user", "remote-email", "remote-groups", "remote-name", "www-authenticate"})
_FORBIDDEN_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "host"})
MAX_LIST = 64


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_crlf(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError("header values may not contain CR, LF or NUL")
    return value


class Rule(_Model):
    """How selected values are tested: eq, in, contains, contains-any, contains-all, regex, empty."""

    method: Literal["eq", "in", "contains", "contains-any", "contains-all", "regex", "empty"]
    value: Any = Field(default=None, repr=False)  # may be a shared secret
    negate: bool = False
    case_insensitive: bool = False

    @model_validator(mode="after")
    def _value_fits_method(self) -> Rule:
        if self.method in ("in", "contains-any", "contains-all"):
            if not isinstance(self.value, list) or len(self.value) > 1000:
                raise ValueError(f"rule {self.method} needs a list value (at most 1000 items)")
        elif self.method == "regex":
            if not isinstance(self.value, str) or len(self.value) > 1024:
                raise ValueError("rule regex needs a pattern string (at most 1024 characters)")
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        elif self.method == "empty":
            if self.value is not None:
                raise ValueError("rule empty takes no value")
        elif self.value is None:
            raise ValueError(f"rule {self.method} needs a value")
        return self


class Assertion(_Model):
    """A query over the request info (and ``userinfo``) whose result must satisfy ``rule``."""

    query_engine: Literal["jp", "jq", "template"] = "jp"
    query: str = Field(min_length=1, max_length=1024)
    rule: Rule

    @model_validator(mode="after")
    def _compiles(self) -> Assertion:
        _check_query(self.query_engine, self.query)
        return self


def _check_query(engine: str, text: str) -> None:
    try:
        compile_query(engine, text)
    except BadRequest as exc:
        raise ValueError(exc.detail) from None


class ValueQuery(_Model):
    """A value computed by a query (one result) instead of a literal."""

    query_engine: Literal["jp", "jq", "template"] = "jp"
    query: str = Field(min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _compiles(self) -> ValueQuery:
        _check_query(self.query_engine, self.query)
        return self


class Pcb(_Model):
    """Plugin control block: ``skip`` the plugin when any assertion holds; ``stop`` the chain after it fails."""

    skip: list[Assertion] = Field(default_factory=list, max_length=MAX_LIST)
    stop: list[Assertion] = Field(default_factory=list, max_length=MAX_LIST)


class _Plugin(_Model):
    pcb: Pcb = Field(default_factory=Pcb)
    assertions: list[Assertion] = Field(default_factory=list, max_length=MAX_LIST)
    realm: str = Field(default="tokenward", min_length=1, max_length=128, pattern=r'^[^"\\\r\n]*$')


class AppTokenPlugin(_Plugin):
    """HTTP Basic ``user:twa_…`` (or ``Bearer twa_…``) checked against tokenward app tokens."""

    type: Literal["app_token"]
    scopes: list[str] = Field(default_factory=list, max_length=MAX_LIST, description="Scopes the token must hold.")


class HtpasswdPlugin(_Plugin):
    """HTTP Basic against htpasswd lines (bcrypt ``$2y$``, apr1 ``$apr1$``, ``{SHA}``, argon2)."""

    type: Literal["htpasswd"]
    htpasswd: str = Field(min_length=1, max_length=1_000_000, repr=False)

    @field_validator("htpasswd")
    @classmethod
    def _lines(cls, value: str) -> str:
        from tokenward.forwardauth.plugins.htpasswd import parse_htpasswd

        parse_htpasswd(value)
        return value


JwtAlgorithm = Literal[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class JwtPlugin(_Plugin):
    """A JWT from a header (default ``Authorization: Bearer``), a query parameter or a cookie."""

    type: Literal["jwt"]
    algorithms: list[JwtAlgorithm] = Field(min_length=1, max_length=13)
    secret: str | None = Field(default=None, min_length=16, max_length=1024, repr=False)
    public_key: str | None = Field(default=None, max_length=16384)
    jwks_url: str | None = Field(default=None, pattern=r"^https?://", max_length=2048)
    jwks_cache_seconds: int = Field(default=300, ge=0, le=86400)
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: int = Field(default=30, ge=0, le=3600)
    #: A JWT without ``exp`` never expires: refused unless this is turned off (RFC 8725 §3.10).
    require_exp: bool = True
    header: str = "authorization"
    scheme: str = "Bearer"
    query_param: str | None = None
    cookie: str | None = None
    user_claim: str = "sub"
    email_claim: str = "email"
    groups_claim: str = "groups"
    name_claim: str = "name"

    @model_validator(mode="after")
    def _one_key(self) -> JwtPlugin:
        given = [n for n in ("secret", "public_key", "jwks_url") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of secret, public_key, jwks_url")
        symmetric = {a for a in self.algorithms if a.startswith("HS")}
        if self.secret is not None and symmetric != set(self.algorithms):
            raise ValueError("a secret only verifies HS256/HS384/HS512")
        if self.secret is None and symmetric:
            raise ValueError("HS* algorithms need a secret, never a public key")
        if self.public_key is not None:
            families = {key_type(a) for a in self.algorithms}
            if len(families) != 1:
                raise ValueError("one public key verifies one family: RS/PS (RSA), ES (EC) or EdDSA (OKP)")
            from joserfc.errors import JoseError
            from joserfc.jwk import import_key

            try:
                import_key(self.public_key, families.pop())
            except (JoseError, ValueError, TypeError) as exc:
                raise ValueError(f"public_key is not a PEM public key ({type(exc).__name__})") from None
        return self

    @property
    def public_key_type(self) -> Literal["RSA", "EC", "OKP", "oct"]:
        return key_type(self.algorithms[0])


def key_type(algorithm: str) -> Literal["RSA", "EC", "OKP", "oct"]:
    """The JWK key type an algorithm verifies with."""
    if algorithm.startswith(("RS", "PS")):
        return "RSA"
    if algorithm.startswith("ES"):
        return "EC"
    return "OKP" if algorithm == "EdDSA" else "oct"


class RequestHeaderPlugin(_Plugin):
    """Succeeds when a request header satisfies ``rule`` (e.g. a shared secret, compared in constant time)."""

    type: Literal["request_header"]
    header: str = Field(pattern=_HEADER_NAME.pattern)
    rule: Rule


class RequestParamPlugin(_Plugin):
    """Succeeds when a query parameter of the original request satisfies ``rule``."""

    type: Literal["request_param"]
    param: str = Field(min_length=1, max_length=256)
    rule: Rule


class NoopPlugin(_Plugin):
    """Always succeeds (anonymous). Useful with ``pcb.skip`` or last in a chain for public paths."""

    type: Literal["noop"]


class ForwardPlugin(_Plugin):
    """Asks another HTTP service: 2xx is success, its ``Remote-*`` answer headers become the user."""

    type: Literal["forward"]
    url: str = Field(pattern=r"^https?://", max_length=2048)
    method: Literal["GET", "HEAD", "POST"] = "GET"
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    forward_headers: list[str] = Field(default_factory=lambda: ["authorization", "cookie"], max_length=MAX_LIST)


class SourceIdentifierPlugin(_Plugin):
    """A tokenward session (source identifier) as ``Authorization: Bearer`` or a cookie."""

    type: Literal["source_identifier"]
    cookie: str | None = Field(default=None, max_length=128)
    # Send a request without a valid session there (``redirect_http_code``), with ``rd=<original URL>``.
    login_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://[^\s]+$")
    # Whom to redirect: ``browsers`` (``Accept`` holds ``text/html``; others get the 401) or ``always``.
    login_redirect: Literal["browsers", "always"] = "browsers"

    @model_validator(mode="after")
    def _redirect_needs_url(self) -> SourceIdentifierPlugin:
        if "login_redirect" in self.model_fields_set and self.login_url is None:
            raise ValueError("login_redirect needs login_url")
        return self


_URL = r"^https?://[^\s#]+$"


class OidcPlugin(_Plugin):
    """Sign-in at an external OpenID Provider (code flow + PKCE); an encrypted cookie holds the session."""

    type: Literal["oidc"]
    issuer: str = Field(max_length=2048, pattern=_URL)
    client_id: str = Field(min_length=1, max_length=256)
    client_secret: str | None = Field(default=None, min_length=1, max_length=1024, repr=False)
    # Default: client_secret_basic with a secret, none (a public client, PKCE only) without.
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] | None = None
    # The callback on the protected site (its host goes through the proxy to /verify like any page).
    redirect_uri: str = Field(max_length=2048, pattern=_URL)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"], min_length=1, max_length=MAX_LIST)
    cookie: str = Field(default="tokenward_oidc", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    cookie_domain: str | None = Field(default=None, max_length=255, pattern=r"^\.?[A-Za-z0-9.-]+$")
    cookie_secure: bool = True
    session_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 86400)
    refresh: bool = True
    # Also read the userinfo endpoint (for providers whose ID token lacks email, groups or name).
    userinfo: bool = False
    logout_path: str | None = Field(default=None, max_length=1024, pattern=r"^/[^\s?#]*$")
    post_logout_redirect_uri: str | None = Field(default=None, max_length=2048, pattern=_URL)
    login_redirect: Literal["browsers", "always"] = "browsers"
    user_claim: str = "sub"
    email_claim: str = "email"
    groups_claim: str = "groups"
    name_claim: str = "name"
    timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    discovery_cache_seconds: int = Field(default=3600, ge=0, le=86400)
    leeway_seconds: int = Field(default=60, ge=0, le=600)

    @model_validator(mode="after")
    def _consistent(self) -> OidcPlugin:
        if "openid" not in self.scopes:
            raise ValueError("scopes must include openid")
        method = self.token_endpoint_auth_method
        if method is None:
            object.__setattr__(
                self, "token_endpoint_auth_method", "client_secret_basic" if self.client_secret else "none"
            )
        elif (method == "none") != (self.client_secret is None):
            raise ValueError("client_secret is needed by client_secret_basic/post and refused by none")
        if self.logout_path is not None and self.logout_path == _path_of(self.redirect_uri):
            raise ValueError("logout_path cannot be the redirect_uri's path")
        return self


def _path_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path or "/"


_DN = r"^[^\r\n\x00]{1,1024}$"


class LdapPlugin(_Plugin):
    """HTTP Basic checked against an LDAP directory: search the user, bind as them, read their groups."""

    type: Literal["ldap"]
    url: str = Field(max_length=512, pattern=r"^ldaps?://[A-Za-z0-9.\-\[\]:]+(:\d+)?/?$")
    start_tls: bool = False
    # PEM CA bundle for ldaps:// or StartTLS; default: the system's CAs. The server's name is always checked.
    ca_file: str | None = Field(default=None, max_length=4096)
    bind_dn: str | None = Field(default=None, pattern=_DN)
    bind_password: str | None = Field(default=None, min_length=1, max_length=1024, repr=False)
    user_base_dn: str = Field(pattern=_DN)
    # ``{username}`` is replaced by the Basic user name, escaped (RFC 4515).
    user_filter: str = Field(default="(uid={username})", max_length=1024, pattern=r"\{username\}")
    username_attribute: str = Field(default="uid", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
    email_attribute: str = Field(default="mail", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
    name_attribute: str = Field(default="cn", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
    group_base_dn: str | None = Field(default=None, pattern=_DN)
    # ``{dn}`` is the user's DN, ``{username}`` the user name (both escaped).
    group_filter: str = Field(default="(|(member={dn})(uniqueMember={dn}))", max_length=1024)
    group_name_attribute: str = Field(default="cn", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
    # The user must be in one of these groups (by name); empty: any user who can bind.
    required_groups: list[str] = Field(default_factory=list, max_length=MAX_LIST)
    pool_size: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    cache_seconds: int = Field(default=60, ge=0, le=3600)

    @model_validator(mode="after")
    def _consistent(self) -> LdapPlugin:
        if (self.bind_dn is None) != (self.bind_password is None):
            raise ValueError("give bind_dn and bind_password together (or neither, for an anonymous search)")
        if self.start_tls and self.url.startswith("ldaps://"):
            raise ValueError("start_tls is for ldap:// URLs; ldaps:// is TLS from the start")
        if self.required_groups and self.group_base_dn is None:
            raise ValueError("required_groups needs group_base_dn")
        for field in ("user_filter", "group_filter"):
            value = getattr(self, field)
            if not (value.startswith("(") and value.endswith(")")):
                raise ValueError(f"{field} must be an LDAP filter in parentheses")
        return self


PluginConfig = Annotated[
    LdapPlugin
    | OidcPlugin
    | AppTokenPlugin
    | HtpasswdPlugin
    | JwtPlugin
    | RequestHeaderPlugin
    | RequestParamPlugin
    | NoopPlugin
    | ForwardPlugin
    | SourceIdentifierPlugin,
    Field(discriminator="type"),
]


class PolicyBlock(_Model):
    """Asked after authentication: ``(subject, domain, object, action)`` must be allowed and not denied.

    ``subject`` is the authenticated user (``userinfo.sub``); the others are literals or queries.
    """

    domain: str | ValueQuery = Field(default_factory=lambda: ValueQuery(query="$.parsedUri.host"))
    object: str | ValueQuery
    action: str | ValueQuery = Field(default_factory=lambda: ValueQuery(query="$.method"))


class HeaderSpec(_Model):
    """One response header: a static value, or a query over ``userinfo`` / the request info."""

    source: Literal["static", "userinfo", "request"] = "static"
    value: str = Field(max_length=8192)
    query_engine: Literal["jp", "jq", "template"] = "jp"
    encoding: Literal["plain", "base64", "url"] = "plain"

    @field_validator("value")
    @classmethod
    def _clean(cls, value: str) -> str:
        return _no_crlf(value)

    @model_validator(mode="after")
    def _compiles(self) -> HeaderSpec:
        if self.source != "static":
            _check_query(self.query_engine, self.value)
        return self


def _header_map(value: dict[str, HeaderSpec]) -> dict[str, HeaderSpec]:
    if len(value) > MAX_LIST:
        raise ValueError(f"at most {MAX_LIST} headers")
    for name in value:
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if name.lower() in _RESERVED_HEADERS | _FORBIDDEN_HEADERS:
            raise ValueError(f"{name} is set by tokenward itself and cannot be customised")
    return value


class TokenwardBlock(_Model):
    plugins: list[PluginConfig] = Field(default_factory=list, max_length=MAX_LIST)
    policy: PolicyBlock | None = None
    custom_service_headers: dict[str, HeaderSpec] = Field(default_factory=dict)
    custom_error_headers: dict[str, HeaderSpec] = Field(default_factory=dict)
    config_token_store_id: str | None = Field(default=None, min_length=1, max_length=128)
    config_token_id: str | None = Field(default=None, min_length=1, max_length=256)

    _headers = field_validator("custom_service_headers", "custom_error_headers")(_header_map)

    @model_validator(mode="after")
    def _pointer_or_plugins(self) -> TokenwardBlock:
        pointer = (self.config_token_store_id, self.config_token_id)
        if any(p is not None for p in pointer):
            if None in pointer:
                raise ValueError("a pointer needs both config_token_store_id and config_token_id")
            if self.plugins or self.policy or self.custom_service_headers or self.custom_error_headers:
                raise ValueError("a pointer token holds only config_token_store_id and config_token_id")
        elif not self.plugins:
            raise ValueError("plugins: at least one plugin is needed")
        return self

    @property
    def pointer(self) -> tuple[str, str] | None:
        if self.config_token_store_id is None or self.config_token_id is None:
            return None
        return self.config_token_store_id, self.config_token_id


class ConfigDocument(_Model):
    """A whole config token document."""

    aud: str | list[str] | None = None
    jti: str | None = Field(default=None, min_length=1, max_length=128)
    exp: int | None = Field(default=None, ge=0)
    iat: int | None = Field(default=None, ge=0)
    tokenward: TokenwardBlock


def parse_document(data: Any) -> ConfigDocument:
    """Validate ``data``; 400 ``config_token_schema`` naming the first bad field (``tokenward.plugins.0.rule``)."""
    try:
        return ConfigDocument.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"]) or "(document)"
        message = str(err["msg"]).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BadRequest(f"config token field {path}: {message}{more}", code=ErrorCode.CONFIG_TOKEN_SCHEMA) from None
