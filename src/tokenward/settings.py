"""All tokenward configuration, validated once.

Values come from (highest priority first): keyword overrides (CLI options), environment
variables prefixed ``TOKENWARD_``, an optional TOML config file named by
``TOKENWARD_CONFIG_FILE``, then defaults. Nothing is read at import time: call
:meth:`Settings.load`.

A bad value raises :class:`~tokenward.errors.ConfigError` with one line naming the setting,
e.g. ``invalid setting TOKENWARD_PORT: Input should be less than or equal to 65535``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from tokenward.errorcodes import ErrorCode
from tokenward.errors import ConfigError

__all__ = ["ENV_PREFIX", "SEGMENTS", "Settings", "validate_server_name"]

ENV_PREFIX = "TOKENWARD_"
CONFIG_FILE_ENV = "TOKENWARD_CONFIG_FILE"
SEGMENTS = frozenset({"user", "resource", "captcha", "system"})

# RFC 1123 host name, optionally with :port; the original server names are DNS names.
_SERVER_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::\d{1,5})?$"
)


def validate_server_name(value: str) -> str:
    """Return the canonical (lower-case) server name or raise ``ValueError``."""
    value = value.strip()
    if not _SERVER_NAME.match(value):
        raise ValueError(f"{value!r} is not a DNS name like auth.example.com")
    return value.lower()


class Settings(BaseSettings):
    """Validated tokenward settings (env prefix ``TOKENWARD_``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    data_dir: Path = Field(
        default=Path("tokenward-data"), description="Folder holding policies, time code and the SQLite database."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (sqlite:///, postgresql://, mysql://); default: SQLite file in the data dir.",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Address to bind.")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port to bind.")
    workers: int = Field(default=1, ge=1, le=256, description="Worker processes for `tokenward serve`.")
    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="asyncio",
        description="Event loop for `tokenward serve`: asyncio takes in every waiting connection when busy; "
        "uvloop has a cheaper loop but, saturated, takes in about one new connection per turn (docs/deployment.md).",
    )
    tls_cert: Path | None = Field(default=None, description="PEM certificate chain; enables HTTPS with tls_key.")
    tls_key: Path | None = Field(default=None, description="PEM private key (0600) for tls_cert.")
    server_name: str | None = Field(
        default=None, description="Overrides the server name stored in the data dir by `tokenward init`."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    log_format: Literal["text", "json"] = Field(default="text", description="Log line format.")
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, le=64 * 1_048_576, description="Largest request body accepted."
    )
    timecode_grace_seconds: int = Field(
        default=3600, ge=0, le=30 * 86400, description="How long a rotated-out time code is still accepted."
    )
    session_lifetime_seconds: int = Field(
        default=8 * 3600, ge=60, le=30 * 86400, description="How long a source identifier (session) is valid."
    )
    sessions_memory_mb: float = Field(
        default=64.0,
        ge=0.001,
        le=65536,
        description="Memory for the sessions each instance holds (about 200 bytes each, so 64 MB holds ~335,000); "
        "beyond it the oldest are dropped and read again when next used.",
    )
    cookie_domain: str | None = Field(
        default=None,
        max_length=253,
        description="Domain of the portal's session cookie (example.com shares it with app.example.com for forward "
        "auth); none: this host only.",
    )
    cookie_secure: bool = Field(
        default=True, description="Mark the portal's cookies Secure (HTTPS only); turn off only for plain-HTTP tests."
    )
    redirect_domains: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated hosts the portal may return to after sign-in (rd): example.com exactly, "
        ".example.com for it and its subdomains; paths on this server are always allowed.",
    )
    policy_dialect: Literal["glob", "compat"] = Field(default="glob", description="Policy pattern dialect.")
    policy_watch_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="How often the server checks the policy files for changes."
    )
    policy_segments: Annotated[frozenset[str], NoDecode] = Field(
        default=SEGMENTS,
        description="Comma-separated policy segments this instance serves: user,resource,captcha,system.",
    )
    decision_log_enabled: bool = Field(
        default=False,
        description="Keep a sampled record of the questions the policy answers (personal data; docs/policy-diff.md).",
    )
    decision_log_sample_rate: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Share of policy questions the decision log keeps (0-1)."
    )
    decision_log_size: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Most decisions kept in memory per instance (ring buffer)."
    )
    decision_log_hash_subjects: Literal["off", "local", "full"] = Field(
        default="local",
        description="Pseudonymise subjects with a keyed hash: local (the part before @), full, or off.",
    )
    decision_log_sink: Literal["memory", "sql", "s3"] = Field(
        default="memory",
        description="Where decisions also go: memory only, the SQL database's decision_log table, or the S3 bucket.",
    )
    decision_log_flush_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="How often kept decisions are written to the SQL sink."
    )
    decision_log_retention_days: int = Field(
        default=7, ge=1, le=3650, description="Decisions older than this are deleted from the SQL sink."
    )
    purge_interval_seconds: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        description="How often expired captcha challenges, sessions, enrolment codes and OIDC codes are deleted.",
    )
    expired_retention_seconds: float = Field(
        default=3600.0,
        ge=0,
        le=30 * 86400,
        description="How long after expiring those rows are kept before the purge deletes them.",
    )
    app_tokens_impersonation: bool = Field(
        default=False,
        description="Let admins create, list and delete app tokens of other users (userID/userName parameters).",
    )
    app_tokens_default_expiry: str = Field(
        default="72h", description="Lifetime of an app token created without an expiry (72h, 30m, 1h30m, 7d, 2w)."
    )
    app_tokens_max_expiry: str = Field(default="365d", description="Longest lifetime an app token may be given.")
    app_tokens_max_per_user: int = Field(
        default=100, ge=1, le=100_000, description="Most live (unrevoked, unexpired) app tokens one user may hold."
    )
    app_tokens_last_used_interval_seconds: int = Field(
        default=60,
        ge=1,
        le=86400,
        description="Flush the app tokens' last_used_at (kept in memory, written behind) this often.",
    )
    app_tokens_memory_mb: int = Field(
        default=128,
        ge=1,
        le=65_536,
        description="Memory (MB) each instance may use to hold app token records and lists (about 1 kB a record); "
        "beyond it the oldest are dropped and read again when used. The filter of known ids is not counted.",
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated proxy addresses/networks (10.0.0.0/8,::1) whose X-Forwarded-For is believed "
        "when finding a client's IP for brute-force regulation; empty: the peer address is the client.",
    )
    regulation_max_failures: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Failed credential checks per client IP (per user when there is no client IP) before a ban.",
    )
    regulation_account_max_failures: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="Failed app-token checks of one user (from any address, at a token id that exists) within the "
        "find time after which that user's failures answer late (regulation_account_delay_seconds); never a lockout.",
    )
    regulation_account_delay_seconds: float = Field(
        default=1.0, ge=0, le=10, description="How late a failed check of a user over the account limit answers."
    )
    regulation_find_time_seconds: int = Field(
        default=120, ge=1, le=86400, description="Window in which regulation_max_failures failures cause a ban."
    )
    regulation_ban_time_seconds: int = Field(
        default=300, ge=0, le=30 * 86400, description="How long a ban lasts (0 disables regulation)."
    )
    regulation_flush_seconds: float = Field(
        default=1.0,
        ge=0.1,
        le=3600,
        description="Write the failed checks and bans counted in memory, and the audit events kept behind, "
        "this often (and on shutdown).",
    )
    audit_refusals_per_flush: int = Field(
        default=100,
        ge=0,
        le=1_000_000,
        description="Refused credential checks of one kind audited one by one per flush interval and instance; "
        "the rest of that interval's are written as one summary event with their counts (0: every one).",
    )
    captcha_max_requests: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Captcha requests per client IP, and per (e-mail address, client IP), within "
        "captcha_regulation_window_seconds.",
    )
    captcha_max_failures: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="Wrong captcha answers and enrolment codes per client IP, and per (e-mail address, client IP), "
        "within the window.",
    )
    captcha_account_max_failures: int = Field(
        default=30,
        ge=1,
        le=100_000,
        description="Wrong captcha answers for one e-mail address (from any address) within the window after which "
        "only browsers that signed in as it before (device cookie) may go on.",
    )
    captcha_regulation_window_seconds: int = Field(
        default=600,
        ge=0,
        le=30 * 86400,
        description="Window for the captcha limits, and how long the ban lasts once one is reached (0 disables).",
    )
    s3_url: str | None = Field(
        default=None, description="S3-compatible endpoint URL (https://s3.amazonaws.com, R2, MinIO); none: AWS default."
    )
    s3_bucket: str | None = Field(
        default=None, description="Bucket holding the shared config bundle; setting it turns config sync on."
    )
    s3_access_key: str | None = Field(default=None, description="S3 access key id.")
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret access key.")
    s3_region: str = Field(default="us-east-1", min_length=1, description="S3 region.")
    s3_timeout_seconds: float = Field(
        default=3.0, gt=0, le=60, description="Connect and read timeout of one S3 request."
    )
    config_key: SecretStr | None = Field(
        default=None,
        description="32 bytes, base64url: seals the time code (and optionally policies) in the S3 bundle. "
        "Same value on every instance; make one with `tokenward config keygen`.",
    )
    config_poll_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="How often an instance checks the S3 bundle manifest for changes."
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis:// URL: regulation counters and change-feed wake-ups via Redis; unset: SQL only.",
    )
    changes_poll_seconds: float = Field(
        default=0.25,
        ge=0.01,
        le=1.0,
        description="How often an instance reads the change log (revocations, bans made elsewhere), counted from "
        "the start of one read to the next; keep it at 0.25 or less for the 1 s revocation bound.",
    )
    changes_max_lag_seconds: float = Field(
        default=10.0,
        ge=0.5,
        le=3600,
        description="After this long without a successful read of the change log, credentials answered from "
        "memory are refused (503 changes_stale) and /readyz fails.",
    )
    changes_retention_seconds: int = Field(
        default=3600, ge=60, le=30 * 86400, description="How long change-log rows are kept before pruning."
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server for e-mail enrolment codes; unset: POST /api/enroll/email answers 503."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP server port.")
    smtp_from: str = Field(
        default="", max_length=254, description="From address of enrolment e-mails (default tokenward@<server name>)."
    )
    smtp_username: str | None = Field(default=None, description="SMTP login name; unset: no SMTP AUTH.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(
        default=True, description="Upgrade the SMTP connection with STARTTLS (turn off only for a loopback relay)."
    )
    smtp_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Connect and command timeout of one SMTP conversation."
    )

    oidc_issuer: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        max_length=512,
        description="The OpenID Provider's issuer URL (no trailing slash); default https://<server name>.",
    )
    oidc_code_lifetime_seconds: int = Field(
        default=60, ge=10, le=600, description="How long an OpenID Connect authorization code may be redeemed."
    )
    oidc_access_token_lifetime_seconds: int = Field(
        default=600, ge=60, le=86400, description="Lifetime of OpenID Connect access tokens (signed JWTs)."
    )
    oidc_id_token_lifetime_seconds: int = Field(
        default=600, ge=60, le=86400, description="Lifetime (exp) of OpenID Connect ID tokens."
    )
    oidc_refresh_token_lifetime_seconds: int = Field(
        default=30 * 86400,
        ge=300,
        le=365 * 86400,
        description="Lifetime of an OpenID Connect refresh token; each use rotates it and starts a new lifetime.",
    )

    @field_validator("redirect_domains", mode="before")
    @classmethod
    def _domains(cls, value: Any) -> Any:
        if isinstance(value, str):
            # Also reads the tuple repr `serve --workers` exports through the environment.
            value = [part.strip(" ()[]'\"") for part in value.split(",")]
        if isinstance(value, list | tuple):
            value = tuple(str(part).strip().lower() for part in value if str(part).strip())
            for part in value:
                if not re.fullmatch(r"(\*?\.)?[a-z0-9.-]+", part):
                    raise ValueError(f"{part!r} is not a host like example.com or .example.com")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        import ipaddress

        if isinstance(value, str):
            # Also reads the tuple repr `serve --workers` exports through the environment.
            value = [part.strip(" ()[]'\"") for part in value.split(",")]
            value = [part for part in value if part]
        networks = []
        for item in value:
            try:
                networks.append(str(ipaddress.ip_network(str(item), strict=False)))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network like 10.0.0.0/8") from None
        return tuple(networks)

    config_token_stores: str | None = Field(
        default=None,
        description="Server-side config token stores for /verify, JSON or YAML: {store_id: {adapter: file|env|sql, "
        "options: {...}}} (docs/forward-auth.md).",
    )

    @field_validator("config_token_stores")
    @classmethod
    def _stores(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return value  # the usual case: no need to import the forward-auth stores to say so
        from tokenward.errors import ConfigError
        from tokenward.storespecs import parse_store_specs

        try:
            parse_store_specs(value)
        except ConfigError as exc:
            raise ValueError(exc.detail) from None
        return value

    @field_validator("app_tokens_default_expiry", "app_tokens_max_expiry")
    @classmethod
    def _duration(cls, value: str) -> str:
        from tokenward.durations import parse_duration
        from tokenward.errors import BadRequest

        try:
            parse_duration(value)
        except BadRequest as exc:
            raise ValueError(exc.detail) from None
        return value.strip().lower()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", "policy_dialect", "decision_log_hash_subjects", "decision_log_sink", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("server_name")
    @classmethod
    def _server_name(cls, value: str | None) -> str | None:
        return None if value is None else validate_server_name(value)

    @field_validator("policy_segments", mode="before")
    @classmethod
    def _segments(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        items = frozenset(value)
        unknown = items - SEGMENTS
        if unknown:
            raise ValueError(
                f"unknown segment(s) {', '.join(sorted(unknown))}; choose from {', '.join(sorted(SEGMENTS))}"
            )
        if not items:
            raise ValueError("at least one segment is needed")
        return items

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TOKENWARD_TLS_CERT and TOKENWARD_TLS_KEY must be set together")
        return self

    @model_validator(mode="after")
    def _decision_log_bucket(self) -> Settings:
        if self.decision_log_enabled and self.decision_log_sink == "s3" and not self.s3_bucket:
            raise ValueError("TOKENWARD_DECISION_LOG_SINK=s3 needs TOKENWARD_S3_BUCKET (and the other TOKENWARD_S3_*)")
        return self

    @model_validator(mode="after")
    def _expiry_order(self) -> Settings:
        from tokenward.durations import parse_duration

        if parse_duration(self.app_tokens_default_expiry) > parse_duration(self.app_tokens_max_expiry):
            raise ValueError("TOKENWARD_APP_TOKENS_DEFAULT_EXPIRY is longer than TOKENWARD_APP_TOKENS_MAX_EXPIRY")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Overrides > environment > TOML config file > defaults. No .env or secrets-dir magic.
        return init_settings, env_settings, _ConfigFileSource(settings_cls)

    @property
    def database_url_or_default(self) -> str:
        """The database URL, defaulting to SQLite in the data dir."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'tokenward.db').resolve()}"

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build settings from the environment, the config file and ``overrides`` (None values ignored).

        Raises ConfigError with one line naming the bad or unknown setting.
        """
        _reject_unknown_env(os.environ)
        values = {**_legacy_aliases(os.environ), **{k: v for k, v in overrides.items() if v is not None}}
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(_one_line(exc), code=ErrorCode.SETTING_INVALID) from None


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the TOML file named by ``TOKENWARD_CONFIG_FILE`` (top level or a [tokenward] table)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _read_config_file(os.environ.get(CONFIG_FILE_ENV))


#: Settings that no longer exist, with what replaced them: still accepted (a warning, the value ignored) so an
#: upgrade does not stop a deployment that sets one.
RETIRED_SETTINGS = {
    "config_token_revocation_refresh_seconds": "config-token revocations reach every instance through the change "
    "feed (TOKENWARD_CHANGES_POLL_SECONDS)",
    "app_tokens_cache_ttl_seconds": "app-token records are held with no TTL and kept true by the change feed "
    "(TOKENWARD_CHANGES_POLL_SECONDS)",
    "app_tokens_cache_size": "the records held are bounded by TOKENWARD_APP_TOKENS_MEMORY_MB",
}
_warned_retired: set[str] = set()


def _retired(name: str) -> bool:
    """True (and a warning, once) for a retired setting's field name."""
    why = RETIRED_SETTINGS.get(name)
    if why is None:
        return False
    if name not in _warned_retired:
        import logging

        _warned_retired.add(name)
        logging.getLogger("tokenward.settings").warning(
            "%s%s is no longer used and is ignored: %s", ENV_PREFIX, name.upper(), why
        )
    return True


def _reject_unknown_env(env: Mapping[str, str]) -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | {CONFIG_FILE_ENV}
    for key in sorted(env):
        if key.startswith(ENV_PREFIX) and key not in known and not _retired(key.removeprefix(ENV_PREFIX).lower()):
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown setting {key}{hint}", code=ErrorCode.SETTING_UNKNOWN)


#: The original server's names, still accepted.
LEGACY_ALIASES = {
    "HEXAEIGHT_S3_URL": "s3_url",
    "HEXAEIGHT_S3_BUCKET": "s3_bucket",
    "HEXAEIGHT_S3_ACCESS_KEY": "s3_access_key",
    "HEXAEIGHT_S3_SECRET_KEY": "s3_secret_key",
}
_warned_aliases: set[str] = set()


def _legacy_aliases(env: Mapping[str, str]) -> dict[str, str]:
    """Values of ``HEXAEIGHT_S3_*`` variables whose TOKENWARD_ name is not set, with a deprecation notice."""
    import logging

    found: dict[str, str] = {}
    for old, field_name in LEGACY_ALIASES.items():
        new = ENV_PREFIX + field_name.upper()
        if old in env and new not in env:
            found[field_name] = env[old]
            if old not in _warned_aliases:
                _warned_aliases.add(old)
                logging.getLogger("tokenward.settings").warning(
                    "%s is deprecated; rename it to %s (the old name will be removed in a future release)", old, new
                )
    return found


def _read_config_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path} ({CONFIG_FILE_ENV}): {exc.strerror}", code=ErrorCode.SETTING_INVALID
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}", code=ErrorCode.SETTING_INVALID) from None
    table = data.get("tokenward", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [tokenward] must be a table", code=ErrorCode.SETTING_INVALID)
    for key in list(table):
        if key not in Settings.model_fields and _retired(key):
            del table[key]
        elif key not in Settings.model_fields:
            close = difflib.get_close_matches(key, list(Settings.model_fields), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown setting {key!r} in config file {path}{hint}", code=ErrorCode.SETTING_UNKNOWN)
    return dict(table)


def _one_line(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = [str(part) for part in err.get("loc", ())]
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        return f"invalid settings: {msg}"
    return f"invalid setting {ENV_PREFIX + loc[0].upper()}: {msg}"
