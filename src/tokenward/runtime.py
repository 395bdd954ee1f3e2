"""What a running server holds: settings, server name, keyring, database — opened and closed together.

``open_runtime`` is the one place start-up I/O happens (data dir, secret files, database,
migrations). The CLI uses it to fail before binding a port; the ASGI lifespan uses it to serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tokenward.apptokens import AppTokenConfig, AppTokenService, RegulationPolicy, Regulator, parse_duration
from tokenward.apptokens.regulation import Regulation
from tokenward.changefeed import ChangeFeed
from tokenward.clientaddr import TrustedProxies
from tokenward.datadir import DataDir, TimeCodes, check_secret_file, load_server_name
from tokenward.errors import StorageError, TokenwardError
from tokenward.identity.apps import load_registry
from tokenward.keys import Keyring, Purpose, Secret
from tokenward.periodic import Periodic
from tokenward.policy import PolicyHolder, parse_segments
from tokenward.policy.decisionlog import DecisionLog
from tokenward.settings import Settings
from tokenward.storage import AuditEvent, AuditLog, Database, SqlAppTokenStore, SqlAuditLog, SqlRegulationStore
from tokenward.storage.audit import BufferedAuditLog
from tokenward.storage.changes import ChangeKind, SqlChangeLog
from tokenward.storage.decisions import BlobDecisionSink, DecisionSink, SqlDecisionSink
from tokenward.storage.regulation import FallbackRegulationStore, RegulationStore

if TYPE_CHECKING:
    from tokenward.configsync import ConfigSync
    from tokenward.forwardauth.plugins import SessionCheck
    from tokenward.forwardauth.service import ForwardAuthService
    from tokenward.identity.captcha_login import CaptchaLoginService
    from tokenward.identity.enrolment import EnrolmentService
    from tokenward.identity.mail import SmtpMailer
    from tokenward.identity.policy import IdentityPolicy, PolicyQuestions
    from tokenward.identity.resource_login import ResourceLoginService
    from tokenward.identity.service import IdentityService
    from tokenward.identity.sessions import SessionService
    from tokenward.identity.system_login import SystemLoginService
    from tokenward.oidc.provider import OidcProvider
    from tokenward.storage.redisstate import ChangeNotices
    from tokenward.storage.retention import PurgeCounts

__all__ = [
    "Runtime",
    "build_app_token_service",
    "build_captcha_login",
    "build_decision_log",
    "build_enrolment",
    "build_forward_auth",
    "build_identity",
    "build_oidc",
    "build_resource_login",
    "build_sessions",
    "build_system_login",
    "check_secret_files",
    "open_runtime",
    "session_check",
]

log = logging.getLogger("tokenward.runtime")

READY_TIMEOUT_SECONDS = 2.0


@dataclass
class Runtime:
    """Everything the server needs at run time. Build it with :func:`open_runtime`."""

    settings: Settings
    server_name: str
    timecodes: TimeCodes
    database: Database
    #: The audit log the admin pages read (docs/security.md); services append through their own handle.
    audit: AuditLog
    app_tokens: AppTokenService
    policy: PolicyHolder
    #: Brute-force regulation counts: in Redis (SQL while Redis is down) with ``TOKENWARD_REDIS_URL``, else SQL.
    regulation_store: RegulationStore
    #: The change feed (docs/multi-instance.md): what keeps the credentials held in memory true. Followed
    #: (polled, and woken over Redis) in serving processes; a CLI command only writes to the change log.
    changes: ChangeFeed
    #: Every regulator's shared ban snapshot and batched writes on ``regulation_store`` (docs/regulation.md).
    regulation: Regulation
    #: Audit events that are not part of a change (failed verifications, bans), written behind in one
    #: INSERT a second and on shutdown (docs/security.md).
    audit_behind: BufferedAuditLog
    # The fields below are genuinely optional: each is present only when a setting asks for it (S3 bucket, Redis,
    # decision log) or in a serving process. The identity, /verify, OIDC and system-login services are the
    # properties after the fields: always there, built on first use (open_runtime builds them for serving).
    #: Present when an S3 bucket is configured: the shared config bundle's poller (docs/multi-instance.md).
    config_sync: ConfigSync | None = None
    #: Present when ``TOKENWARD_REDIS_URL`` is set: change-feed wake-ups between instances.
    change_notices: ChangeNotices | None = None
    #: Present when ``TOKENWARD_REDIS_URL`` is set: regulation in Redis, in SQL while Redis is down.
    regulation_fallback: FallbackRegulationStore | None = None
    #: Present when ``TOKENWARD_REDIS_URL`` is set: the client the two above share, closed with the runtime.
    redis: object | None = None
    #: Present when ``TOKENWARD_DECISION_LOG_ENABLED``: sampled policy decisions (docs/configuration.md).
    decision_log: DecisionLog | None = None
    #: Present when ``TOKENWARD_DECISION_LOG_SINK`` is ``sql`` (the ``decision_log`` table) or ``s3``.
    decision_sink: DecisionSink | None = None
    #: Unix seconds; tests pass a clock they move (open_runtime(clock=)).
    clock: Callable[[], float] = time.time
    #: Writes the app tokens' last_used_at behind the requests, every ``last_used_interval`` (serving processes).
    last_used_flusher: Periodic | None = None
    #: Flushes the regulators' failures and bans and refreshes their ban snapshot, every second (serving processes).
    regulation_flusher: Periodic | None = None

    @functools.cached_property
    def identity(self) -> IdentityService:
        """The identity API's flows behind one facade (docs/protocol.md); the API and portal use it."""
        return build_identity(self)

    @functools.cached_property
    def enrolment(self) -> EnrolmentService:
        """Enrolment codes and enrolment (the API, and ``tokenward user enroll`` alone)."""
        return build_enrolment(self)

    @functools.cached_property
    def sessions(self) -> SessionService:
        """User and resource sessions; /verify checks ``Bearer tw1si.…`` through it."""
        return build_sessions(self)

    @functools.cached_property
    def captcha_login(self) -> CaptchaLoginService:
        """The portal's captcha login, regulated with the ``TOKENWARD_CAPTCHA_*`` limits."""
        return build_captcha_login(self)

    @functools.cached_property
    def resource_login(self) -> ResourceLoginService:
        """Resource (machine) login with a signed challenge."""
        return build_resource_login(self)

    @functools.cached_property
    def captcha_regulators(self) -> tuple[Regulator, Regulator]:
        """(requests, failures): shared by enrolment and captcha login, in ``regulation_store`` (Redis when
        ``TOKENWARD_REDIS_URL`` is set, else SQL)."""
        regulation = self.regulation
        return _captcha_request_regulator(self.settings, regulation), _captcha_failure_regulator(
            self.settings, regulation
        )

    @functools.cached_property
    def forward_auth(self) -> ForwardAuthService:
        """The /verify service (docs/forward-auth.md)."""
        return build_forward_auth(self)

    @functools.cached_property
    def oidc(self) -> OidcProvider:
        """The OpenID Provider (docs/oidc.md)."""
        return build_oidc(self, clock=self.clock)

    @functools.cached_property
    def system_login(self) -> SystemLoginService:
        """Host-initiated captchas and code checks for PAM logins on Linux hosts (docs/system-login.md)."""
        return build_system_login(self, self.regulation)

    @functools.cached_property
    def trusted_proxies(self) -> TrustedProxies:
        """Whose forwarding headers are believed (``TOKENWARD_TRUSTED_PROXIES``): /verify, the API, the portal."""
        return TrustedProxies.parse(self.settings.trusted_proxies)

    @property
    def keyring(self) -> Keyring:
        return self.timecodes.keyring()

    async def readiness(self) -> dict[str, str]:
        """One entry per check: ``"ok"`` or a short reason (never a secret)."""
        checks = {"config": "ok", "policy": "ok" if self.policy.loaded else "not loaded"}
        try:
            load_registry(self.settings.data_dir)
            checks["client_ids"] = "ok"
        except TokenwardError as exc:  # captcha requests answer 503 with the same code until it is fixed
            checks["client_ids"] = f"{exc.error_code}: {exc.detail}"
        try:
            await asyncio.wait_for(self.database.ping(), READY_TIMEOUT_SECONDS)
            checks["database"] = "ok"
        except TimeoutError:
            checks["database"] = "timed out"
        except TokenwardError as exc:
            checks["database"] = exc.detail
        checks["changes"] = self.changes.stale_reason or "ok"
        if self.regulation_fallback is not None:  # a degraded state, not a readiness failure (degraded())
            with contextlib.suppress(TimeoutError, TokenwardError):
                await asyncio.wait_for(self.regulation_fallback.probe(datetime.now(UTC)), READY_TIMEOUT_SECONDS)
        return checks

    def degraded(self) -> dict[str, str]:
        """Serving, but behind the shared configuration: one entry per part, a machine-readable reason.

        Not a readiness failure: the instance keeps answering with its last good bundle, exactly as
        before the refused save, and one bad ``config save`` must not take every instance out of the
        load balancer at once. ``/readyz`` reports it as ``status: degraded``.
        """
        out: dict[str, str] = {}
        reason = self.config_sync.degraded_reason if self.config_sync is not None else None
        if reason is not None:
            out["config_sync"] = reason
        # Redis down: brute-force regulation counts in the database instead (docs/regulation.md).
        if self.regulation_fallback is not None and self.regulation_fallback.degraded_reason is not None:
            out["regulation"] = self.regulation_fallback.degraded_reason
        return out

    def use_timecodes(self, codes: TimeCodes) -> None:
        """Put new time codes in force (from the config bundle); one attribute store, no restart."""
        self.timecodes = codes
        if self.decision_log is not None:
            self.decision_log.rekey(self.keyring.key(Purpose.DECISION_LOG)[1].reveal())
        log.info("time code %s in force from the config bundle", codes.current.key_id)

    async def flush_decisions(self) -> int:
        """Write the decisions kept since the last flush to the SQL sink (a no-op without one)."""
        if self.decision_log is None or self.decision_sink is None:
            return 0
        return await self.decision_sink.flush(self.decision_log, now=time.time())

    async def purge_expired(self) -> PurgeCounts:
        """Delete captcha challenges, sessions, enrolment codes and OIDC codes expired for
        ``TOKENWARD_EXPIRED_RETENTION_SECONDS`` (docs/storage.md); the served app runs it periodically."""
        from tokenward.storage.retention import purge_expired

        counts = await purge_expired(self.database, now=self.clock(), grace=self.settings.expired_retention_seconds)
        if counts.total:
            log.info("purged expired rows: %s", counts)
        return counts

    async def flush_regulation(self) -> None:
        """Refresh the ban snapshot (unless the change feed keeps it), write every regulator's queued
        failures and bans in one batch each (docs/regulation.md), then the audit events kept behind (the
        bans just made among them); the served app does it every second."""
        now = self.clock()
        await self.regulation.refresh(now)
        await self.regulation.flush(now)
        await self.audit_behind.flush()

    async def close(self) -> None:
        if self.last_used_flusher is not None:
            await self.last_used_flusher.stop()
        if self.regulation_flusher is not None:
            await self.regulation_flusher.stop()
        # SIGTERM: the uses noted since the last flush, before the pool closes
        await self.app_tokens.flush_last_used()
        await self.app_tokens.close()
        await self.regulation.flush(self.clock())
        await self.audit_behind.flush()
        if self.decision_sink is not None:
            await self.decision_sink.close()
        if self.config_sync is not None:
            await self.config_sync.close()
        if "forward_auth" in self.__dict__:  # built (a cached property): close its HTTP client
            await self.forward_auth.close()
        await self.changes.stop()
        await self.changes.log.close()
        if self.change_notices is not None:
            await self.change_notices.close()
        if self.redis is not None:
            await self.redis.aclose()  # type: ignore[attr-defined]
        await self.database.close()


