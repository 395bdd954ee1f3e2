"""``ldap``: HTTP Basic checked against an LDAP directory (ldap3).

For ``user:password``: search the user under ``user_base_dn`` with ``user_filter`` (the user name
escaped, RFC 4515 §3) on a pooled connection bound as ``bind_dn`` (or anonymous); bind as the
entry found with the password (simple bind, RFC 4513 §5.1.3) on a fresh connection; read the
groups whose ``group_filter`` names the user's DN; check ``required_groups``.

TLS: ``ldaps://`` or ``start_tls: true``; the server certificate is always verified against
``ca_file`` (or the system's CAs) and its name. An empty password is refused before any bind (an
LDAP "unauthenticated bind" would succeed without one, RFC 4513 §5.1.2).

ldap3 is blocking: each check runs in a worker thread; at most ``pool_size`` checks talk to the
directory at once, reusing up to ``pool_size`` bound search connections (a broken one is dropped
and the search retried once on a new one). A verified ``user:password`` is remembered
``cache_seconds`` as an HMAC under a per-process key, so the directory is asked once per user a
minute, not per request, and no password is kept.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tokenward.apptokens.regulation import Regulator
from tokenward.errorcodes import ErrorCode
from tokenward.forwardauth.plugins.base import Outcome, Plugin, UserInfo, VerifyRequest
from tokenward.forwardauth.plugins.basic import VerifiedCache, basic_challenge, basic_or_failure
from tokenward.forwardauth.plugins.regulated import PasswordRegulation
from tokenward.forwardauth.schema import LdapPlugin

__all__ = ["LdapAuth", "escape_filter_chars"]

MAX_USERNAME = 256
MAX_GROUPS = 256


def _ldap3() -> Any:
    """ldap3, imported on first use (only configs with an ``ldap`` plugin pay for it).

    ldap3 2.9.1 still uses pyasn1 names that newer pyasn1 releases mark deprecated, and warns on import.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import ldap3
        import ldap3.core.exceptions
        import ldap3.utils.conv
    return ldap3


def escape_filter_chars(value: str) -> str:
    """RFC 4515 §3 escaping of a value put into a search filter."""
    return str(_ldap3().utils.conv.escape_filter_chars(value))


def _strict_tls(ldap3: Any, context: ssl.SSLContext, host: str) -> Any:
    """An ldap3 ``Tls`` whose handshake is Python's own: CA and host name (or IP address) checked by
    :mod:`ssl` (``check_hostname``), not by ldap3's helper, which calls the deprecated
    ``ssl.match_hostname``."""

    class StrictTls(ldap3.Tls):  # type: ignore[misc]
        def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
            connection.socket = context.wrap_socket(
                connection.socket, server_hostname=host, do_handshake_on_connect=do_handshake
            )

    return StrictTls(validate=ssl.CERT_REQUIRED)


class _Unavailable(Exception):
    """The directory cannot be reached or refused TLS: the answer is 503, never a hang."""


@dataclass(frozen=True, slots=True)
class _Found:
    dn: str
    attributes: dict[str, Any]