def check_secret_files(settings: Settings, data_dir: DataDir) -> None:
    """Refuse to start on group/world-accessible secret files, naming the file and the chmod."""
    check_secret_file(data_dir.timecode_file)
    if data_dir.apptoken_key_file.exists():
        check_secret_file(data_dir.apptoken_key_file)
    if settings.tls_key is not None:
        check_secret_file(settings.tls_key)


async def open_runtime(
    settings: Settings,
    *,
    migrate: bool = True,
    listen: bool = True,
    eager: bool = True,
    clock: Callable[[], float] = time.time,
) -> Runtime:
    """Load the data dir, check secret files, open the database and apply migrations.

    ``listen=False`` (one-shot CLI commands, the serve pre-flight) skips the Redis subscription to
    other instances' revocation notices: such a process publishes notices but never serves requests.
    ``eager=False`` (CLI commands) leaves the identity, /verify, OIDC and system-login services to be built on
    first use: they import httpx, Authlib, Jinja2 and the hash libraries, about a second of start-up for a
    command that never uses them. A serving process builds them all before its first request.
    ``clock`` (Unix seconds) goes to the services that take one; tests move it instead of sleeping.
    """
    data_dir = DataDir(settings.data_dir)
    server_name = load_server_name(settings, data_dir)
    policy = PolicyHolder(
        settings.data_dir, dialect=settings.policy_dialect, segments=parse_segments(settings.policy_segments)
    )
    # With S3 configured the shared bundle (or its last-known-good copy) brings policy, time code and keys.
    from tokenward.configsync.wiring import follow_bundle, start_config_sync

    sync = await start_config_sync(settings, data_dir, server_name, policy)
    try:
        check_secret_files(settings, data_dir)
        timecodes = data_dir.read_timecodes()
        if not policy.loaded:
            policy.load()  # a policy file with errors stops the start, naming file:line
        database = Database.connect(settings.database_url_or_default)
        try:
            await database.ping()
            if migrate:
                await database.upgrade()
        except StorageError:
            await database.close()
            raise
    except BaseException:
        if sync is not None:
            await sync.close()
        raise
    log.info("tokenward ready for %s (time code %s)", server_name, timecodes.current.key_id)
    redis: object | None = None
    regulation_fallback: FallbackRegulationStore | None = None
    notices: ChangeNotices | None = None
    regulation_store: RegulationStore = SqlRegulationStore(database)
    # A serving process reads the change log through its own two connections (a poll and a prune): under load the
    # requests hold the main pool, and a poll queued behind them would turn the instance stale (503 changes_stale).
    feed_database = database.companion(pool_size=2, autocommit=True) if listen else database
    changes = ChangeFeed(
        SqlChangeLog(feed_database, owns_database=feed_database is not database),
        poll_interval=settings.changes_poll_seconds,
        max_lag=settings.changes_max_lag_seconds,
        retention=float(settings.changes_retention_seconds),
        clock=clock,
    )
    if listen:  # before anything is loaded into memory, so no change falls between the load and the feed
        try:
            await changes.start()
        except BaseException:
            await changes.log.close()
            await database.close()
            if sync is not None:
                await sync.close()
            raise
    if settings.redis_url is not None:
        from tokenward.storage.redisstate import ChangeNotices, RedisRegulationStore, connect_redis, key_prefix

        redis = client = connect_redis(settings.redis_url.get_secret_value())
        regulation_store = regulation_fallback = FallbackRegulationStore(
            RedisRegulationStore(client, prefix=key_prefix(server_name)), SqlRegulationStore(database)
        )
        notices = ChangeNotices(client, prefix=key_prefix(server_name))
        changes.publish = notices.publish
    audit_behind = BufferedAuditLog(SqlAuditLog(database), refusals_per_flush=settings.audit_refusals_per_flush)
    regulation = Regulation(regulation_store, on_ban=_audit_ban(audit_behind))
    runtime = Runtime(
        settings=settings,
        server_name=server_name,
        timecodes=timecodes,
        database=database,
        audit=audit_behind,  # what the admin pages list: flushed first, so they show this instance's last second
        app_tokens=build_app_token_service(
            settings,
            database,
            data_dir.ensure_apptoken_key(),
            server_name=server_name,
            policy=policy,
            regulation=regulation,
            changes=changes,
            clock=clock,
        ),
        policy=policy,
        regulation_store=regulation_store,
        changes=changes,
        regulation=regulation,
        audit_behind=audit_behind,
        config_sync=sync,
        change_notices=notices,
        regulation_fallback=regulation_fallback,
        redis=redis,
        clock=clock,
    )
    if sync is not None:
        sync.on_contents = follow_bundle(data_dir, runtime.use_timecodes)
    runtime.app_tokens.audit_behind = audit_behind
    if listen:
        # Every app token id for the known-id filter, then the newest records up to the memory budget: after
        # changes.start(), so a change made meanwhile reaches them through the feed.
        try:
            await runtime.app_tokens.load_known_ids()
            await runtime.app_tokens.prefill()
        except BaseException:
            await runtime.close()
            raise
        changes.run_in_background()
        if notices is not None:
            notices.start(changes.wake)
        runtime.last_used_flusher = Periodic(
            runtime.app_tokens.flush_last_used,
            interval=runtime.app_tokens.config.last_used_interval,
            name="tokenward-app-token-last-used",
        )
        runtime.last_used_flusher.start()
        # The ban snapshot is loaded now (the feed already started: no ban falls between), then kept by the
        # feed's BAN entries (SQL) or by this task's one read a second (Redis); never read on a request.
        if regulation_fallback is None:
            runtime.regulation.follow(changes)
        await runtime.regulation.sync(clock())
        runtime.regulation.background = True
        runtime.regulation_flusher = Periodic(
            runtime.flush_regulation, interval=settings.regulation_flush_seconds, name="tokenward-regulation-flush"
        )
        runtime.regulation_flusher.start()
    build_decision_log(runtime)
    if not eager:
        return runtime
    # Built now, not on a request (the properties build on first use): identity first, /verify asks it.
    _services = (runtime.identity, runtime.forward_auth, runtime.oidc, runtime.system_login)
    await runtime.forward_auth.warm()  # the first /verify should not wait for the revocation list
    await runtime.sessions.warm(now=runtime.clock())  # nor a restart under traffic read sessions one by one
    return runtime


def build_decision_log(runtime: Runtime) -> None:
    """The decision log and its SQL sink, as the settings ask; the policy holder reports to it."""
    settings = runtime.settings
    if not settings.decision_log_enabled:
        return
    decisions = DecisionLog(
        size=settings.decision_log_size,
        sample_rate=settings.decision_log_sample_rate,
        hash_mode=settings.decision_log_hash_subjects,
        hash_key=runtime.keyring.key(Purpose.DECISION_LOG)[1].reveal(),
        instance=f"{socket.gethostname()}:{os.getpid()}",
    )
    runtime.policy.set_observer(decisions.observe)
    runtime.decision_log = decisions
    retention = settings.decision_log_retention_days * 86400.0
    if settings.decision_log_sink == "sql":
        runtime.decision_sink = SqlDecisionSink(runtime.database, retention_seconds=retention)
    elif settings.decision_log_sink == "s3":
        from tokenward.configsync.stores import require_remote

        runtime.decision_sink = BlobDecisionSink(
            require_remote(settings),
            server=runtime.server_name,
            instance=decisions.instance,
            retention_seconds=retention,
        )


def build_forward_auth(runtime: Runtime) -> ForwardAuthService:
    """The /verify service: declared token stores, jti revocations in SQL, plugins with app tokens."""
    import httpx

    from tokenward.forwardauth.plugins import PluginDeps
    from tokenward.forwardauth.service import ForwardAuthService
    from tokenward.forwardauth.stores import build_stores, parse_store_specs
    from tokenward.storage.config_tokens import SqlConfigTokenRevocations

    settings = runtime.settings
    holder = runtime.policy
    return ForwardAuthService(
        keyring=lambda: runtime.keyring,
        stores=build_stores(parse_store_specs(settings.config_token_stores)),
        revocations=SqlConfigTokenRevocations(runtime.database),
        deps=PluginDeps(
            app_tokens=runtime.app_tokens,
            http=httpx.AsyncClient(timeout=10.0),
            keyring=lambda: runtime.keyring,
            regulator=runtime.app_tokens.regulator,
            account_failure_delay=settings.regulation_account_delay_seconds,
            sessions=session_check(runtime.sessions),
        ),
        policy=lambda: holder.policy if holder.loaded else None,
        changes=runtime.changes,
    )