class _Directory:
    """The blocking side: connections, the pool, search and bind. Called from worker threads."""

    def __init__(self, config: LdapPlugin) -> None:
        self.config = config
        ldap3 = self.ldap3 = _ldap3()
        self.LDAPException = ldap3.core.exceptions.LDAPException
        parts = urlsplit(config.url)
        secure = parts.scheme == "ldaps"
        tls = None
        if secure or config.start_tls:
            tls = _strict_tls(ldap3, ssl.create_default_context(cafile=config.ca_file), parts.hostname or "")
        self.server = ldap3.Server(
            parts.hostname or "",
            port=parts.port or (636 if secure else 389),
            use_ssl=secure,
            tls=tls,
            connect_timeout=config.timeout_seconds,
            get_info=ldap3.NONE,
        )
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def _connect(self, user: str | None, password: str | None) -> tuple[Any, bool]:
        """A connection bound as ``user`` (anonymous for None): ``(connection, bound)``."""
        ldap3 = self.ldap3
        conn = ldap3.Connection(
            self.server,
            user=user,
            password=password,
            authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS,
            receive_timeout=math.ceil(self.config.timeout_seconds),  # ldap3 packs it as whole seconds
            raise_exceptions=False,
            read_only=True,
        )
        try:
            conn.open()
            if self.config.start_tls and not conn.start_tls():
                raise _Unavailable("StartTLS was refused")
            bound = bool(conn.bind())
        except _Unavailable:
            _close(conn)
            raise
        except Exception as exc:  # ldap3 raises its own tree, and OSError/ssl errors from below it
            _close(conn)
            raise _Unavailable(f"{type(exc).__name__}") from None
        return conn, bound

    def _search_connection(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn, bound = self._connect(self.config.bind_dn, self.config.bind_password)
        if not bound:
            _close(conn)
            raise _Unavailable("the directory refused bind_dn's password")
        return conn

    def _release(self, conn: Any) -> None:
        with self._lock:
            if len(self._idle) < self.config.pool_size:
                self._idle.append(conn)
                return
        _close(conn)

    def _search(self, base: str, search_filter: str, attributes: list[str], limit: int) -> list[_Found]:
        for attempt in (1, 2):
            conn = self._search_connection()
            try:
                conn.search(base, search_filter, self.ldap3.SUBTREE, attributes=attributes, size_limit=limit)
            except self.LDAPException:
                _close(conn)  # a pooled connection the server dropped: retry once on a new one
                if attempt == 2:
                    raise _Unavailable("the search failed") from None
                continue
            result = conn.result or {}
            code = result.get("result", 0)
            entries = [r for r in conn.response or [] if r.get("type") == "searchResEntry"]
            found = [_Found(str(r["dn"]), dict(r.get("attributes") or {})) for r in entries]
            self._release(conn)
            if code not in (0, 4, 32):  # success, sizeLimitExceeded, noSuchObject
                raise _Unavailable(f"the search was refused ({result.get('description', code)})")
            return found
        raise _Unavailable("the search failed")  # pragma: no cover - the loop returns or raises

    def check(self, username: str, password: str) -> tuple[str, _Found | None, list[str]]:
        """``("ok", entry, groups)``, ``("unknown" | "ambiguous" | "wrong", None, [])``; raises _Unavailable."""
        cfg = self.config
        user_filter = cfg.user_filter.replace("{username}", escape_filter_chars(username))
        attributes = [cfg.username_attribute, cfg.email_attribute, cfg.name_attribute]
        found = self._search(cfg.user_base_dn, user_filter, attributes, 2)
        if len(found) != 1:
            # Pay for a bind all the same (to a DN that cannot exist), so the answer's timing does not
            # tell an unknown user name from a wrong password.
            conn, _ = self._connect(f"cn=tokenward-no-such-user-{secrets.token_hex(8)},{cfg.user_base_dn}", password)
            _close(conn)
            return ("unknown" if not found else "ambiguous"), None, []
        entry = found[0]
        conn, bound = self._connect(entry.dn, password)
        _close(conn)
        if not bound:
            return "wrong", None, []
        groups: list[str] = []
        if cfg.group_base_dn is not None:
            group_filter = cfg.group_filter.replace("{dn}", escape_filter_chars(entry.dn)).replace(
                "{username}", escape_filter_chars(username)
            )
            for group in self._search(cfg.group_base_dn, group_filter, [cfg.group_name_attribute], MAX_GROUPS):
                groups.extend(_values(group.attributes.get(cfg.group_name_attribute)))
        return "ok", entry, groups

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _close(conn: Any) -> None:
    """Unbind and close, whatever state the connection is in (a broken socket raises in unbind)."""
    try:
        conn.unbind()
    except Exception:  # a connection that is already gone: nothing to tell the server
        pass
    sock = getattr(conn, "socket", None)  # ldap3 keeps the socket of a failed connect open
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


class LdapAuth(Plugin[LdapPlugin]):
    def __init__(
        self,
        config: LdapPlugin,
        *,
        regulator: Regulator | None = None,
        clock: Callable[[], float] = time.time,
        regulation: PasswordRegulation | None = None,
    ) -> None:
        super().__init__(config)
        self.regulation = regulation or PasswordRegulation(regulator, clock)
        self.directory = _Directory(config)
        self.challenge = basic_challenge(config.realm)
        self._slots = asyncio.Semaphore(config.pool_size)
        self._verified = VerifiedCache()
        self.required = frozenset(g.lower() for g in config.required_groups)

    async def verify(self, request: VerifyRequest) -> Outcome:
        creds = basic_or_failure(request.headers, self.challenge)
        if isinstance(creds, Outcome):
            return creds
        user, password = creds
        if not password or not user or len(user) > MAX_USERNAME or "\0" in user:
            return Outcome.failure(ErrorCode.CREDENTIALS_INVALID, "wrong user or password", challenge=self.challenge)
        refused = await self.regulation.refused(user, request.client_ip)
        if refused is not None:
            return refused
        now = time.monotonic()
        fingerprint = self._verified.fingerprint(user, password)
        cached = self._verified.get(fingerprint, now)
        if cached is not None:
            return cached
        try:
            async with self._slots:
                verdict, entry, groups = await asyncio.to_thread(self.directory.check, user, password)
        except _Unavailable as exc:
            return Outcome.failure(ErrorCode.LDAP_UNAVAILABLE, f"the LDAP directory cannot be used: {exc}", status=503)
        if verdict != "ok" or entry is None:
            await self.regulation.failed(user, request.client_ip)
            return Outcome.failure(ErrorCode.CREDENTIALS_INVALID, "wrong user or password", challenge=self.challenge)
        if self.required and not self.required & {g.lower() for g in groups}:
            return Outcome.failure(
                ErrorCode.LDAP_GROUP_DENIED, "the user is in none of the groups this site requires", status=403
            )
        cfg = self.config
        attrs = entry.attributes
        names = _values(attrs.get(cfg.username_attribute))
        emails = _values(attrs.get(cfg.email_attribute))
        display = _values(attrs.get(cfg.name_attribute))
        outcome = Outcome.success(
            UserInfo(
                sub=names[0] if names else user,
                email=emails[0] if emails else "",
                groups=tuple(sorted(set(groups))),
                name=display[0] if display else "",
                claims={"dn": entry.dn},
            )
        )
        if self.config.cache_seconds:
            self._verified.put(fingerprint, now + self.config.cache_seconds, outcome)
        return outcome

    async def aclose(self) -> None:
        await asyncio.to_thread(self.directory.close)