def build_identity(runtime: Runtime) -> IdentityService:
    """The identity API's facade over the runtime's flows (each built once, on the runtime's database, keys,
    policy and captcha regulators)."""
    from tokenward.identity.service import IdentityService
    from tokenward.identity.token_service import ClientTokenService
    from tokenward.storage.identity import SqlIdentityStore

    tokens = ClientTokenService(
        server_name=runtime.server_name,
        keyring=lambda: runtime.keyring,
        store=SqlIdentityStore(runtime.database),
        policy=_identity_policy(runtime),
        audit=SqlAuditLog(runtime.database),
    )
    return IdentityService(
        enrolment=runtime.enrolment,
        captcha=runtime.captcha_login,
        resource=runtime.resource_login,
        sessions=runtime.sessions,
        tokens=tokens,
    )


def build_enrolment(runtime: Runtime) -> EnrolmentService:
    """Enrolment: the store, the policy (may this address get an e-mailed code), the mailer and the regulators."""
    from tokenward.identity.enrolment import EnrolmentService
    from tokenward.storage.identity import SqlIdentityStore

    settings = runtime.settings
    requests, failures = runtime.captcha_regulators
    return EnrolmentService(
        server_name=runtime.server_name,
        store=SqlIdentityStore(runtime.database),
        policy=_identity_policy(runtime),
        audit=SqlAuditLog(runtime.database),
        request_regulator=requests,
        failure_regulator=failures,
        mailer=_mailer(settings, runtime.server_name),
        mail_sender=settings.smtp_from,
    )


def build_sessions(runtime: Runtime) -> SessionService:
    """Sessions; a serving process holds them in memory (``TOKENWARD_SESSIONS_MEMORY_MB``), kept true by the
    change feed's ``session`` entries and dropped when it resets. A CLI command (no feed followed) reads rows."""
    from tokenward.identity.session_memory import SessionMemory, entries_for
    from tokenward.identity.sessions import SessionService
    from tokenward.storage.identity import SqlIdentityStore

    store = SqlIdentityStore(runtime.database)
    changes = runtime.changes
    memory: SessionMemory | None = None
    if changes.following:
        held = memory = SessionMemory(store.get_session, max_entries=entries_for(runtime.settings.sessions_memory_mb))
        changes.on(ChangeKind.SESSION, lambda entry: held.revoke(entry.key))
        changes.on_reset(held.clear)
    return SessionService(
        keyring=lambda: runtime.keyring,
        store=store,
        audit=SqlAuditLog(runtime.database),
        session_lifetime=runtime.settings.session_lifetime_seconds,
        memory=memory,
        changes=changes,
    )


def build_captcha_login(runtime: Runtime) -> CaptchaLoginService:
    from tokenward.identity.apps import load_serving_registry
    from tokenward.identity.captcha_login import CaptchaLoginService
    from tokenward.storage.identity import SqlIdentityStore

    data_dir = runtime.settings.data_dir
    requests, failures = runtime.captcha_regulators
    return CaptchaLoginService(
        server_name=runtime.server_name,
        keyring=lambda: runtime.keyring,
        store=SqlIdentityStore(runtime.database),
        policy=_identity_policy(runtime),
        clients=lambda: load_serving_registry(data_dir),
        sessions=runtime.sessions,
        audit=SqlAuditLog(runtime.database),
        request_regulator=requests,
        failure_regulator=failures,
    )


def build_resource_login(runtime: Runtime) -> ResourceLoginService:
    from tokenward.identity.apps import load_serving_registry
    from tokenward.identity.resource_login import ResourceLoginService
    from tokenward.identity.resources import load_resources
    from tokenward.storage.identity import SqlIdentityStore

    data_dir = runtime.settings.data_dir
    return ResourceLoginService(
        server_name=runtime.server_name,
        keyring=lambda: runtime.keyring,
        store=SqlIdentityStore(runtime.database),
        policy=_identity_policy(runtime),
        clients=lambda: load_serving_registry(data_dir),
        resources=lambda: load_resources(data_dir),
        sessions=runtime.sessions,
    )


def _identity_policy(runtime: Runtime) -> Callable[[], IdentityPolicy]:
    questions = _policy_questions(runtime)

    def policy() -> IdentityPolicy:
        return questions

    return policy


def _policy_questions(runtime: Runtime) -> PolicyQuestions:
    from tokenward.identity.policy import PolicyQuestions

    holder = runtime.policy
    return PolicyQuestions(lambda: holder.policy, runtime.server_name)


def _loaded_policy(runtime: Runtime) -> Callable[[], IdentityPolicy | None]:
    """The policy questions, or None while no policy is loaded (OIDC and system login then refuse)."""
    holder = runtime.policy
    questions = _policy_questions(runtime)

    def policy() -> IdentityPolicy | None:
        return questions if holder.loaded else None

    return policy


def _captcha_request_regulator(settings: Settings, regulation: Regulation) -> Regulator:
    """Captcha requests: ``TOKENWARD_CAPTCHA_MAX_REQUESTS`` per window (the first one past it is refused)."""
    window = float(settings.captcha_regulation_window_seconds)
    return regulation.regulator(RegulationPolicy(settings.captcha_max_requests + 1, window, window))


def _captcha_failure_regulator(settings: Settings, regulation: Regulation) -> Regulator:
    """Wrong captcha codes: hard keys past ``TOKENWARD_CAPTCHA_MAX_FAILURES``, the account past
    ``TOKENWARD_CAPTCHA_ACCOUNT_MAX_FAILURES``."""
    window = float(settings.captcha_regulation_window_seconds)
    return regulation.regulator(
        RegulationPolicy(
            settings.captcha_max_failures, window, window, soft_max_failures=settings.captcha_account_max_failures
        ),
    )


def _audit_ban(audit: AuditLog) -> Callable[[str, float, float], Awaitable[None]]:
    """How a regulation flush records a ban it decided from every instance's counts (``regulation.ban``)."""

    async def record(key: str, now: float, seconds: float) -> None:
        event = AuditEvent(
            at=datetime.fromtimestamp(now, UTC),
            actor="system",
            action="regulation.ban",
            subject=key[:320],
            detail={"seconds": seconds, "counted": "all instances"},
        )
        try:
            await audit.append(event)
        except TokenwardError as exc:
            log.warning("cannot write audit event regulation.ban: %s", exc.detail)

    return record


def _mailer(settings: Settings, server_name: str) -> SmtpMailer | None:
    if not settings.smtp_host:
        return None
    from tokenward.identity.mail import SmtpMailer

    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from or f"tokenward@{server_name}",
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
        timeout=settings.smtp_timeout_seconds,
    )


def session_check(sessions: SessionService) -> SessionCheck:
    """How /verify plugins check a user session (``Bearer tw1si.…``): its subject and scopes, or the service's error."""

    async def check(token: str) -> tuple[str, tuple[str, ...]]:
        found = await sessions.authenticate(token, now=time.time())
        return found.subject, tuple(found.scopes)

    return check


def build_oidc(runtime: Runtime, *, clock: Callable[[], float] = time.time) -> OidcProvider:
    """The OpenID Provider on the runtime's database, keys and policy (issuer: setting or https://<server name>)."""
    from tokenward.oidc.provider import OidcLifetimes, OidcProvider
    from tokenward.storage.oidc import SqlOidcStore

    settings = runtime.settings
    return OidcProvider(
        issuer=settings.oidc_issuer or f"https://{runtime.server_name}",
        store=SqlOidcStore(runtime.database),
        sessions=runtime.sessions,
        keyring=lambda: runtime.keyring,
        policy=_loaded_policy(runtime),
        audit=SqlAuditLog(runtime.database),
        regulator=runtime.regulation.regulator(
            RegulationPolicy(
                max_failures=settings.regulation_max_failures,
                find_time=float(settings.regulation_find_time_seconds),
                ban_time=float(settings.regulation_ban_time_seconds),
            ),
        ),
        lifetimes=OidcLifetimes(
            code=settings.oidc_code_lifetime_seconds,
            access_token=settings.oidc_access_token_lifetime_seconds,
            id_token=settings.oidc_id_token_lifetime_seconds,
            refresh_token=settings.oidc_refresh_token_lifetime_seconds,
        ),
        clock=clock,
    )


def build_system_login(runtime: Runtime, regulation: Regulation) -> SystemLoginService:
    """System login for PAM hosts, regulated like portal captchas (the ``TOKENWARD_CAPTCHA_*`` limits)."""
    from tokenward.identity.resources import load_resources
    from tokenward.identity.system_login import SystemLoginService
    from tokenward.storage.identity import SqlIdentityStore

    settings = runtime.settings
    return SystemLoginService(
        server_name=runtime.server_name,
        keyring=lambda: runtime.keyring,
        store=SqlIdentityStore(runtime.database),
        policy=_loaded_policy(runtime),
        resources=lambda: load_resources(settings.data_dir),
        audit=SqlAuditLog(runtime.database),
        request_regulator=_captcha_request_regulator(settings, regulation),
        failure_regulator=_captcha_failure_regulator(settings, regulation),
    )


def build_app_token_service(
    settings: Settings,
    database: Database,
    key: Secret,
    *,
    server_name: str,
    policy: PolicyHolder,
    regulation: Regulation,
    changes: ChangeFeed,
    clock: Callable[[], float] = time.time,
) -> AppTokenService:
    """The app token service on ``database`` configured from ``settings`` (also used by the CLI), kept fresh by
    ``changes``.

    The admin check is :meth:`PolicyHolder.is_admin` on ``policy``: while no policy is loaded nobody is an admin.
    """
    regulator = regulation.regulator(
        RegulationPolicy(
            max_failures=settings.regulation_max_failures,
            find_time=float(settings.regulation_find_time_seconds),
            ban_time=float(settings.regulation_ban_time_seconds),
            soft_max_failures=settings.regulation_account_max_failures,
        ),
    )
    config = AppTokenConfig(
        default_expiry=parse_duration(settings.app_tokens_default_expiry),
        max_expiry=parse_duration(settings.app_tokens_max_expiry),
        max_per_user=settings.app_tokens_max_per_user,
        last_used_interval=float(settings.app_tokens_last_used_interval_seconds),
        memory_mb=float(settings.app_tokens_memory_mb),
        impersonation=settings.app_tokens_impersonation,
        account_failure_delay=settings.regulation_account_delay_seconds,
    )
    return AppTokenService(
        store=SqlAppTokenStore(database),
        feed=changes,
        audit=SqlAuditLog(database),
        regulator=regulator,
        key=key,
        config=config,
        is_admin=lambda subject: policy.is_admin(subject, server_name),
        clock=clock,
    )
